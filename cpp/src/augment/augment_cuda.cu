// CUDA kernels of the augment op family: one launch per stage for the whole (N, C, D, H, W) batch,
// on the caller's stream. Grids are (voxel blocks, N or N * C); per-voxel arithmetic comes from the
// same headers as the CPU kernels (augment_map.h, augment_sample.h, augment_intensity.h), so both
// paths agree up to float rounding. Reductions (contrast, gamma) accumulate shifted sums in double
// with atomics into a small Stats record per (sample, channel) in the caller's workspace.
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "augment.h"
#include "fastseg/augment_intensity.h"
#include "fastseg/augment_sample.h"

namespace fastseg::augment {
namespace {

constexpr int kThreads = 256;

struct Stats {  // 4 doubles
  double s1, s2, shift;
  float min, max;
};
static_assert(sizeof(Stats) == 4 * sizeof(double), "Stats must stay 4 doubles");

cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("fastseg ") + what + " launch failed: " + cudaGetErrorString(err));
  }
}

dim3 grid_for(int64_t per_item, int64_t items) {
  int64_t bx = (per_item + kThreads - 1) / kThreads;
  if (bx < 1) bx = 1;
  if (bx > 65536) bx = 65536;
  return dim3(static_cast<unsigned>(bx), static_cast<unsigned>(items));
}

__device__ inline int64_t first_index() { return blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; }
__device__ inline int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

template <class L>
__global__ void spatial_kernel(SpatialArgs a, const float* __restrict__ image, float* __restrict__ out_image,
                               const L* __restrict__ label, L* __restrict__ out_label) {
  const int64_t n = blockIdx.y;
  const int64_t ov = a.out.z * a.out.y * a.out.x, sv = a.src.z * a.src.y * a.src.x;
  const int64_t gstride = static_cast<int64_t>(a.gz) * a.gy * a.gx * 3;
  const float* coef = a.coef != nullptr && (a.has_elastic == nullptr || a.has_elastic[n] != 0)
                          ? a.coef + n * gstride
                          : nullptr;
  const VoxelMap m = a.maps[n];
  const bool need_taps = a.image_order == 1 || (label != nullptr && a.label_mode == LABEL_LINEAR);
  const L lcval = static_cast<L>(a.label_cval);
  for (int64_t v = first_index(); v < ov; v += grid_stride()) {
    const int64_t x = v % a.out.x, y = (v / a.out.x) % a.out.y, z = v / (a.out.x * a.out.y);
    float s[3];
    map_voxel(m, coef, a.gz, a.gy, a.gx, a.out.z, a.out.y, a.out.x, z, y, x, s);
    LinearTaps t;
    if (need_taps) linear_taps(s[0], s[1], s[2], a.src.z, a.src.y, a.src.x, a.border, t);
    for (int64_t c = 0; c < a.c; ++c) {
      const float* src = image + (n * a.c + c) * sv;
      out_image[(n * a.c + c) * ov + v] =
          a.image_order == 1 ? apply_taps(t, src, a.cval)
                             : sample_cubic(src, a.src.z, a.src.y, a.src.x, s[0], s[1], s[2], a.border, a.cval);
    }
    if (label != nullptr) {
      const L* lab = label + n * sv;
      out_label[n * ov + v] = a.label_mode == LABEL_LINEAR
                                  ? sample_label_linear(lab, t, lcval)
                                  : sample_nearest(lab, a.src.z, a.src.y, a.src.x, s[0], s[1], s[2], a.border, lcval);
    }
  }
}

__global__ void noise_kernel(float* data, int64_t c_count, int64_t vol, const uint8_t* active, const float* sigma,
                             const uint64_t* keys) {
  const int64_t nc = blockIdx.y;
  if (!active[nc]) return;
  const NoiseKey k = noise_key(keys[nc / c_count], nc % c_count);
  const float s = sigma[nc];
  float* v = data + nc * vol;
  for (int64_t i = first_index(); i < vol; i += grid_stride()) v[i] += s * gauss_noise(k, static_cast<uint32_t>(i));
}

__global__ void brightness_kernel(float* data, int64_t vol, const uint8_t* active, const float* mul,
                                  const float* add) {
  const int64_t nc = blockIdx.y;
  if (!active[nc]) return;
  const float m = mul[nc], s = add[nc];
  float* v = data + nc * vol;
  for (int64_t i = first_index(); i < vol; i += grid_stride()) v[i] = v[i] * m + s;
}

__global__ void stats_init_kernel(const float* data, int64_t nc_count, int64_t vol, Stats* stats) {
  const int64_t nc = first_index();
  if (nc >= nc_count) return;
  stats[nc] = Stats{0.0, 0.0, vol > 0 ? static_cast<double>(data[nc * vol]) : 0.0, __int_as_float(0x7f800000),
                    __int_as_float(0xff800000)};
}

// Float min/max through integer atomics: non-negative floats order as signed ints, negative ones
// (sign bit set, -0 included) in reverse as unsigned ints.
__device__ inline void atomic_min_float(float* addr, float v) {
  if (__float_as_int(v) >= 0) {
    atomicMin(reinterpret_cast<int*>(addr), __float_as_int(v));
  } else {
    atomicMax(reinterpret_cast<unsigned int*>(addr), __float_as_uint(v));
  }
}

__device__ inline void atomic_max_float(float* addr, float v) {
  if (__float_as_int(v) >= 0) {
    atomicMax(reinterpret_cast<int*>(addr), __float_as_int(v));
  } else {
    atomicMin(reinterpret_cast<unsigned int*>(addr), __float_as_uint(v));
  }
}

__global__ void stats_kernel(const float* data, int64_t vol, const uint8_t* active, Stats* stats) {
  const int64_t nc = blockIdx.y;
  if (!active[nc]) return;
  const float* v = data + nc * vol;
  const double k = stats[nc].shift;
  double s1 = 0.0, s2 = 0.0;
  float lo = __int_as_float(0x7f800000), hi = __int_as_float(0xff800000);
  for (int64_t i = first_index(); i < vol; i += grid_stride()) {
    const double d = static_cast<double>(v[i]) - k;
    s1 += d;
    s2 += d * d;
    lo = fminf(lo, v[i]);
    hi = fmaxf(hi, v[i]);
  }
  for (int off = 16; off > 0; off /= 2) {
    s1 += __shfl_down_sync(0xffffffffu, s1, off);
    s2 += __shfl_down_sync(0xffffffffu, s2, off);
    lo = fminf(lo, __shfl_down_sync(0xffffffffu, lo, off));
    hi = fmaxf(hi, __shfl_down_sync(0xffffffffu, hi, off));
  }
  if ((threadIdx.x & 31) == 0) {
    atomicAdd(&stats[nc].s1, s1);
    atomicAdd(&stats[nc].s2, s2);
    atomic_min_float(&stats[nc].min, lo);
    atomic_max_float(&stats[nc].max, hi);
  }
}

__device__ inline void mean_std(const Stats& s, int64_t vol, double& mean, double& sd) {
  const double m1 = s.s1 / static_cast<double>(vol);
  const double var = s.s2 / static_cast<double>(vol) - m1 * m1;
  mean = s.shift + m1;
  sd = sqrt(var > 0.0 ? var : 0.0);
}

__global__ void contrast_kernel(float* data, int64_t vol, const uint8_t* active, const float* factor,
                                bool preserve_range, const Stats* stats) {
  const int64_t nc = blockIdx.y;
  if (!active[nc]) return;
  double mean_d, sd;
  mean_std(stats[nc], vol, mean_d, sd);
  const float mean = static_cast<float>(mean_d), f = factor[nc], lo = stats[nc].min, hi = stats[nc].max;
  float* v = data + nc * vol;
  for (int64_t i = first_index(); i < vol; i += grid_stride()) {
    const float y = (v[i] - mean) * f + mean;
    v[i] = preserve_range ? fminf(fmaxf(y, lo), hi) : y;
  }
}

__global__ void gamma_map_kernel(float* data, int64_t vol, const uint8_t* active, const float* gamma,
                                 const uint8_t* invert, const Stats* stats) {
  const int64_t nc = blockIdx.y;
  if (!active[nc]) return;
  const Stats s = stats[nc];
  const float sign = invert[nc] ? -1.0f : 1.0f, g = gamma[nc];
  const float mn = invert[nc] ? -s.max : s.min, rg = s.max - s.min, inv = 1.0f / (rg + 1e-7f);
  float* v = data + nc * vol;
  for (int64_t i = first_index(); i < vol; i += grid_stride()) {
    v[i] = fast_pow((sign * v[i] - mn) * inv, g) * rg + mn;
  }
}

__global__ void gamma_restore_kernel(float* data, int64_t vol, const uint8_t* active, const uint8_t* invert,
                                     bool retain_stats, const Stats* before, const Stats* after) {
  const int64_t nc = blockIdx.y;
  if (!active[nc]) return;
  const double sign = invert[nc] ? -1.0 : 1.0;
  double sc = sign, sh = 0.0;
  if (retain_stats) {
    double mean, sd, mean2, sd2;
    mean_std(before[nc], vol, mean, sd);
    mean_std(after[nc], vol, mean2, sd2);
    const double a = sd / (sd2 + 1e-8);
    sc = sign * a;
    sh = sign * (sign * mean - mean2 * a);
  }
  const float fsc = static_cast<float>(sc), fsh = static_cast<float>(sh);
  float* v = data + nc * vol;
  for (int64_t i = first_index(); i < vol; i += grid_stride()) v[i] = v[i] * fsc + fsh;
}

__global__ void bias_kernel(float* data, Shape3 shape, const uint8_t* active, const float* coef, int order) {
  const int64_t nc = blockIdx.y;
  if (!active[nc]) return;
  const int64_t vol = shape.z * shape.y * shape.x;
  const float* c = coef + nc * bias_terms(order);
  float* v = data + nc * vol;
  for (int64_t i = first_index(); i < vol; i += grid_stride()) {
    const int64_t x = i % shape.x, y = (i / shape.x) % shape.y, z = i / (shape.x * shape.y);
    const float p = bias_log_at(c, order, unit_coord(z, shape.z), unit_coord(y, shape.y), unit_coord(x, shape.x));
    v[i] *= fast_exp(p);
  }
}

// One axis of the separable blur, src -> dst; an axis with sigma ~ 0 copies.
__global__ void blur_kernel(const float* src, float* dst, Shape3 shape, int axis, const uint8_t* active,
                            const float* sigma) {
  const int64_t nc = blockIdx.y;
  if (!active[nc]) return;
  const int64_t vol = shape.z * shape.y * shape.x;
  const float s = sigma[nc * 3 + axis];
  const int64_t len = axis == 0 ? shape.z : (axis == 1 ? shape.y : shape.x);
  const int64_t step = axis == 0 ? shape.y * shape.x : (axis == 1 ? shape.x : 1);
  const float* in = src + nc * vol;
  float* out = dst + nc * vol;
  const bool skip = !(s > 1e-15f);
  const int r = skip ? 0 : gauss_radius(s);
  const float inv2s2 = skip ? 0.0f : 0.5f / (s * s);
  for (int64_t i = first_index(); i < vol; i += grid_stride()) {
    if (skip) {
      out[i] = in[i];
      continue;
    }
    const int64_t l = (i / step) % len, base = i - l * step;
    float acc = 0.0f, norm = 0.0f;
    for (int t = -r; t <= r; ++t) {
      const float w = expf(-static_cast<float>(t * t) * inv2s2);
      acc += w * in[base + reflect_index(l + t, len) * step];
      norm += w;
    }
    out[i] = acc / norm;
  }
}

__global__ void copy_active_kernel(const float* src, float* dst, int64_t vol, const uint8_t* active) {
  const int64_t nc = blockIdx.y;
  if (!active[nc]) return;
  for (int64_t i = first_index(); i < vol; i += grid_stride()) dst[nc * vol + i] = src[nc * vol + i];
}

__device__ inline Shape3 low_shape(const Shape3& s, const float* zoom, int64_t nc) {
  Shape3 m;
  m.z = lowres_size(s.z, zoom[nc * 3]);
  m.y = lowres_size(s.y, zoom[nc * 3 + 1]);
  m.x = lowres_size(s.x, zoom[nc * 3 + 2]);
  return m;
}

__global__ void lowres_down_kernel(const float* data, float* low, Shape3 s, const uint8_t* active,
                                   const float* zoom) {
  const int64_t nc = blockIdx.y;
  if (!active[nc]) return;
  const int64_t vol = s.z * s.y * s.x;
  const Shape3 m = low_shape(s, zoom, nc);
  const int64_t lvol = m.z * m.y * m.x;
  for (int64_t i = first_index(); i < lvol; i += grid_stride()) {
    const int64_t x = i % m.x, y = (i / m.x) % m.y, z = i / (m.x * m.y);
    low[nc * vol + i] = data[nc * vol + (nearest_src(z, s.z, m.z) * s.y + nearest_src(y, s.y, m.y)) * s.x +
                             nearest_src(x, s.x, m.x)];
  }
}

__global__ void lowres_up_kernel(float* data, const float* low, Shape3 s, const uint8_t* active, const float* zoom) {
  const int64_t nc = blockIdx.y;
  if (!active[nc]) return;
  const int64_t vol = s.z * s.y * s.x;
  const Shape3 m = low_shape(s, zoom, nc);
  const float* q = low + nc * vol;
  for (int64_t i = first_index(); i < vol; i += grid_stride()) {
    const int64_t x = i % s.x, y = (i / s.x) % s.y, z = i / (s.x * s.y);
    int64_t z0, z1, y0, y1, x0, x1;
    float wz, wy, wx;
    linear_src(z, m.z, s.z, z0, z1, wz);
    linear_src(y, m.y, s.y, y0, y1, wy);
    linear_src(x, m.x, s.x, x0, x1, wx);
    const float* r00 = q + (z0 * m.y + y0) * m.x;
    const float* r01 = q + (z0 * m.y + y1) * m.x;
    const float* r10 = q + (z1 * m.y + y0) * m.x;
    const float* r11 = q + (z1 * m.y + y1) * m.x;
    const float a0 = (1.0f - wx) * r00[x0] + wx * r00[x1];
    const float a1 = (1.0f - wx) * r01[x0] + wx * r01[x1];
    const float a2 = (1.0f - wx) * r10[x0] + wx * r10[x1];
    const float a3 = (1.0f - wx) * r11[x0] + wx * r11[x1];
    data[nc * vol + i] = (1.0f - wz) * ((1.0f - wy) * a0 + wy * a1) + wz * ((1.0f - wy) * a2 + wy * a3);
  }
}

int64_t volume_of(const Batch& b) { return b.shape.z * b.shape.y * b.shape.x; }

}  // namespace

template <class L>
void spatial_cuda(const SpatialArgs& a, const float* image, float* out_image, const L* label, L* out_label,
                  uintptr_t stream) {
  const int64_t ov = a.out.z * a.out.y * a.out.x;
  if (a.n == 0 || ov == 0) return;
  spatial_kernel<L><<<grid_for(ov, a.n), kThreads, 0, as_stream(stream)>>>(a, image, out_image, label, out_label);
  check_launch("augment spatial");
}

#define FASTSEG_SPATIAL_CUDA(L) \
  template void spatial_cuda<L>(const SpatialArgs&, const float*, float*, const L*, L*, uintptr_t);
FASTSEG_SPATIAL_CUDA(uint8_t)
FASTSEG_SPATIAL_CUDA(int8_t)
FASTSEG_SPATIAL_CUDA(int16_t)
FASTSEG_SPATIAL_CUDA(int32_t)
FASTSEG_SPATIAL_CUDA(int64_t)
#undef FASTSEG_SPATIAL_CUDA

void noise_cuda(const Batch& b, const uint8_t* active, const float* sigma, const uint64_t* keys, uintptr_t stream) {
  const int64_t vol = volume_of(b);
  if (b.n * b.c == 0 || vol == 0) return;
  noise_kernel<<<grid_for(vol, b.n * b.c), kThreads, 0, as_stream(stream)>>>(b.data, b.c, vol, active, sigma, keys);
  check_launch("augment noise");
}

void brightness_cuda(const Batch& b, const uint8_t* active, const float* mul, const float* add, uintptr_t stream) {
  const int64_t vol = volume_of(b);
  if (b.n * b.c == 0 || vol == 0) return;
  brightness_kernel<<<grid_for(vol, b.n * b.c), kThreads, 0, as_stream(stream)>>>(b.data, vol, active, mul, add);
  check_launch("augment brightness");
}

namespace {
void moments_cuda(const Batch& b, const uint8_t* active, Stats* stats, cudaStream_t s) {
  const int64_t vol = volume_of(b), count = b.n * b.c;
  stats_init_kernel<<<static_cast<unsigned>((count + kThreads - 1) / kThreads), kThreads, 0, s>>>(b.data, count,
                                                                                                  vol, stats);
  check_launch("augment stats init");
  stats_kernel<<<grid_for(vol, count), kThreads, 0, s>>>(b.data, vol, active, stats);
  check_launch("augment stats");
}
}  // namespace

void contrast_cuda(const Batch& b, const uint8_t* active, const float* factor, bool preserve_range, double* workspace,
                   uintptr_t stream) {
  const int64_t vol = volume_of(b);
  if (b.n * b.c == 0 || vol == 0) return;
  Stats* stats = reinterpret_cast<Stats*>(workspace);
  moments_cuda(b, active, stats, as_stream(stream));
  contrast_kernel<<<grid_for(vol, b.n * b.c), kThreads, 0, as_stream(stream)>>>(b.data, vol, active, factor,
                                                                               preserve_range, stats);
  check_launch("augment contrast");
}

void gamma_cuda(const Batch& b, const uint8_t* active, const float* gamma, const uint8_t* invert, bool retain_stats,
                double* workspace, uintptr_t stream) {
  const int64_t vol = volume_of(b), count = b.n * b.c;
  if (count == 0 || vol == 0) return;
  Stats* before = reinterpret_cast<Stats*>(workspace);
  Stats* after = before + count;
  const cudaStream_t s = as_stream(stream);
  moments_cuda(b, active, before, s);
  gamma_map_kernel<<<grid_for(vol, count), kThreads, 0, s>>>(b.data, vol, active, gamma, invert, before);
  check_launch("augment gamma");
  if (retain_stats) moments_cuda(b, active, after, s);
  gamma_restore_kernel<<<grid_for(vol, count), kThreads, 0, s>>>(b.data, vol, active, invert, retain_stats, before,
                                                                 after);
  check_launch("augment gamma restore");
}

void bias_field_cuda(const Batch& b, const uint8_t* active, const float* coef, int order, uintptr_t stream) {
  const int64_t vol = volume_of(b);
  if (b.n * b.c == 0 || vol == 0) return;
  bias_kernel<<<grid_for(vol, b.n * b.c), kThreads, 0, as_stream(stream)>>>(b.data, b.shape, active, coef, order);
  check_launch("augment bias field");
}

void blur_cuda(const Batch& b, const uint8_t* active, const float* sigma, float* workspace, uintptr_t stream) {
  const int64_t vol = volume_of(b), count = b.n * b.c;
  if (count == 0 || vol == 0) return;
  const cudaStream_t s = as_stream(stream);
  const dim3 grid = grid_for(vol, count);
  blur_kernel<<<grid, kThreads, 0, s>>>(b.data, workspace, b.shape, 0, active, sigma);
  check_launch("augment blur z");
  blur_kernel<<<grid, kThreads, 0, s>>>(workspace, b.data, b.shape, 1, active, sigma);
  check_launch("augment blur y");
  blur_kernel<<<grid, kThreads, 0, s>>>(b.data, workspace, b.shape, 2, active, sigma);
  check_launch("augment blur x");
  copy_active_kernel<<<grid, kThreads, 0, s>>>(workspace, b.data, vol, active);
  check_launch("augment blur copy");
}

void lowres_cuda(const Batch& b, const uint8_t* active, const float* zoom, float* workspace, uintptr_t stream) {
  const int64_t vol = volume_of(b), count = b.n * b.c;
  if (count == 0 || vol == 0) return;
  const cudaStream_t s = as_stream(stream);
  lowres_down_kernel<<<grid_for(vol, count), kThreads, 0, s>>>(b.data, workspace, b.shape, active, zoom);
  check_launch("augment lowres down");
  lowres_up_kernel<<<grid_for(vol, count), kThreads, 0, s>>>(b.data, workspace, b.shape, active, zoom);
  check_launch("augment lowres up");
}

}  // namespace fastseg::augment
