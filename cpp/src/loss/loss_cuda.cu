// CUDA kernels of the fused soft-Dice loss; the math is in fastseg/dice.h.
//
// Forward: a block of kThreads threads takes a tile of kThreads * kPerThread voxels of one sample
// (grid: tiles x N). Each thread holds, per voxel, the softmax's max and 1 / Σexp in registers, then
// walks the classes: its partial sums for a class are reduced over the block (warp shuffles, then
// shared memory) and written as the tile's partial, and a second kernel adds the tiles' partials
// per (sample, class) in a fixed order, so the sums do not depend on scheduling. Backward: one
// thread per voxel recomputes the softmax and writes dL/dlogits for every class. Logits in half,
// bfloat16 or float accumulate in float, double logits in double.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "fastseg/dice.h"
#include "fastseg/dice_loss.h"
#include "loss.h"

namespace fastseg::loss {
namespace {

using namespace fastseg::dice;

constexpr int kThreads = 256;
constexpr int kPerThread = 4;
constexpr int64_t kTile = kThreads * kPerThread;

cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("fastseg ") + what + " launch failed: " + cudaGetErrorString(err));
  }
}

template <class T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

__device__ inline float load(const float* p) { return *p; }
__device__ inline double load(const double* p) { return *p; }
__device__ inline float load(const __half* p) { return __half2float(*p); }
__device__ inline float load(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ inline void store(float* p, float v) { *p = v; }
__device__ inline void store(double* p, double v) { *p = v; }
__device__ inline void store(__half* p, float v) { *p = __float2half(v); }
__device__ inline void store(__nv_bfloat16* p, float v) { *p = __float2bfloat16(v); }

template <class A>
__device__ inline A warp_sum(A v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;
}

// Sums kSums values over the block; the result is valid in thread 0.
template <class A>
__device__ inline void block_sum(A (&v)[kSums], A (*shared)[kSums]) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int j = 0; j < kSums; ++j) v[j] = warp_sum(v[j]);
  __syncthreads();  // shared is reused class after class
  if (lane == 0) {
#pragma unroll
    for (int j = 0; j < kSums; ++j) shared[warp][j] = v[j];
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x >> 5;
#pragma unroll
    for (int j = 0; j < kSums; ++j) {
      v[j] = lane < warps ? shared[lane][j] : A(0);
      v[j] = warp_sum(v[j]);
    }
  }
}

template <class T, class L>
__global__ void sums_kernel(DiceProblem p, const T* __restrict__ logits, const L* __restrict__ target,
                            double* __restrict__ partials) {
  using A = typename Acc<T>::type;
  __shared__ A shared[kThreads / 32][kSums];
  const int64_t n = blockIdx.y, tile = blockIdx.x, tiles = gridDim.x;
  const T* x = logits + n * p.c * p.v;
  const int classes = static_cast<int>(p.c);
  int64_t voxel[kPerThread];
  int label[kPerThread];
  A m[kPerThread], r[kPerThread], lse[kPerThread];
#pragma unroll
  for (int k = 0; k < kPerThread; ++k) {
    const int64_t v = tile * kTile + k * kThreads + threadIdx.x;
    voxel[k] = v < p.v ? v : -1;
    label[k] = -1;
    m[k] = A(0);
    r[k] = A(1);
    lse[k] = A(0);
    if (voxel[k] < 0) continue;
    if (!p.mask) label[k] = static_cast<int>(static_cast<int64_t>(target[n * p.v + v]) - p.label_offset);
    if (!p.sigmoid) {
      A mx = load(x + v);
      for (int c = 1; c < classes; ++c) mx = max(mx, load(x + c * p.v + v));
      A s = A(0);
      for (int c = 0; c < classes; ++c) s += exp_le0(load(x + c * p.v + v) - mx);
      m[k] = mx;
      r[k] = A(1) / s;
      if (p.with_ce) lse[k] = log_pos(s) + mx;
    }
  }
  for (int c = 0; c < classes; ++c) {
    A acc[kSums] = {A(0), A(0), A(0), A(0), A(0)};
#pragma unroll
    for (int k = 0; k < kPerThread; ++k) {
      const int64_t v = voxel[k];
      if (v < 0) continue;
      const A xv = load(x + c * p.v + v);
      const A t = p.mask ? (target[(n * p.c + c) * p.v + v] != 0 ? A(1) : A(0)) : (label[k] == c ? A(1) : A(0));
      A prob, ce = A(0);
      if (p.sigmoid) {
        const A e = exp_le0(-abs_of(xv));
        prob = sigmoid_from(xv, e);
        if (p.with_ce) ce = bce_from(xv, t, e);
      } else {
        prob = exp_le0(xv - m[k]) * r[k];
        if (p.with_ce) ce = t * (lse[k] - xv);
      }
      acc[kInter] += prob * t;
      acc[kP] += prob;
      acc[kQ] += prob * prob;
      acc[kT] += t;
      acc[kCE] += ce;
    }
    block_sum(acc, shared);
    if (threadIdx.x == 0) {
      double* dst = partials + ((n * tiles + tile) * p.c + c) * kSums;
#pragma unroll
      for (int j = 0; j < kSums; ++j) dst[j] = static_cast<double>(acc[j]);
    }
  }
}

// One block per (sample, class): adds the tiles' partials in a fixed order.
__global__ void reduce_kernel(DiceProblem p, int64_t tiles, const double* __restrict__ partials,
                              double* __restrict__ sums) {
  __shared__ double shared[kThreads / 32][kSums];
  const int64_t n = blockIdx.x / p.c, c = blockIdx.x % p.c;
  double acc[kSums] = {0.0, 0.0, 0.0, 0.0, 0.0};
  for (int64_t tile = threadIdx.x; tile < tiles; tile += blockDim.x) {
    const double* src = partials + ((n * tiles + tile) * p.c + c) * kSums;
#pragma unroll
    for (int j = 0; j < kSums; ++j) acc[j] += src[j];
  }
  block_sum(acc, shared);
  if (threadIdx.x == 0) {
#pragma unroll
    for (int j = 0; j < kSums; ++j) sums[(n * p.c + c) * kSums + j] = acc[j];
  }
}

// One thread: the loss from the sums (fastseg/dice_loss.h), written as float64 or float32.
__global__ void finalize_kernel(LossSpec spec, const double* __restrict__ sums, const double* __restrict__ weight,
                                void* loss, bool loss_double) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  const double value = loss_from_sums(spec, sums, weight, 1.0, -1, nullptr);
  if (loss_double) {
    *static_cast<double*>(loss) = value;
  } else {
    *static_cast<float*>(loss) = static_cast<float>(value);
  }
}

// One thread per sample n: dL/dloss (read on the device, float64 if grad_double, else float32) times
// the loss's gradients of sample n's sums, grads (N, C, kGrads) (fastseg/dice_loss.h).
__global__ void grads_kernel(LossSpec spec, const double* __restrict__ sums, const double* __restrict__ weight,
                             const void* grad_loss, bool grad_double, double* __restrict__ grads) {
  const int64_t n = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (n >= spec.n) return;
  const double scale = grad_double ? *static_cast<const double*>(grad_loss)
                                   : static_cast<double>(*static_cast<const float*>(grad_loss));
  loss_from_sums(spec, sums, weight, scale, n, grads + n * spec.c * kGrads);
}

template <class T, class L>
__global__ void backward_kernel(DiceProblem p, const T* __restrict__ logits, const L* __restrict__ target,
                                const double* __restrict__ grads, T* __restrict__ grad_logits) {
  using A = typename Acc<T>::type;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  A* g = reinterpret_cast<A*>(shared_bytes);  // kGrads per class of this sample
  const int64_t n = blockIdx.y;
  const int classes = static_cast<int>(p.c);
  for (int64_t k = threadIdx.x; k < p.c * kGrads; k += blockDim.x) g[k] = static_cast<A>(grads[n * p.c * kGrads + k]);
  __syncthreads();
  const T* x = logits + n * p.c * p.v;
  T* dx = grad_logits + n * p.c * p.v;
  for (int64_t v = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; v < p.v;
       v += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int label = p.mask ? -1 : static_cast<int>(static_cast<int64_t>(target[n * p.v + v]) - p.label_offset);
    auto target_of = [&](int c) -> A {
      if (p.mask) return target[(n * p.c + c) * p.v + v] != 0 ? A(1) : A(0);
      return label == c ? A(1) : A(0);
    };
    if (p.sigmoid) {
      for (int c = 0; c < classes; ++c) {
        const A xv = load(x + c * p.v + v), t = target_of(c);
        const A e = exp_le0(-abs_of(xv));
        const A prob = sigmoid_from(xv, e);
        const A* gc = g + c * kGrads;
        const A d = grad_p(prob, t, gc[kGradInter], gc[kGradP], gc[kGradQ]) * sigmoid_slope_from(e) +
                    gc[kGradCE] * sigmoid_minus_target(xv, t, e);
        store(dx + c * p.v + v, d);
      }
      continue;
    }
    // Pivot form of fastseg/dice.h: j is the class of largest logit.
    A mx = load(x + v);
    int j = 0;
    for (int c = 1; c < classes; ++c) {
      const A xv = load(x + c * p.v + v);
      if (xv > mx) {
        mx = xv;
        j = c;
      }
    }
    A s = A(0);
    for (int c = 0; c < classes; ++c) s += exp_le0(load(x + c * p.v + v) - mx);
    const A r = A(1) / s;
    const A* gj = g + j * kGrads;
    const A gpiv = grad_p(r, target_of(j), gj[kGradInter], gj[kGradP], gj[kGradQ]);
    A q = A(0), rest = A(0), gl = A(0);
    for (int c = 0; c < classes; ++c) {
      const A prob = exp_le0(load(x + c * p.v + v) - mx) * r, t = target_of(c);
      const A* gc = g + c * kGrads;
      gl += t * gc[kGradCE];
      if (c == j) continue;
      q += prob;
      rest += prob * (grad_p(prob, t, gc[kGradInter], gc[kGradP], gc[kGradQ]) - gpiv);
    }
    for (int c = 0; c < classes; ++c) {
      const A prob = exp_le0(load(x + c * p.v + v) - mx) * r, t = target_of(c);
      const A* gc = g + c * kGrads;
      const A p_minus_t = c == j ? (A(1) - t) - q : prob - t;
      store(dx + c * p.v + v,
            prob * ((grad_p(prob, t, gc[kGradInter], gc[kGradP], gc[kGradQ]) - gpiv) - rest) + gl * p_minus_t);
    }
  }
}

int64_t tiles_of(const DiceProblem& p) { return (p.v + kTile - 1) / kTile; }

template <class T, class Fn>
void with_target(DType target_type, const void* target, Fn&& fn) {
  switch (target_type) {
    case DType::u8: return fn(static_cast<const T*>(nullptr), static_cast<const uint8_t*>(target));
    case DType::i8: return fn(static_cast<const T*>(nullptr), static_cast<const int8_t*>(target));
    case DType::i16: return fn(static_cast<const T*>(nullptr), static_cast<const int16_t*>(target));
    case DType::i32: return fn(static_cast<const T*>(nullptr), static_cast<const int32_t*>(target));
    case DType::i64: return fn(static_cast<const T*>(nullptr), static_cast<const int64_t*>(target));
    default: throw std::invalid_argument("target: expected dtype uint8, int8, int16, int32 or int64");
  }
}

// Calls fn(T* tag, L* target) with the C++ types of the logits and the target.
template <class Fn>
void dispatch(DType logits_type, DType target_type, const void* target, Fn&& fn) {
  switch (logits_type) {
    case DType::f16: return with_target<__half>(target_type, target, fn);
    case DType::bf16: return with_target<__nv_bfloat16>(target_type, target, fn);
    case DType::f32: return with_target<float>(target_type, target, fn);
    case DType::f64: return with_target<double>(target_type, target, fn);
    default: throw std::invalid_argument("logits: expected dtype float16, bfloat16, float32 or float64");
  }
}

}  // namespace

int64_t dice_workspace_doubles(const DiceProblem& p) { return p.n * tiles_of(p) * p.c * kSums; }

void dice_sums_cuda(const DiceProblem& p, DType logits_type, const void* logits, DType target_type,
                    const void* target, double* workspace, double* sums, uintptr_t stream) {
  if (p.n == 0 || p.c == 0) return;
  if (p.n > 65535) throw std::invalid_argument("logits: expected N <= 65535 for the CUDA kernels");
  const int64_t tiles = tiles_of(p);
  if (tiles > 0x7fffffff) throw std::invalid_argument("logits: too many voxels per sample for the CUDA kernels");
  if (tiles == 0) {
    cudaMemsetAsync(sums, 0, sizeof(double) * p.n * p.c * kSums, as_stream(stream));
    check_launch("dice_sums (memset)");
    return;
  }
  dispatch(logits_type, target_type, target, [&](const auto* tag, const auto* t) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    sums_kernel<<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(p.n)), kThreads, 0, as_stream(stream)>>>(
        p, static_cast<const T*>(logits), t, workspace);
  });
  check_launch("dice_sums");
  reduce_kernel<<<static_cast<unsigned>(p.n * p.c), kThreads, 0, as_stream(stream)>>>(p, tiles, workspace, sums);
  check_launch("dice_sums (reduce)");
}

void dice_backward_cuda(const DiceProblem& p, DType logits_type, const void* logits, DType target_type,
                        const void* target, const double* grads, void* grad_logits, uintptr_t stream) {
  if (p.n == 0 || p.c == 0 || p.v == 0) return;
  if (p.n > 65535) throw std::invalid_argument("logits: expected N <= 65535 for the CUDA kernels");
  int64_t blocks = (p.v + kThreads - 1) / kThreads;
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  dispatch(logits_type, target_type, target, [&](const auto* tag, const auto* t) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(tag)>>;
    using A = typename Acc<T>::type;
    const size_t shared = sizeof(A) * static_cast<size_t>(p.c) * kGrads;
    backward_kernel<<<dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(p.n)), kThreads, shared,
                      as_stream(stream)>>>(p, static_cast<const T*>(logits), t, grads, static_cast<T*>(grad_logits));
  });
  check_launch("dice_backward");
}

void dice_finalize_cuda(const LossSpec& spec, const double* sums, const double* weight, void* loss,
                        bool loss_double, uintptr_t stream) {
  finalize_kernel<<<1, 1, 0, as_stream(stream)>>>(spec, sums, weight, loss, loss_double);
  check_launch("dice_loss (finalize)");
}

void dice_loss_backward_cuda(const DiceProblem& p, const LossSpec& spec, DType logits_type, const void* logits,
                             DType target_type, const void* target, const double* sums, const double* weight,
                             const void* grad_loss, bool grad_double, double* grads, void* grad_logits,
                             uintptr_t stream) {
  if (p.n == 0 || p.c == 0 || p.v == 0) return;
  constexpr int kGradThreads = 64;
  const unsigned blocks = static_cast<unsigned>((p.n + kGradThreads - 1) / kGradThreads);
  grads_kernel<<<blocks, kGradThreads, 0, as_stream(stream)>>>(spec, sums, weight, grad_loss, grad_double, grads);
  check_launch("dice_loss_backward (gradients of the sums)");
  dice_backward_cuda(p, logits_type, logits, target_type, target, grads, grad_logits, stream);
}

}  // namespace fastseg::loss
