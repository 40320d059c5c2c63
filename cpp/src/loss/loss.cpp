// CPU (OpenMP) kernels of the fused soft-Dice loss; the math is in fastseg/dice.h.
//
// Work items are fixed blocks of kBlock voxels of one sample, handed out to the OpenMP threads as they
// come free (dynamic schedule: a thread that a busy machine holds back takes fewer); each
// item writes its own partial sums, which are then added in item order, so the result does not
// depend on the number of threads. Inside an item, sub-blocks of kSub voxels run through loops over
// plain arrays, one class at a time (structure of arrays), that the compiler vectorises; a label map
// is first turned into class indices that the loops compare with the class (the one-hot target is
// never stored), a multi-label mask into 0/1 rows. The float row kernels are compiled for
// AVX-512, AVX2 and baseline x86-64 and picked at load time (GCC target_clones); float partial sums
// run over at most kSub voxels before they are added into double.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-math-errno", "no-trapping-math")
#endif
#include "loss.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fastseg/dice.h"
#include "fastseg/parallel.h"

#include "fastseg/portability.h"

#if defined(__GNUC__)
#define FASTSEG_INLINE inline __attribute__((always_inline))
#else
#define FASTSEG_INLINE inline
#endif

namespace fastseg::loss {
namespace {

using namespace fastseg::dice;

constexpr int64_t kBlock = 8192;  // voxels per work item (fixed: partial sums do not depend on threads)
constexpr int kSub = 256;         // voxels per vectorised sub-block

// Per sub-block scratch: C rows of exp(x - max) (e), then rows of one value per voxel.
template <class A>
struct Rows {
  A* e;
  A* m;
  A* s;
  A* aux;
  A* piv;
  A* gpiv;
  A* q;
};

// The sub-block's one-hot target, from class indices (label maps: compared on the fly, no one-hot
// rows) or from 0/1 rows (multi-label masks).
template <class A>
struct LabelTarget {
  const int32_t* lab;
  FASTSEG_INLINE A operator()(int c, int i) const { return lab[i] == c ? A(1) : A(0); }
};
template <class A>
struct MaskTarget {
  const A* t;
  FASTSEG_INLINE A operator()(int c, int i) const { return t[c * kSub + i]; }
};

// ---- row kernels: x points at channel 0 of the sub-block, channels `stride` apart ----

template <class A, bool CE, class Tg>
FASTSEG_INLINE void forward_softmax_rows(const A* __restrict x, int64_t stride, int classes, int len, Rows<A> w,
                                         Tg tg, double* __restrict acc) {
  A* __restrict m = w.m;
  A* __restrict s = w.s;
  A* __restrict lse = w.aux;
#pragma omp simd
  for (int i = 0; i < len; ++i) m[i] = x[i];
  for (int c = 1; c < classes; ++c) {
    const A* __restrict xc = x + c * stride;
#pragma omp simd
    for (int i = 0; i < len; ++i) m[i] = xc[i] > m[i] ? xc[i] : m[i];
  }
#pragma omp simd
  for (int i = 0; i < len; ++i) s[i] = A(0);
  for (int c = 0; c < classes; ++c) {
    const A* __restrict xc = x + c * stride;
    A* __restrict ec = w.e + c * kSub;
#pragma omp simd
    for (int i = 0; i < len; ++i) {
      ec[i] = exp_le0(xc[i] - m[i]);
      s[i] += ec[i];
    }
  }
#pragma omp simd
  for (int i = 0; i < len; ++i) {
    if constexpr (CE) lse[i] = log_pos(s[i]) + m[i];
    s[i] = A(1) / s[i];
  }
  for (int c = 0; c < classes; ++c) {
    const A* __restrict xc = x + c * stride;
    const A* __restrict ec = w.e + c * kSub;
    A a_i = 0, a_p = 0, a_q = 0, a_t = 0, a_e = 0;
#pragma omp simd reduction(+ : a_i, a_p, a_q, a_t, a_e)
    for (int i = 0; i < len; ++i) {
      const A p = ec[i] * s[i], t = tg(c, i);
      a_i += p * t;
      a_p += p;
      a_q += p * p;
      a_t += t;
      if constexpr (CE) a_e += t * (lse[i] - xc[i]);
    }
    double* ac = acc + c * kSums;
    ac[kInter] += a_i;
    ac[kP] += a_p;
    ac[kQ] += a_q;
    ac[kT] += a_t;
    ac[kCE] += a_e;
  }
}

template <class A, bool CE, class Tg>
FASTSEG_INLINE void forward_sigmoid_rows(const A* __restrict x, int64_t stride, int classes, int len, Rows<A> /*w*/,
                                         Tg tg, double* __restrict acc) {
  for (int c = 0; c < classes; ++c) {
    const A* __restrict xc = x + c * stride;
    A a_i = 0, a_p = 0, a_q = 0, a_t = 0, a_e = 0;
#pragma omp simd reduction(+ : a_i, a_p, a_q, a_t, a_e)
    for (int i = 0; i < len; ++i) {
      const A xv = xc[i], t = tg(c, i);
      const A e = exp_le0(-abs_of(xv));
      const A p = sigmoid_from(xv, e);
      a_i += p * t;
      a_p += p;
      a_q += p * p;
      a_t += t;
      if constexpr (CE) a_e += bce_from(xv, t, e);
    }
    double* ac = acc + c * kSums;
    ac[kInter] += a_i;
    ac[kP] += a_p;
    ac[kQ] += a_q;
    ac[kT] += a_t;
    ac[kCE] += a_e;
  }
}

// g: kGrads values per class, in A. Pivot form of fastseg/dice.h (j = the class of largest logit).
template <class A, class Tg>
FASTSEG_INLINE void backward_softmax_rows(const A* __restrict x, int64_t stride, int classes, int len, Rows<A> w,
                                          Tg tg, const A* __restrict g, A* __restrict dx) {
  A* __restrict m = w.m;
  A* __restrict s = w.s;
  A* __restrict piv = w.piv;
#pragma omp simd
  for (int i = 0; i < len; ++i) {
    m[i] = x[i];
    piv[i] = A(0);
  }
  for (int c = 1; c < classes; ++c) {
    const A* __restrict xc = x + c * stride;
    const A cls = A(c);
  #pragma omp simd
    for (int i = 0; i < len; ++i) {  // loads before the selects, so that they vectorise
      const A xv = xc[i], mv = m[i], pv = piv[i];
      const bool bigger = xv > mv;
      m[i] = bigger ? xv : mv;
      piv[i] = bigger ? cls : pv;
    }
  }
#pragma omp simd
  for (int i = 0; i < len; ++i) s[i] = A(0);
  for (int c = 0; c < classes; ++c) {
    const A* __restrict xc = x + c * stride;
    A* __restrict ec = w.e + c * kSub;
  #pragma omp simd
    for (int i = 0; i < len; ++i) {
      ec[i] = exp_le0(xc[i] - m[i]);
      s[i] += ec[i];
    }
  }
#pragma omp simd
  for (int i = 0; i < len; ++i) s[i] = A(1) / s[i];
  // The pivot's dL/dp (gpiv; p_j = 1 / Σe as e_j = 1), then in one pass over the classes Σ_{k≠j} p_k
  // (q), Σ_{k≠j} p_k (g_k - g_j) (rest, reusing m) and the cross-entropy gradient of the voxel's
  // label (gl, in aux).
  A* __restrict gpiv = w.gpiv;
  A* __restrict q = w.q;
  A* __restrict rest = w.m;
  A* __restrict gl = w.aux;
#pragma omp simd
  for (int i = 0; i < len; ++i) {
    gpiv[i] = A(0);
    q[i] = A(0);
    rest[i] = A(0);
    gl[i] = A(0);
  }
  for (int c = 0; c < classes; ++c) {
    const A gi = g[c * kGrads + kGradInter], gp = g[c * kGrads + kGradP], gq = g[c * kGrads + kGradQ];
    const A cls = A(c);
#pragma omp simd
    for (int i = 0; i < len; ++i) {
      const A gv = grad_p(s[i], tg(c, i), gi, gp, gq), old = gpiv[i];
      gpiv[i] = piv[i] == cls ? gv : old;
    }
  }
  for (int c = 0; c < classes; ++c) {
    const A* __restrict ec = w.e + c * kSub;
    const A gi = g[c * kGrads + kGradInter], gp = g[c * kGrads + kGradP], gq = g[c * kGrads + kGradQ],
            ge = g[c * kGrads + kGradCE];
    const A cls = A(c);
#pragma omp simd
    for (int i = 0; i < len; ++i) {
      const A p = ec[i] * s[i], t = tg(c, i), gv = grad_p(p, t, gi, gp, gq);
      const A rv = rest[i], qv = q[i];
      const bool is_pivot = piv[i] == cls;
      rest[i] = is_pivot ? rv : rv + p * (gv - gpiv[i]);
      q[i] = is_pivot ? qv : qv + p;
      gl[i] += t * ge;
    }
  }
  for (int c = 0; c < classes; ++c) {
    const A* __restrict ec = w.e + c * kSub;
    A* __restrict dxc = dx + c * stride;
    const A gi = g[c * kGrads + kGradInter], gp = g[c * kGrads + kGradP], gq = g[c * kGrads + kGradQ];
    const A cls = A(c);
#pragma omp simd
    for (int i = 0; i < len; ++i) {
      const A p = ec[i] * s[i], t = tg(c, i), gv = grad_p(p, t, gi, gp, gq);
      const A pivot_diff = (A(1) - t) - q[i], diff = p - t;
      const A p_minus_t = piv[i] == cls ? pivot_diff : diff;
      dxc[i] = p * ((gv - gpiv[i]) - rest[i]) + gl[i] * p_minus_t;
    }
  }
}

template <class A, class Tg>
FASTSEG_INLINE void backward_sigmoid_rows(const A* __restrict x, int64_t stride, int classes, int len, Rows<A> /*w*/,
                                          Tg tg, const A* __restrict g, A* __restrict dx) {
  for (int c = 0; c < classes; ++c) {
    const A* __restrict xc = x + c * stride;
    A* __restrict dxc = dx + c * stride;
    const A gi = g[c * kGrads + kGradInter], gp = g[c * kGrads + kGradP], gq = g[c * kGrads + kGradQ],
            ge = g[c * kGrads + kGradCE];
    for (int i = 0; i < len; ++i) {
      const A xv = xc[i], t = tg(c, i);
      const A e = exp_le0(-abs_of(xv));
      const A p = sigmoid_from(xv, e);
      dxc[i] = grad_p(p, t, gi, gp, gq) * sigmoid_slope_from(e) + ge * sigmoid_minus_target(xv, t, e);
    }
  }
}

// float instances, compiled per instruction set; `lab` (label maps) or `t` (masks) is the target.
#define FASTSEG_WITH_TARGET(A, CALL)       \
  if (lab != nullptr) {                    \
    const LabelTarget<A> tg{lab};          \
    CALL;                                  \
  } else {                                 \
    const MaskTarget<A> tg{t};             \
    CALL;                                  \
  }

FASTSEG_CLONES void forward_softmax_f(const float* x, int64_t stride, int classes, int len, Rows<float> w,
                                      const int32_t* lab, const float* t, double* acc, bool ce) {
  if (ce) {
    FASTSEG_WITH_TARGET(float, (forward_softmax_rows<float, true>(x, stride, classes, len, w, tg, acc)))
  } else {
    FASTSEG_WITH_TARGET(float, (forward_softmax_rows<float, false>(x, stride, classes, len, w, tg, acc)))
  }
}
FASTSEG_CLONES void forward_sigmoid_f(const float* x, int64_t stride, int classes, int len, Rows<float> w,
                                      const int32_t* lab, const float* t, double* acc, bool ce) {
  if (ce) {
    FASTSEG_WITH_TARGET(float, (forward_sigmoid_rows<float, true>(x, stride, classes, len, w, tg, acc)))
  } else {
    FASTSEG_WITH_TARGET(float, (forward_sigmoid_rows<float, false>(x, stride, classes, len, w, tg, acc)))
  }
}
FASTSEG_CLONES void backward_softmax_f(const float* x, int64_t stride, int classes, int len, Rows<float> w,
                                       const int32_t* lab, const float* t, const float* g, float* dx) {
  FASTSEG_WITH_TARGET(float, (backward_softmax_rows<float>(x, stride, classes, len, w, tg, g, dx)))
}
FASTSEG_CLONES void backward_sigmoid_f(const float* x, int64_t stride, int classes, int len, Rows<float> w,
                                       const int32_t* lab, const float* t, const float* g, float* dx) {
  FASTSEG_WITH_TARGET(float, (backward_sigmoid_rows<float>(x, stride, classes, len, w, tg, g, dx)))
}

void forward_rows(bool sigmoid, bool ce, const float* x, int64_t stride, int classes, int len, Rows<float> w,
                  const int32_t* lab, const float* t, double* acc) {
  if (sigmoid) {
    forward_sigmoid_f(x, stride, classes, len, w, lab, t, acc, ce);
  } else {
    forward_softmax_f(x, stride, classes, len, w, lab, t, acc, ce);
  }
}
void forward_rows(bool sigmoid, bool ce, const double* x, int64_t stride, int classes, int len, Rows<double> w,
                  const int32_t* lab, const double* t, double* acc) {
  if (sigmoid && ce) {
    FASTSEG_WITH_TARGET(double, (forward_sigmoid_rows<double, true>(x, stride, classes, len, w, tg, acc)))
  } else if (sigmoid) {
    FASTSEG_WITH_TARGET(double, (forward_sigmoid_rows<double, false>(x, stride, classes, len, w, tg, acc)))
  } else if (ce) {
    FASTSEG_WITH_TARGET(double, (forward_softmax_rows<double, true>(x, stride, classes, len, w, tg, acc)))
  } else {
    FASTSEG_WITH_TARGET(double, (forward_softmax_rows<double, false>(x, stride, classes, len, w, tg, acc)))
  }
}
void backward_rows(bool sigmoid, const float* x, int64_t stride, int classes, int len, Rows<float> w,
                   const int32_t* lab, const float* t, const float* g, float* dx) {
  if (sigmoid) {
    backward_sigmoid_f(x, stride, classes, len, w, lab, t, g, dx);
  } else {
    backward_softmax_f(x, stride, classes, len, w, lab, t, g, dx);
  }
}
void backward_rows(bool sigmoid, const double* x, int64_t stride, int classes, int len, Rows<double> w,
                   const int32_t* lab, const double* t, const double* g, double* dx) {
  if (sigmoid) {
    FASTSEG_WITH_TARGET(double, (backward_sigmoid_rows<double>(x, stride, classes, len, w, tg, g, dx)))
  } else {
    FASTSEG_WITH_TARGET(double, (backward_softmax_rows<double>(x, stride, classes, len, w, tg, g, dx)))
  }
}
#undef FASTSEG_WITH_TARGET

// Labels as class indices (label - lo for labels in [lo, hi), else -1); returns how many lie outside
// [0, hi).
template <class L>
FASTSEG_INLINE int64_t label_row_impl(const L* __restrict src, int len, int64_t lo, int64_t hi,
                                      int32_t* __restrict labels) {
  int64_t invalid = 0;
  const uint64_t classes = static_cast<uint64_t>(hi - lo), top = static_cast<uint64_t>(hi);
#pragma omp simd reduction(+ : invalid)
  for (int i = 0; i < len; ++i) {
    const int64_t l = static_cast<int64_t>(src[i]);
    const int64_t k = l - lo;
    labels[i] = static_cast<uint64_t>(k) < classes ? static_cast<int32_t>(k) : -1;
    invalid += static_cast<uint64_t>(l) >= top ? 1 : 0;  // negative labels wrap to huge values
  }
  return invalid;
}

#define FASTSEG_LABEL_ROW(L)                                                                              \
  FASTSEG_CLONES int64_t label_row(const L* src, int len, int64_t lo, int64_t hi, int32_t* labels) { \
    return label_row_impl<L>(src, len, lo, hi, labels);                                                   \
  }
FASTSEG_LABEL_ROW(uint8_t)
FASTSEG_LABEL_ROW(int8_t)
FASTSEG_LABEL_ROW(int16_t)
FASTSEG_LABEL_ROW(int32_t)
FASTSEG_LABEL_ROW(int64_t)
#undef FASTSEG_LABEL_ROW

// The target of voxels [v0, v0 + len) of sample n: class indices (label maps) or 0/1 rows, one per
// class kSub apart (masks). Returns the number of labels outside [0, label_offset + C) (0 for a mask).
template <class A, class L>
int64_t expand_target(const DiceProblem& p, const L* target, int64_t n, int64_t v0, int len, int32_t* labels,
                      A* t) {
  const int classes = static_cast<int>(p.c);
  if (p.mask) {
    for (int c = 0; c < classes; ++c) {
      const L* src = target + (n * p.c + c) * p.v + v0;
      for (int i = 0; i < len; ++i) t[c * kSub + i] = src[i] != 0 ? A(1) : A(0);
    }
    return 0;
  }
  return label_row(target + n * p.v + v0, len, p.label_offset, p.label_offset + p.c, labels);
}

template <class A>
struct Scratch {
  std::vector<A> e, t, row;
  std::vector<int32_t> labels;
  explicit Scratch(const DiceProblem& p)
      : e(p.c * kSub), t(p.mask ? p.c * kSub : 0), row(6 * kSub), labels(kSub) {}
  Rows<A> rows() {
    A* r = row.data();
    return {e.data(), r, r + kSub, r + 2 * kSub, r + 3 * kSub, r + 4 * kSub, r + 5 * kSub};
  }
  const int32_t* lab(const DiceProblem& p) const { return p.mask ? nullptr : labels.data(); }
};

}  // namespace

template <class T, class L>
int64_t dice_sums_cpu(const DiceProblem& p, const T* logits, const L* target, double* sums) {
  const int64_t blocks = (p.v + kBlock - 1) / kBlock;
  const int64_t items = p.n * blocks;
  const int classes = static_cast<int>(p.c);
  std::vector<double> partial(static_cast<size_t>(items * p.c * kSums), 0.0);
  std::vector<int64_t> invalid(static_cast<size_t>(items), 0);
  parallel_for_dynamic(items, [&](int64_t item) {
    const int64_t n = item / blocks, v_begin = (item % blocks) * kBlock;
    const int64_t v_end = std::min(p.v, v_begin + kBlock);
    Scratch<T> scratch(p);
    double* acc = partial.data() + item * p.c * kSums;
    for (int64_t v0 = v_begin; v0 < v_end; v0 += kSub) {
      const int len = static_cast<int>(std::min<int64_t>(kSub, v_end - v0));
      invalid[item] += expand_target(p, target, n, v0, len, scratch.labels.data(), scratch.t.data());
      forward_rows(p.sigmoid, p.with_ce, logits + n * p.c * p.v + v0, p.v, classes, len, scratch.rows(),
                   scratch.lab(p), scratch.t.data(), acc);
    }
  });
  std::fill(sums, sums + p.n * p.c * kSums, 0.0);
  for (int64_t item = 0; item < items; ++item) {
    double* dst = sums + (item / blocks) * p.c * kSums;
    const double* src = partial.data() + item * p.c * kSums;
    for (int64_t k = 0; k < p.c * kSums; ++k) dst[k] += src[k];
  }
  int64_t total_invalid = 0;
  for (int64_t k : invalid) total_invalid += k;
  return total_invalid;
}

template <class T, class L>
void dice_backward_cpu(const DiceProblem& p, const T* logits, const L* target, const double* grads,
                       T* grad_logits) {
  const int64_t blocks = (p.v + kBlock - 1) / kBlock;
  const int classes = static_cast<int>(p.c);
  std::vector<T> g(static_cast<size_t>(p.n * p.c * kGrads));
  for (size_t k = 0; k < g.size(); ++k) g[k] = static_cast<T>(grads[k]);
  parallel_for_dynamic(p.n * blocks, [&](int64_t item) {
    const int64_t n = item / blocks, v_begin = (item % blocks) * kBlock;
    const int64_t v_end = std::min(p.v, v_begin + kBlock);
    Scratch<T> scratch(p);
    for (int64_t v0 = v_begin; v0 < v_end; v0 += kSub) {
      const int len = static_cast<int>(std::min<int64_t>(kSub, v_end - v0));
      expand_target(p, target, n, v0, len, scratch.labels.data(), scratch.t.data());
      const int64_t offset = n * p.c * p.v + v0;
      backward_rows(p.sigmoid, logits + offset, p.v, classes, len, scratch.rows(), scratch.lab(p),
                    scratch.t.data(), g.data() + n * p.c * kGrads, grad_logits + offset);
    }
  });
}

template <class T, class L>
void dice_loss_backward_cpu(const DiceProblem& p, const LossSpec& spec, const T* logits, const L* target,
                            const double* sums, const double* weight, double scale, T* grad_logits) {
  std::vector<double> grads(static_cast<size_t>(p.n * p.c * kGrads));
  loss_from_sums(spec, sums, weight, scale, -1, grads.data());
  dice_backward_cpu(p, logits, target, grads.data(), grad_logits);
}

#define FASTSEG_DICE_INSTANTIATE(T, L)                                                                    \
  template int64_t dice_sums_cpu<T, L>(const DiceProblem&, const T*, const L*, double*);                  \
  template void dice_backward_cpu<T, L>(const DiceProblem&, const T*, const L*, const double*, T*);     \
  template void dice_loss_backward_cpu<T, L>(const DiceProblem&, const LossSpec&, const T*, const L*,     \
                                             const double*, const double*, double, T*);
#define FASTSEG_DICE_INSTANTIATE_LABELS(T) \
  FASTSEG_DICE_INSTANTIATE(T, uint8_t)     \
  FASTSEG_DICE_INSTANTIATE(T, int8_t)      \
  FASTSEG_DICE_INSTANTIATE(T, int16_t)     \
  FASTSEG_DICE_INSTANTIATE(T, int32_t)     \
  FASTSEG_DICE_INSTANTIATE(T, int64_t)
FASTSEG_DICE_INSTANTIATE_LABELS(float)
FASTSEG_DICE_INSTANTIATE_LABELS(double)

}  // namespace fastseg::loss
