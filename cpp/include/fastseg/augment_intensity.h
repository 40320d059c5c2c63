// Per-voxel arithmetic of the intensity augmentations, shared by the CPU and CUDA kernels.
//
// - Counter-based Gaussian noise. Per (sample key, channel) the SplitMix64 output (Steele, Lea &
//   Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014) gives two 32-bit keys;
//   per voxel index i, two keyed Weyl steps i * odd + key through the "lowbias32" integer hash
//   (C. Wellons, hash-prospector) give two 24-bit uniforms, turned into one normal by Box-Muller
//   (cosine branch). A voxel's noise depends on (key, channel, voxel) only: CPU, CUDA, batched or
//   single sample all draw the same numbers, and the 32-bit arithmetic vectorises.
// - Branch-free log2 / exp2 / cos(2 pi u) polynomials (relative error ~1e-7) that vectorise on the
//   CPU and run unchanged on the GPU, for gamma, the bias field and the noise.
// - Index maps of the simulated low resolution, written as PyTorch's F.interpolate computes them
//   (mode="nearest" down, mode="trilinear", align_corners=False up), and SciPy's "reflect" border
//   of the Gaussian blur.
#pragma once
#include <cmath>
#include <cstdint>

#include "fastseg/augment_map.h"

namespace fastseg::augment {

FASTSEG_HD inline uint64_t splitmix64(uint64_t key, uint64_t counter) {
  uint64_t z = key + (counter + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

FASTSEG_HD inline uint32_t lowbias32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x7feb352dU;
  h ^= h >> 15;
  h *= 0x846ca68bU;
  h ^= h >> 16;
  return h;
}

struct NoiseKey {
  uint32_t k0, k1;
};

FASTSEG_HD inline NoiseKey noise_key(uint64_t key, int64_t channel) {
  const uint64_t h = splitmix64(key, static_cast<uint64_t>(channel));
  return {static_cast<uint32_t>(h), static_cast<uint32_t>(h >> 32)};
}

// Bit casts; __builtin_bit_cast (not memcpy) keeps the CPU loops vectorisable.
FASTSEG_HD inline float float_from_bits(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  return __builtin_bit_cast(float, u);
#endif
}

FASTSEG_HD inline uint32_t bits_from_float(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  return __builtin_bit_cast(uint32_t, f);
#endif
}

// floor(x) as an int for |x| < 2^31, in a form compilers vectorise (floorf often is not).
FASTSEG_HD inline int floor_to_int(float x) {
  const int t = static_cast<int>(x);
  return t - (x < static_cast<float>(t) ? 1 : 0);
}

// log2(x) for finite x > 0 (normal floats): mantissa in [sqrt(1/2), sqrt(2)), then Cephes' logf
// polynomial for log(1 + f) (S. Moshier, Cephes Math Library), no division.
FASTSEG_HD inline float fast_log2(float x) {
  const uint32_t u = bits_from_float(x);
  float e = static_cast<float>(static_cast<int>((u >> 23) & 0xffu) - 127);
  float m = float_from_bits((u & 0x7fffffu) | 0x3f800000u);  // [1, 2)
  const bool big = m > 1.41421356f;
  m = big ? m * 0.5f : m;
  e = big ? e + 1.0f : e;
  const float f = m - 1.0f, z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  const float ln_m = f + (f * z * p - 0.5f * z);
  return e + ln_m * 1.44269504088896341f;
}

// 2^y, y clamped to [-126, 127].
FASTSEG_HD inline float fast_exp2(float y) {
  y = y < -126.0f ? -126.0f : (y > 127.0f ? 127.0f : y);
  const int n = floor_to_int(y + 0.5f);
  const float f = (y - static_cast<float>(n)) * 0.693147180559945309f;  // |f| <= ln2 / 2
  const float p =
      1.0f + f * (1.0f + f * (0.5f + f * (1.0f / 6.0f + f * (1.0f / 24.0f + f * (1.0f / 120.0f +
                                                                      f * (1.0f / 720.0f + f * (1.0f / 5040.0f)))))));
  return p * float_from_bits(static_cast<uint32_t>(n + 127) << 23);
}

FASTSEG_HD inline float fast_exp(float y) { return fast_exp2(y * 1.44269504088896341f); }

// x^g for x >= 0 and g > 0 (0 for x <= 1e-30).
FASTSEG_HD inline float fast_pow(float x, float g) {
  const float r = fast_exp2(g * fast_log2(x > 1e-30f ? x : 1e-30f));
  return r * static_cast<float>(x > 1e-30f);
}

// sqrt(x) for 0 <= x < 2^126: Newton-refined reciprocal square root on the CPU (sqrtf's errno
// handling stops vectorisation), sqrtf on the GPU.
FASTSEG_HD inline float fast_sqrt(float x) {
#ifdef __CUDA_ARCH__
  return sqrtf(x);
#else
  float y = float_from_bits(0x5f375a86u - (bits_from_float(x) >> 1));
  y = y * (1.5f - 0.5f * x * y * y);
  y = y * (1.5f - 0.5f * x * y * y);
  y = y * (1.5f - 0.5f * x * y * y);
  return x * y;
#endif
}

// cos(2 pi u) for u in [0, 1).
FASTSEG_HD inline float fast_cos2pi(float u) {
  float a = fabsf(u - 0.5f);  // cos(2 pi u) = -cos(2 pi a)
  const bool fold = a > 0.25f;
  a = fold ? 0.5f - a : a;
  const float x = 6.28318530717958648f * a, x2 = x * x;
  float c = 1.0f + x2 * (-0.5f + x2 * (1.0f / 24.0f + x2 * (-1.0f / 720.0f + x2 * (1.0f / 40320.0f +
                                                                           x2 * (-1.0f / 3628800.0f + x2 * (1.0f / 479001600.0f))))));
  c = fold ? -c : c;
  return -c;
}

// Standard normal from two 32-bit random words (Box-Muller, cosine branch).
FASTSEG_HD inline float normal_from_bits(uint32_t a, uint32_t b) {
  const float u1 = static_cast<float>(static_cast<int32_t>((a >> 8) + 1)) * (1.0f / 16777216.0f);  // (0, 1]
  const float u2 = static_cast<float>(static_cast<int32_t>(b >> 8)) * (1.0f / 16777216.0f);        // [0, 1)
  const float r = fast_sqrt(-2.0f * 0.693147180559945309f * fast_log2(u1));
  return r * fast_cos2pi(u2);
}

FASTSEG_HD inline float gauss_noise(NoiseKey k, uint32_t voxel) {
  return normal_from_bits(lowbias32(voxel * 0x9E3779B9U + k.k0), lowbias32(voxel * 0x85EBCA6BU + k.k1));
}

// Number of monomials z^i y^j x^k with i + j + k <= order (bias field polynomial), ordered by i,
// then j, then k.
FASTSEG_HD inline int bias_terms(int order) { return (order + 1) * (order + 2) * (order + 3) / 6; }

// Coordinate in [-1, 1] of voxel p on an axis of n voxels (0 for n == 1).
FASTSEG_HD inline float unit_coord(int64_t p, int64_t n) {
  return n > 1 ? static_cast<float>(2.0 * static_cast<double>(p) / static_cast<double>(n - 1) - 1.0) : 0.0f;
}

// Log of the bias field at normalised coordinates, the direct sum (CUDA and reference).
FASTSEG_HD inline float bias_log_at(const float* coef, int order, float uz, float uy, float ux) {
  float s = 0.0f, pz = 1.0f;
  int t = 0;
  for (int i = 0; i <= order; ++i) {
    float py = pz;
    for (int j = 0; j <= order - i; ++j) {
      float px = py;
      for (int k = 0; k <= order - i - j; ++k) {
        s += coef[t++] * px;
        px *= ux;
      }
      py *= uy;
    }
    pz *= uz;
  }
  return s;
}

// Low resolution: size of the downsampled axis (at least 1).
FASTSEG_HD inline int64_t lowres_size(int64_t n, float zoom) {
  const int64_t m = static_cast<int64_t>(floorf(static_cast<float>(n) * zoom + 0.5f));
  return m < 1 ? 1 : (m > n ? n : m);
}

// F.interpolate(mode="nearest"): source index of output index i (n_in -> n_out).
FASTSEG_HD inline int64_t nearest_src(int64_t i, int64_t n_in, int64_t n_out) {
  const float scale = static_cast<float>(n_in) / static_cast<float>(n_out);
  const int64_t s = static_cast<int64_t>(floorf(static_cast<float>(i) * scale));
  return s < n_in - 1 ? s : n_in - 1;
}

// F.interpolate(mode="linear", align_corners=False): lower index, upper index and upper weight.
FASTSEG_HD inline void linear_src(int64_t i, int64_t n_in, int64_t n_out, int64_t& i0, int64_t& i1,
                                  float& w1) {
  const float scale = static_cast<float>(n_in) / static_cast<float>(n_out);
  float s = (static_cast<float>(i) + 0.5f) * scale - 0.5f;
  s = s < 0.0f ? 0.0f : s;
  i0 = static_cast<int64_t>(s);
  i0 = i0 < n_in - 1 ? i0 : n_in - 1;
  i1 = i0 < n_in - 1 ? i0 + 1 : i0;
  w1 = s - static_cast<float>(i0);
}

// SciPy's mode="reflect" (d c b a | a b c d | d c b a) for any index.
FASTSEG_HD inline int64_t reflect_index(int64_t i, int64_t n) {
  if (n == 1) return 0;
  const int64_t period = 2 * n;
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - 1 - i;
}

// Gaussian kernel radius as scipy.ndimage.gaussian_filter with truncate = 4.
FASTSEG_HD inline int gauss_radius(float sigma) { return static_cast<int>(4.0f * sigma + 0.5f); }

}  // namespace fastseg::augment
