// Per-voxel math of the fused soft-Dice loss, shared by the CPU (cpp/src/loss/loss.cpp) and CUDA
// (cpp/src/loss/loss_cuda.cu) kernels.
//
// The soft Dice loss of Milletari, Navab & Ahmadi ("V-Net", 3DV 2016), 1 - 2 Σpt / (Σp² + Σt²) per
// class, and its Dice + cross-entropy variant are functions of five sums per (sample n, class c)
// over the voxels v, with p the softmax over classes (or the sigmoid per class) of the logits x and
// t the one-hot target, built on the fly from an integer label map (or read from a multi-label
// mask):
//     I = Σ p t,   P = Σ p,   Q = Σ p²,   T = Σ t,   E = Σ ce
// where ce is, with softmax, the voxel's cross-entropy -log p_l counted in the class l of its label
// (so Σ_c E_c is the summed cross-entropy) and, with sigmoid, the binary cross-entropy with logits
// of (x_c, t_c). Weights, smoothing, squared or plain denominators, include_background and batch
// or per-sample reduction act on these few sums (fastseg/dice_loss.h gives the loss and its
// gradients from them), so one kernel serves every option. The backward pass takes dL/d(I, P, Q, E)
// per (n, c) and, per voxel, recomputes p from the logits (nothing of the forward pass is stored):
//     g_c = dI_c t_c + dP_c + 2 dQ_c p_c                     (dL/dp_c)
//     softmax: dx_c = p_c (g_c - Σ_k p_k g_k) + dE_l (p_c - t_c)
//     sigmoid: dx_c = g_c p_c (1 - p_c)        + dE_c (p_c - t_c)
// written so that saturated voxels lose nothing to 1 - p: with sigmoid, p (1 - p) = e / (1 + e)² and
// 1 - p = sigmoid(-x) from e = exp(-|x|); with softmax, the class j of largest logit is the pivot,
//     g_c - Σ_k p_k g_k = (g_c - g_j) - Σ_{k≠j} p_k (g_k - g_j),   p_j - t_j = (1 - t_j) - Σ_{k≠j} p_k.
//
// Exponentials and logarithms of float inputs use branch-free polynomials (relative error ~2e-7)
// that the CPU compiler vectorises; double inputs use the C library; the GPU uses CUDA's expf/logf.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "fastseg/portability.h"

namespace fastseg::dice {

// Layout of the per-(n, c) sums and of their gradients.
enum Sum : int { kInter = 0, kP = 1, kQ = 2, kT = 3, kCE = 4, kSums = 5 };
enum Grad : int { kGradInter = 0, kGradP = 1, kGradQ = 2, kGradCE = 3, kGrads = 4 };

FASTSEG_HD inline float bits_to_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

FASTSEG_HD inline uint32_t float_to_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

// exp(x) for x <= 0 (the only arguments the loss needs: x - max and -|x|); x < -87 gives exp(-87).
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2 (n rounded to nearest by adding and removing
// 1.5 * 2^23, which compilers keep as written without -ffast-math), then Cephes' expf polynomial.
FASTSEG_HD inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const int n = static_cast<int>(fn);
  float r = x - fn * 0.693359375f;
  r = r + fn * 2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r2 + r + 1.0f;
  return e * bits_to_float(static_cast<uint32_t>(n + 127) << 23);
}

// log(x) for normal x > 0. Cephes' logf: x = m 2^e with m in [sqrt(1/2), sqrt(2)), polynomial in m - 1.
FASTSEG_HD inline float log_positive(float x) {
  const uint32_t u = float_to_bits(x);
  int e = static_cast<int>((u >> 23) & 0xffu) - 126;
  float m = bits_to_float((u & 0x7fffffu) | 0x3f000000u);  // [0.5, 1)
  const bool small = m < 0.707106781186547524f;
  e -= small ? 1 : 0;
  m = small ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  float y = m * z * p;
  const float fe = static_cast<float>(e);
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  return m + y + 0.693359375f * fe;
}

// The exp and log the kernels use, by accumulation type.
FASTSEG_HD inline float exp_le0(float x) {
#ifdef __CUDA_ARCH__
  return expf(x);
#else
  return exp_nonpositive(x);
#endif
}
FASTSEG_HD inline double exp_le0(double x) { return exp(x); }
FASTSEG_HD inline float log_pos(float x) {
#ifdef __CUDA_ARCH__
  return logf(x);
#else
  return log_positive(x);
#endif
}
FASTSEG_HD inline double log_pos(double x) { return log(x); }

template <class A>
FASTSEG_HD inline A abs_of(A x) {
  return x < A(0) ? -x : x;
}

// Sigmoid and binary cross-entropy with logits from e = exp(-|x|) (computed once for both):
// sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) otherwise;
// bce(x, t) = max(x, 0) - x t + log(1 + e).
template <class A>
FASTSEG_HD inline A sigmoid_from(A x, A e) {
  const A d = A(1) / (A(1) + e);
  return x >= A(0) ? d : e * d;
}

// sigmoid'(x) = p (1 - p) = e / (1 + e)², without the cancellation of 1 - p for large x.
template <class A>
FASTSEG_HD inline A sigmoid_slope_from(A e) {
  const A d = A(1) / (A(1) + e);
  return e * d * d;
}

// sigmoid(x) - t for t in {0, 1}, with 1 - sigmoid(x) = sigmoid(-x) computed directly.
template <class A>
FASTSEG_HD inline A sigmoid_minus_target(A x, A t, A e) {
  const A d = A(1) / (A(1) + e);
  const A p = x >= A(0) ? d : e * d;
  const A q = x >= A(0) ? e * d : d;
  return (A(1) - t) * p - t * q;
}

template <class A>
FASTSEG_HD inline A bce_from(A x, A t, A e) {
  return (x > A(0) ? x : A(0)) - x * t + log_pos(A(1) + e);
}

// dL/dp_c from the gradients of the sums; g points at the class's kGrads values.
template <class A>
FASTSEG_HD inline A grad_p(A p, A t, A g_inter, A g_p, A g_q) {
  return g_inter * t + g_p + A(2) * g_q * p;
}

// Whether voxel label l is class c of the one-hot target (label maps: class c is label c + offset;
// offset 1 makes a single sigmoid channel the foreground of a {0, 1} map).
template <class L>
FASTSEG_HD inline bool is_class(L label, int c, int offset) {
  return static_cast<int64_t>(label) == static_cast<int64_t>(c + offset);
}

}  // namespace fastseg::dice
