// CPU (OpenMP) kernels of the augment op family.
//
// Work is split into (sample, slice) items over the thread pool; inside an item everything runs
// row by row through small loops over plain arrays (structure of arrays) that the compiler
// vectorises. Spatial pass, per output row: the source coordinates (affine part plus the elastic
// B-spline, evaluated separably: the z taps once per slice, the y taps once per row on the coarse
// control row, then 4 x taps per voxel in the same loop as the affine part), then the trilinear
// taps and gathers of every channel and the nearest label. The row kernels are compiled for
// AVX-512, AVX2 and baseline x86-64 and picked at load time (GCC target_clones); with AVX-512 the
// elastic x taps are lane permutes of the control row held in registers (grids of at most 13
// control points along x) and the trilinear taps, gathers and nearest-label index (one-byte labels:
// the label gather too) run in one kernel without staging the taps in memory. The separable blur
// runs slice by slice (z, y and x taps of a slice while it is in cache); blur and low resolution
// reuse per-thread scratch volumes between calls. Reductions keep one partial per row or slice,
// summed in a fixed order, so results do not depend on the thread count.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-math-errno", "no-trapping-math")
#endif
#include "augment.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "fastseg/augment_intensity.h"
#include "fastseg/augment_sample.h"

#include "fastseg/portability.h"

#if defined(__GNUC__) && defined(__x86_64__)
#define FASTSEG_X86_GATHER 1
#include <immintrin.h>
#endif

namespace fastseg::augment {
namespace {

constexpr int kChunk = 256;  // float partial sums run over at most this many values

// ---- row kernels (vectorised) ----

FASTSEG_CLONES void row_affine(float bz, float by, float bx, float az, float ay, float ax, int64_t n,
                               float* __restrict cz, float* __restrict cy, float* __restrict cx) {
  for (int64_t x = 0; x < n; ++x) {
    const float px = static_cast<float>(x);
    cz[x] = bz + az * px;
    cy[x] = by + ay * px;
    cx[x] = bx + ax * px;
  }
}

// The affine part plus the x-taps of the elastic B-spline in one pass over the row. The row is cut
// into segments of constant control interval: segment s covers voxels [seg[3s], seg[3s+1]) and reads
// padded control columns seg[3s+2] .. seg[3s+2]+3 of h (3 components per padded column, one pad
// left, two right), with the 4 tap weights per voxel in w0..w3.
FASTSEG_CLONES void row_affine_elastic(float bz, float by, float bx, float az, float ay, float ax,
                                       const float* __restrict h, const int* __restrict seg, int segments,
                                       const float* __restrict w0, const float* __restrict w1,
                                       const float* __restrict w2, const float* __restrict w3,
                                       float* __restrict cz, float* __restrict cy, float* __restrict cx) {
  for (int s = 0; s < segments; ++s) {
    const int lo = seg[3 * s], hi = seg[3 * s + 1];
    const float* q = h + 3 * seg[3 * s + 2];
    const float z0 = q[0], y0 = q[1], x0 = q[2], z1 = q[3], y1 = q[4], x1 = q[5];
    const float z2 = q[6], y2 = q[7], x2 = q[8], z3 = q[9], y3 = q[10], x3 = q[11];
    for (int x = lo; x < hi; ++x) {
      const float px = static_cast<float>(x);
      const float a = w0[x], b = w1[x], c = w2[x], d = w3[x];
      cz[x] = (bz + az * px) + (a * z0 + b * z1 + c * z2 + d * z3);
      cy[x] = (by + ay * px) + (a * y0 + b * y1 + c * y2 + d * y3);
      cx[x] = (bx + ax * px) + (a * x0 + b * x1 + c * x2 + d * x3);
    }
  }
}

// Trilinear set-up per voxel and axis: the two taps' offsets (clamped into the source) and weights
// (zero for a tap outside it with the constant border); w_out is the weight left for `cval`.
struct LinearRow {
  int32_t *oz0, *oz1, *oy0, *oy1, *ox0, *ox1;
  float *wz0, *wz1, *wy0, *wy1, *wx0, *wx1, *w_out;
};

FASTSEG_CLONES void axis_taps(const float* __restrict c, int64_t n, int size, int32_t stride, bool edge,
                              int32_t* __restrict o0, int32_t* __restrict o1, float* __restrict w0,
                              float* __restrict w1) {
  const float hi = static_cast<float>(size) + 1.0f;
  const float keep = edge ? 1.0f : 0.0f;
  for (int64_t x = 0; x < n; ++x) {
    const float v = std::min(std::max(c[x], -2.0f), hi);
    const int i = floor_to_int(v);
    const float d = v - static_cast<float>(i);
    const float in0 = std::max(static_cast<float>((static_cast<unsigned>(i) < static_cast<unsigned>(size))), keep);
    const float in1 =
        std::max(static_cast<float>((static_cast<unsigned>(i + 1) < static_cast<unsigned>(size))), keep);
    o0[x] = std::min(std::max(i, 0), size - 1) * stride;
    o1[x] = std::min(std::max(i + 1, 0), size - 1) * stride;
    w0[x] = (1.0f - d) * in0;
    w1[x] = d * in1;
  }
}

FASTSEG_CLONES void row_w_out(const float* __restrict wz0, const float* __restrict wz1,
                              const float* __restrict wy0, const float* __restrict wy1,
                              const float* __restrict wx0, const float* __restrict wx1, int64_t n,
                              float* __restrict w_out) {
  for (int64_t x = 0; x < n; ++x) w_out[x] = 1.0f - (wz0[x] + wz1[x]) * (wy0[x] + wy1[x]) * (wx0[x] + wx1[x]);
}

void row_linear_gather_base(const float* __restrict src, const int32_t* __restrict oz0,
                                      const int32_t* __restrict oz1, const int32_t* __restrict oy0,
                                      const int32_t* __restrict oy1, const int32_t* __restrict ox0,
                                      const int32_t* __restrict ox1, const float* __restrict wz0,
                                      const float* __restrict wz1, const float* __restrict wy0,
                                      const float* __restrict wy1, const float* __restrict wx0,
                                      const float* __restrict wx1, const float* __restrict w_out, float cval,
                                      int64_t n, float* __restrict out) {
  for (int64_t x = 0; x < n; ++x) {
    const int32_t a = oz0[x] + oy0[x], b = oz0[x] + oy1[x], c = oz1[x] + oy0[x], d = oz1[x] + oy1[x];
    const float c00 = wx0[x] * src[a + ox0[x]] + wx1[x] * src[a + ox1[x]];
    const float c01 = wx0[x] * src[b + ox0[x]] + wx1[x] * src[b + ox1[x]];
    const float c10 = wx0[x] * src[c + ox0[x]] + wx1[x] * src[c + ox1[x]];
    const float c11 = wx0[x] * src[d + ox0[x]] + wx1[x] * src[d + ox1[x]];
    const float c0 = wy0[x] * c00 + wy1[x] * c01, c1 = wy0[x] * c10 + wy1[x] * c11;
    out[x] = wz0[x] * c0 + wz1[x] * c1 + w_out[x] * cval;
  }
}

// Hardware gathers (GCC's generic tuning emulates them with scalar loads, about half the speed).
#ifdef FASTSEG_X86_GATHER
enum SimdLevel { SIMD_BASE = 0, SIMD_AVX2 = 1, SIMD_AVX512 = 2 };

// The widest hand-written kernels the CPU runs; FASTSEG_AUGMENT_SIMD=avx2 or =base caps it (tests of
// the narrower paths on a wider machine; the compiler's target_clones still pick by the CPU).
SimdLevel simd_level() {
  static const SimdLevel level = [] {
    __builtin_cpu_init();
    SimdLevel cpu = SIMD_BASE;
    if (__builtin_cpu_supports("avx512f")) {
      cpu = SIMD_AVX512;
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      cpu = SIMD_AVX2;
    }
    const char* cap = std::getenv("FASTSEG_AUGMENT_SIMD");
    if (cap != nullptr && std::strcmp(cap, "avx2") == 0) return std::min(cpu, SIMD_AVX2);
    if (cap != nullptr && std::strcmp(cap, "base") == 0) return SIMD_BASE;
    return cpu;
  }();
  return level;
}

__attribute__((target("avx512f"))) void row_linear_gather_avx512(
    const float* src, const int32_t* oz0, const int32_t* oz1, const int32_t* oy0, const int32_t* oy1,
    const int32_t* ox0, const int32_t* ox1, const float* wz0, const float* wz1, const float* wy0,
    const float* wy1, const float* wx0, const float* wx1, const float* w_out, float cval, int64_t n,
    float* out) {
  int64_t x = 0;
  const __m512 cv = _mm512_set1_ps(cval), zero = _mm512_setzero_ps();
  const __mmask16 all = 0xffff;
  for (; x + 16 <= n; x += 16) {
    const __m512i z0 = _mm512_loadu_si512(oz0 + x), z1 = _mm512_loadu_si512(oz1 + x);
    const __m512i y0 = _mm512_loadu_si512(oy0 + x), y1 = _mm512_loadu_si512(oy1 + x);
    const __m512i x0 = _mm512_loadu_si512(ox0 + x), x1 = _mm512_loadu_si512(ox1 + x);
    const __m512 a0 = _mm512_loadu_ps(wx0 + x), a1 = _mm512_loadu_ps(wx1 + x);
    __m512 c[4];
    const __m512i rows[4] = {_mm512_add_epi32(z0, y0), _mm512_add_epi32(z0, y1), _mm512_add_epi32(z1, y0),
                             _mm512_add_epi32(z1, y1)};
    for (int k = 0; k < 4; ++k) {
      const __m512 v0 = _mm512_mask_i32gather_ps(zero, all, _mm512_add_epi32(rows[k], x0), src, 4);
      const __m512 v1 = _mm512_mask_i32gather_ps(zero, all, _mm512_add_epi32(rows[k], x1), src, 4);
      c[k] = _mm512_fmadd_ps(a1, v1, _mm512_mul_ps(a0, v0));
    }
    const __m512 b0 = _mm512_loadu_ps(wy0 + x), b1 = _mm512_loadu_ps(wy1 + x);
    const __m512 c0 = _mm512_fmadd_ps(b1, c[1], _mm512_mul_ps(b0, c[0]));
    const __m512 c1 = _mm512_fmadd_ps(b1, c[3], _mm512_mul_ps(b0, c[2]));
    const __m512 r = _mm512_fmadd_ps(_mm512_loadu_ps(wz1 + x), c1, _mm512_mul_ps(_mm512_loadu_ps(wz0 + x), c0));
    _mm512_storeu_ps(out + x, _mm512_fmadd_ps(_mm512_loadu_ps(w_out + x), cv, r));
  }
  row_linear_gather_base(src, oz0 + x, oz1 + x, oy0 + x, oy1 + x, ox0 + x, ox1 + x, wz0 + x, wz1 + x, wy0 + x,
                         wy1 + x, wx0 + x, wx1 + x, w_out + x, cval, n - x, out + x);
}

// Taps of 16 voxels along one axis, in registers: axis_taps' arithmetic.
__attribute__((target("avx512f"))) inline void taps16(__m512 v, int size, int32_t stride, bool edge, __m512i& o0,
                                                     __m512i& o1, __m512& w0, __m512& w1) {
  const __m512 f = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512 d = _mm512_sub_ps(v, f);
  const __m512i i0 = _mm512_cvttps_epi32(f), i1 = _mm512_add_epi32(i0, _mm512_set1_epi32(1));
  const __m512i sz = _mm512_set1_epi32(size), top = _mm512_set1_epi32(size - 1), zero = _mm512_setzero_si512();
  const __mmask16 in0 = edge ? __mmask16(0xffff) : _mm512_cmplt_epu32_mask(i0, sz);
  const __mmask16 in1 = edge ? __mmask16(0xffff) : _mm512_cmplt_epu32_mask(i1, sz);
  o0 = _mm512_min_epi32(_mm512_max_epi32(i0, zero), top);
  o1 = _mm512_min_epi32(_mm512_max_epi32(i1, zero), top);
  if (stride != 1) {
    o0 = _mm512_mullo_epi32(o0, _mm512_set1_epi32(stride));
    o1 = _mm512_mullo_epi32(o1, _mm512_set1_epi32(stride));
  }
  w0 = _mm512_maskz_mov_ps(in0, _mm512_sub_ps(_mm512_set1_ps(1.0f), d));
  w1 = _mm512_maskz_mov_ps(in1, d);
}

// axis_taps + row_w_out + row_linear_gather (every channel) + row_nearest_index (idx, if not null)
// for all n voxels of a row (the last n % 16 in masked lanes), without staging the taps in memory;
// returns n. With a one-byte label volume lab8 (not null) its nearest samples go straight to out8
// instead of idx.
__attribute__((target("avx512f"))) int64_t row_linear_fused_avx512(
    const float* cz, const float* cy, const float* cx, int64_t n, int snz, int sny, int snx, bool edge,
    const float* src, int64_t channels, int64_t src_stride, float cval, float* out, int64_t out_stride,
    int32_t* idx, const uint8_t* lab8, uint8_t* out8, uint8_t lcval8) {
  const int64_t sv = int64_t{snz} * sny * snx;
  const int32_t sy = snx, sz = sny * snx;
  const __m512 lo = _mm512_set1_ps(-2.0f), hz = _mm512_set1_ps(static_cast<float>(snz) + 1.0f),
               hy = _mm512_set1_ps(static_cast<float>(sny) + 1.0f), hx = _mm512_set1_ps(static_cast<float>(snx) + 1.0f);
  const __m512 cv = _mm512_set1_ps(cval), one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
  for (int64_t x = 0; x < n; x += 16) {
    // lanes past the row's end read coordinate 0 (in range), and are neither gathered nor stored
    const __mmask16 m = n - x >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - x)) - 1u);
    const __m512 vz = _mm512_min_ps(_mm512_max_ps(_mm512_maskz_loadu_ps(m, cz + x), lo), hz);
    const __m512 vy = _mm512_min_ps(_mm512_max_ps(_mm512_maskz_loadu_ps(m, cy + x), lo), hy);
    const __m512 vx = _mm512_min_ps(_mm512_max_ps(_mm512_maskz_loadu_ps(m, cx + x), lo), hx);
    __m512i z0, z1, y0, y1, x0, x1;
    __m512 wz0, wz1, wy0, wy1, wx0, wx1;
    taps16(vz, snz, sz, edge, z0, z1, wz0, wz1);
    taps16(vy, sny, sy, edge, y0, y1, wy0, wy1);
    taps16(vx, snx, 1, edge, x0, x1, wx0, wx1);
    const __m512 w_out = _mm512_sub_ps(
        one, _mm512_mul_ps(_mm512_mul_ps(_mm512_add_ps(wz0, wz1), _mm512_add_ps(wy0, wy1)), _mm512_add_ps(wx0, wx1)));
    const __m512i rows[4] = {_mm512_add_epi32(z0, y0), _mm512_add_epi32(z0, y1), _mm512_add_epi32(z1, y0),
                             _mm512_add_epi32(z1, y1)};
    __m512i g0[4], g1[4];
    for (int k = 0; k < 4; ++k) {
      g0[k] = _mm512_add_epi32(rows[k], x0);
      g1[k] = _mm512_add_epi32(rows[k], x1);
    }
    for (int64_t c = 0; c < channels; ++c) {
      const float* s = src + c * src_stride;
      __m512 r[4];
      for (int k = 0; k < 4; ++k) {
        const __m512 v0 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, g0[k], s, 4);
        const __m512 v1 = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, g1[k], s, 4);
        r[k] = _mm512_fmadd_ps(wx1, v1, _mm512_mul_ps(wx0, v0));
      }
      const __m512 c0 = _mm512_fmadd_ps(wy1, r[1], _mm512_mul_ps(wy0, r[0]));
      const __m512 c1 = _mm512_fmadd_ps(wy1, r[3], _mm512_mul_ps(wy0, r[2]));
      const __m512 t = _mm512_fmadd_ps(wz1, c1, _mm512_mul_ps(wz0, c0));
      _mm512_mask_storeu_ps(out + c * out_stride + x, m, _mm512_fmadd_ps(w_out, cv, t));
    }
    if (idx != nullptr || lab8 != nullptr) {
      const __m512i zero = _mm512_setzero_si512();
      const __m512i iz = _mm512_cvttps_epi32(
          _mm512_roundscale_ps(_mm512_add_ps(vz, half), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
      const __m512i iy = _mm512_cvttps_epi32(
          _mm512_roundscale_ps(_mm512_add_ps(vy, half), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
      const __m512i ix = _mm512_cvttps_epi32(
          _mm512_roundscale_ps(_mm512_add_ps(vx, half), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
      const __mmask16 in = edge ? m
                                : __mmask16(m & _mm512_cmplt_epu32_mask(iz, _mm512_set1_epi32(snz)) &
                                            _mm512_cmplt_epu32_mask(iy, _mm512_set1_epi32(sny)) &
                                            _mm512_cmplt_epu32_mask(ix, _mm512_set1_epi32(snx)));
      const __m512i cz_ = _mm512_min_epi32(_mm512_max_epi32(iz, zero), _mm512_set1_epi32(snz - 1));
      const __m512i cy_ = _mm512_min_epi32(_mm512_max_epi32(iy, zero), _mm512_set1_epi32(sny - 1));
      const __m512i cx_ = _mm512_min_epi32(_mm512_max_epi32(ix, zero), _mm512_set1_epi32(snx - 1));
      const __m512i flat = _mm512_add_epi32(
          _mm512_mullo_epi32(_mm512_add_epi32(_mm512_mullo_epi32(cz_, _mm512_set1_epi32(sny)), cy_),
                             _mm512_set1_epi32(snx)),
          cx_);
      if (lab8 == nullptr) {
        _mm512_mask_storeu_epi32(idx + x, m, _mm512_mask_mov_epi32(_mm512_set1_epi32(-1), in, flat));
      } else {
        // 4-byte gathers at byte offsets, low byte kept; lanes whose 4 bytes would pass the end of
        // the volume are read one byte at a time.
        const __mmask16 safe =
            sv >= 4 ? __mmask16(in & _mm512_cmple_epi32_mask(flat, _mm512_set1_epi32(static_cast<int32_t>(sv - 4))))
                    : __mmask16(0);
        const __m512i g = _mm512_mask_i32gather_epi32(_mm512_set1_epi32(lcval8), safe, flat, lab8, 1);
        _mm512_mask_cvtepi32_storeu_epi8(out8 + x, m, g);
        if (safe != in) {
          alignas(64) int32_t f[16];
          _mm512_store_si512(f, flat);
          for (int l = 0; l < 16; ++l) {
            if (((in & ~safe) >> l) & 1) out8[x + l] = lab8[f[l]];
          }
        }
      }
    }
  }
  return n;
}

// row_affine_elastic with the padded control row held in registers (at most 16 padded columns):
// a voxel's 4 taps are lane permutes of the row; col[x] is the padded column of voxel x's first tap.
__attribute__((target("avx512f"))) void row_affine_elastic_avx512(float bz, float by, float bx, float az, float ay,
                                                                 float ax, const float* h, int columns,
                                                                 const int32_t* col, const float* w0,
                                                                 const float* w1, const float* w2,
                                                                 const float* w3, int64_t n, float* cz, float* cy,
                                                                 float* cx) {
  alignas(64) float hz[16] = {}, hy[16] = {}, hx[16] = {};
  for (int c = 0; c < columns; ++c) {
    hz[c] = h[3 * c];
    hy[c] = h[3 * c + 1];
    hx[c] = h[3 * c + 2];
  }
  const __m512 Hz = _mm512_load_ps(hz), Hy = _mm512_load_ps(hy), Hx = _mm512_load_ps(hx);
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i one = _mm512_set1_epi32(1);
  int64_t x = 0;
  for (; x + 16 <= n; x += 16) {
    const __m512 px = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(x)), iota));
    const __m512i j0 = _mm512_loadu_si512(col + x), j1 = _mm512_add_epi32(j0, one), j2 = _mm512_add_epi32(j1, one),
                  j3 = _mm512_add_epi32(j2, one);
    const __m512 a = _mm512_loadu_ps(w0 + x), b = _mm512_loadu_ps(w1 + x), c = _mm512_loadu_ps(w2 + x),
                 d = _mm512_loadu_ps(w3 + x);
    const auto eval = [&](__m512 H, float base, float slope, float* dst) {
      __m512 e = _mm512_mul_ps(a, _mm512_permutexvar_ps(j0, H));
      e = _mm512_fmadd_ps(b, _mm512_permutexvar_ps(j1, H), e);
      e = _mm512_fmadd_ps(c, _mm512_permutexvar_ps(j2, H), e);
      e = _mm512_fmadd_ps(d, _mm512_permutexvar_ps(j3, H), e);
      const __m512 aff = _mm512_fmadd_ps(_mm512_set1_ps(slope), px, _mm512_set1_ps(base));
      _mm512_storeu_ps(dst + x, _mm512_add_ps(aff, e));
    };
    eval(Hz, bz, az, cz);
    eval(Hy, by, ay, cy);
    eval(Hx, bx, ax, cx);
  }
  for (; x < n; ++x) {
    const float px = static_cast<float>(x);
    const int j = col[x];
    const float a = w0[x], b = w1[x], c = w2[x], d = w3[x];
    cz[x] = (bz + az * px) + (a * hz[j] + b * hz[j + 1] + c * hz[j + 2] + d * hz[j + 3]);
    cy[x] = (by + ay * px) + (a * hy[j] + b * hy[j + 1] + c * hy[j + 2] + d * hy[j + 3]);
    cx[x] = (bx + ax * px) + (a * hx[j] + b * hx[j + 1] + c * hx[j + 2] + d * hx[j + 3]);
  }
}

__attribute__((target("avx2,fma"))) void row_linear_gather_avx2(
    const float* src, const int32_t* oz0, const int32_t* oz1, const int32_t* oy0, const int32_t* oy1,
    const int32_t* ox0, const int32_t* ox1, const float* wz0, const float* wz1, const float* wy0,
    const float* wy1, const float* wx0, const float* wx1, const float* w_out, float cval, int64_t n,
    float* out) {
  int64_t x = 0;
  const __m256 cv = _mm256_set1_ps(cval);
  for (; x + 8 <= n; x += 8) {
    const __m256i z0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(oz0 + x));
    const __m256i z1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(oz1 + x));
    const __m256i y0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(oy0 + x));
    const __m256i y1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(oy1 + x));
    const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ox0 + x));
    const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ox1 + x));
    const __m256 a0 = _mm256_loadu_ps(wx0 + x), a1 = _mm256_loadu_ps(wx1 + x);
    __m256 c[4];
    const __m256i rows[4] = {_mm256_add_epi32(z0, y0), _mm256_add_epi32(z0, y1), _mm256_add_epi32(z1, y0),
                             _mm256_add_epi32(z1, y1)};
    for (int k = 0; k < 4; ++k) {
      const __m256 v0 = _mm256_i32gather_ps(src, _mm256_add_epi32(rows[k], x0), 4);
      const __m256 v1 = _mm256_i32gather_ps(src, _mm256_add_epi32(rows[k], x1), 4);
      c[k] = _mm256_fmadd_ps(a1, v1, _mm256_mul_ps(a0, v0));
    }
    const __m256 b0 = _mm256_loadu_ps(wy0 + x), b1 = _mm256_loadu_ps(wy1 + x);
    const __m256 c0 = _mm256_fmadd_ps(b1, c[1], _mm256_mul_ps(b0, c[0]));
    const __m256 c1 = _mm256_fmadd_ps(b1, c[3], _mm256_mul_ps(b0, c[2]));
    const __m256 r = _mm256_fmadd_ps(_mm256_loadu_ps(wz1 + x), c1, _mm256_mul_ps(_mm256_loadu_ps(wz0 + x), c0));
    _mm256_storeu_ps(out + x, _mm256_fmadd_ps(_mm256_loadu_ps(w_out + x), cv, r));
  }
  row_linear_gather_base(src, oz0 + x, oz1 + x, oy0 + x, oy1 + x, ox0 + x, ox1 + x, wz0 + x, wz1 + x, wy0 + x,
                         wy1 + x, wx0 + x, wx1 + x, w_out + x, cval, n - x, out + x);
}
#endif

void row_linear_gather(const float* src, const int32_t* oz0, const int32_t* oz1, const int32_t* oy0,
                       const int32_t* oy1, const int32_t* ox0, const int32_t* ox1, const float* wz0,
                       const float* wz1, const float* wy0, const float* wy1, const float* wx0, const float* wx1,
                       const float* w_out, float cval, int64_t n, float* out) {
#ifdef FASTSEG_X86_GATHER
  switch (simd_level()) {
    case SIMD_AVX512:
      row_linear_gather_avx512(src, oz0, oz1, oy0, oy1, ox0, ox1, wz0, wz1, wy0, wy1, wx0, wx1, w_out, cval, n, out);
      return;
    case SIMD_AVX2:
      row_linear_gather_avx2(src, oz0, oz1, oy0, oy1, ox0, ox1, wz0, wz1, wy0, wy1, wx0, wx1, w_out, cval, n, out);
      return;
    default:
      break;
  }
#endif
  row_linear_gather_base(src, oz0, oz1, oy0, oy1, ox0, ox1, wz0, wz1, wy0, wy1, wx0, wx1, w_out, cval, n, out);
}

// Nearest source index of each voxel (round half up); -1 outside for the constant border.
FASTSEG_CLONES void row_nearest_index(const float* __restrict cz, const float* __restrict cy,
                                      const float* __restrict cx, int64_t n, int nz, int ny, int nx, bool edge,
                                      int32_t* __restrict idx) {
  const float hz = static_cast<float>(nz) + 1.0f, hy = static_cast<float>(ny) + 1.0f,
              hx = static_cast<float>(nx) + 1.0f;
  const int keep = edge ? 1 : 0;
  for (int64_t x = 0; x < n; ++x) {
    int iz = floor_to_int(std::min(std::max(cz[x], -2.0f), hz) + 0.5f);
    int iy = floor_to_int(std::min(std::max(cy[x], -2.0f), hy) + 0.5f);
    int ix = floor_to_int(std::min(std::max(cx[x], -2.0f), hx) + 0.5f);
    const int in = (static_cast<unsigned>(iz) < static_cast<unsigned>(nz)) &
                   (static_cast<unsigned>(iy) < static_cast<unsigned>(ny)) &
                   (static_cast<unsigned>(ix) < static_cast<unsigned>(nx));
    iz = std::min(std::max(iz, 0), nz - 1);
    iy = std::min(std::max(iy, 0), ny - 1);
    ix = std::min(std::max(ix, 0), nx - 1);
    idx[x] = (in | keep) != 0 ? (iz * ny + iy) * nx + ix : -1;
  }
}

FASTSEG_CLONES void row_noise(float* __restrict v, int64_t n, uint32_t first, uint32_t k0, uint32_t k1,
                              float sigma) {
  const NoiseKey k{k0, k1};
  for (int64_t i = 0; i < n; ++i) v[i] += sigma * gauss_noise(k, first + static_cast<uint32_t>(i));
}

FASTSEG_CLONES void row_scale_shift(float* __restrict v, int64_t n, float scale, float shift) {
  for (int64_t i = 0; i < n; ++i) v[i] = v[i] * scale + shift;
}

FASTSEG_CLONES void row_contrast(float* __restrict v, int64_t n, float mean, float f, float lo, float hi,
                                 bool clip) {
  if (clip) {
    for (int64_t i = 0; i < n; ++i) v[i] = std::min(std::max((v[i] - mean) * f + mean, lo), hi);
  } else {
    for (int64_t i = 0; i < n; ++i) v[i] = (v[i] - mean) * f + mean;
  }
}

struct Partial {
  double s1 = 0.0, s2 = 0.0;
  float min = std::numeric_limits<float>::infinity(), max = -std::numeric_limits<float>::infinity();
};

// Sums of (v - shift) and its square, min and max, over at most kChunk values; 16 lane-wise
// partials (a fixed order, so the result does not depend on the instruction set).
constexpr int kLanes = 16;

FASTSEG_CLONES void chunk_moments(const float* __restrict v, int64_t n, float shift, float* out) {
  float a1[kLanes] = {}, a2[kLanes] = {}, lo[kLanes], hi[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    lo[l] = std::numeric_limits<float>::infinity();
    hi[l] = -std::numeric_limits<float>::infinity();
  }
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float x = v[i + l], d = x - shift;
      a1[l] += d;
      a2[l] += d * d;
      lo[l] = std::min(lo[l], x);
      hi[l] = std::max(hi[l], x);
    }
  }
  for (int l = 0; i < n; ++i, ++l) {
    const float x = v[i], d = x - shift;
    a1[l] += d;
    a2[l] += d * d;
    lo[l] = std::min(lo[l], x);
    hi[l] = std::max(hi[l], x);
  }
  out[0] = out[1] = 0.0f;
  out[2] = lo[0];
  out[3] = hi[0];
  for (int l = 0; l < kLanes; ++l) {
    out[0] += a1[l];
    out[1] += a2[l];
    out[2] = std::min(out[2], lo[l]);
    out[3] = std::max(out[3], hi[l]);
  }
}

void add_moments(const float* v, int64_t n, float shift, Partial& p) {
  for (int64_t i = 0; i < n; i += kChunk) {
    float m[4];
    chunk_moments(v + i, std::min<int64_t>(kChunk, n - i), shift, m);
    p.s1 += m[0];
    p.s2 += m[1];
    p.min = std::min(p.min, m[2]);
    p.max = std::max(p.max, m[3]);
  }
}

// y = ((sign * v - lo) * inv) ^ g * range + lo in place, with the sums of y - lo and its square.
FASTSEG_CLONES void chunk_gamma(float* __restrict v, int64_t n, float sign, float lo, float inv, float g,
                                float range, float* out) {
  float a1[kLanes] = {}, a2[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const float y = fast_pow((sign * v[i + l] - lo) * inv, g) * range + lo;
      v[i + l] = y;
      a1[l] += y - lo;
      a2[l] += (y - lo) * (y - lo);
    }
  }
  for (int l = 0; i < n; ++i, ++l) {
    const float y = fast_pow((sign * v[i] - lo) * inv, g) * range + lo;
    v[i] = y;
    a1[l] += y - lo;
    a2[l] += (y - lo) * (y - lo);
  }
  out[0] = out[1] = 0.0f;
  for (int l = 0; l < kLanes; ++l) {
    out[0] += a1[l];
    out[1] += a2[l];
  }
}

// row *= exp(sum_k c[k] u^k), c padded with zeros to 8 terms.
FASTSEG_CLONES void row_bias(float* __restrict row, int64_t n, const float* __restrict u, const float* c) {
  const float c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3], c4 = c[4], c5 = c[5], c6 = c[6], c7 = c[7];
  for (int64_t x = 0; x < n; ++x) {
    const float t = u[x];
    const float p = ((((((c7 * t + c6) * t + c5) * t + c4) * t + c3) * t + c2) * t + c1) * t + c0;
    row[x] *= fast_exp(p);
  }
}

FASTSEG_CLONES void row_convolve(const float* __restrict buf, const float* __restrict w, int taps, int64_t n,
                                 float* __restrict out) {
  for (int64_t x = 0; x < n; ++x) out[x] = 0.0f;
  for (int t = 0; t < taps; ++t) {
    const float wt = w[t];
    for (int64_t x = 0; x < n; ++x) out[x] += wt * buf[x + t];
  }
}

// out[x] = sum_t w[t] * src[t][x], in blocks that stay in L1.
FASTSEG_CLONES void row_weighted_sum(const float* const* __restrict src, const float* __restrict w, int taps,
                                     int64_t n, float* __restrict out) {
  constexpr int64_t kBlock = 256;
  float acc[kBlock];
  for (int64_t x0 = 0; x0 < n; x0 += kBlock) {
    const int64_t m = std::min(kBlock, n - x0);
    const float* s0 = src[0] + x0;
    const float w0 = w[0];
    for (int64_t l = 0; l < m; ++l) acc[l] = w0 * s0[l];
    for (int t = 1; t < taps; ++t) {
      const float* st = src[t] + x0;
      const float wt = w[t];
      for (int64_t l = 0; l < m; ++l) acc[l] += wt * st[l];
    }
    for (int64_t l = 0; l < m; ++l) out[x0 + l] = acc[l];
  }
}

FASTSEG_CLONES void row_axpy(float* __restrict dst, const float* __restrict src, float w, int64_t n) {
  for (int64_t x = 0; x < n; ++x) dst[x] += w * src[x];
}

FASTSEG_CLONES void row_gather_index(const float* __restrict src, const int32_t* __restrict idx, int64_t n,
                                     float* __restrict out) {
  for (int64_t x = 0; x < n; ++x) out[x] = src[idx[x]];
}

// out[x] = (1 - w[x]) * row[i0[x]] + w[x] * row[i1[x]] (upsampling along x).
FASTSEG_CLONES void row_lerp_index(const float* __restrict row, const int32_t* __restrict i0,
                                   const int32_t* __restrict i1, const float* __restrict w, int64_t n,
                                   float* __restrict out) {
  for (int64_t x = 0; x < n; ++x) out[x] = (1.0f - w[x]) * row[i0[x]] + w[x] * row[i1[x]];
}

// out[x] = (1 - w) * a[x] + w * b[x] (upsampling along y or z, whole rows).
FASTSEG_CLONES void row_lerp(const float* __restrict a, const float* __restrict b, float w, int64_t n,
                             float* __restrict out) {
  for (int64_t x = 0; x < n; ++x) out[x] = (1.0f - w) * a[x] + w * b[x];
}

// ---- scheduling ----
//
// Items are claimed one at a time from an atomic counter by the calling thread and by pool workers
// woken for the job; the caller then waits only for items a worker has claimed, never for a worker
// that has not started. On a machine where other processes hold the cores (data-loader workers,
// other jobs), a worker the scheduler has not run costs nothing, whereas an OpenMP region would
// wait for it at its closing barrier. Team size follows omp_get_max_threads() (so
// fastseg's set_num_threads and OMP_NUM_THREADS apply). After fork() the child has no workers and
// simply runs every item in the caller.
class Pool {
 public:
  struct Job {
    std::atomic<int64_t> next{0}, done{0};
    int64_t total = 0;
    int slots = 0;  // workers allowed to join
    std::atomic<int> joined{0};
    std::function<void()> participate;
  };

  static Pool& get() {
    static std::mutex guard;
    static Pool* pool = nullptr;
    std::lock_guard<std::mutex> lock(guard);
    if (pool == nullptr || pool->pid_ != getpid()) pool = new Pool();  // a forked child starts afresh
    return *pool;
  }

  // Runs job->participate on the caller and on up to job->slots workers; returns when every item
  // is done. Returns false (nothing run) if another job holds the pool.
  bool run(const std::shared_ptr<Job>& job) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) return false;
    ensure_workers(job->slots);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = job;
      ++generation_;
    }
    wake_.notify_all();
    job->participate();
    // Items a worker still holds: spin briefly, then sleep until the last one signals, leaving the
    // core to that worker when both compete for it.
    for (int spin = 0; spin < 2000 && job->done.load(std::memory_order_acquire) < job->total; ++spin) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
    std::unique_lock<std::mutex> lock(mutex_);
    finished_.wait(lock, [&] { return job->done.load(std::memory_order_acquire) >= job->total; });
    job_.reset();
    return true;
  }

  // Called by whoever finishes a job's last item.
  void signal() {
    { std::lock_guard<std::mutex> lock(mutex_); }
    finished_.notify_all();
  }

 private:
  Pool() : pid_(getpid()) {}

  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      workers_.emplace_back([this] { loop(); });
      workers_.back().detach();
    }
  }

  void loop() {
    in_worker() = true;
    uint64_t seen = 0;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        job = job_;
      }
      if (job && job->joined.fetch_add(1) < job->slots) job->participate();
    }
  }

 public:
  static bool& in_worker() {
    static thread_local bool flag = false;
    return flag;
  }

 private:
  pid_t pid_;
  std::mutex busy_, mutex_;
  std::condition_variable wake_, finished_;
  std::shared_ptr<Job> job_;
  uint64_t generation_ = 0;
  std::vector<std::thread> workers_;
};

// fn(item, state) for item in [0, n), spread over the pool; each participating thread makes its
// own State on its first item.
template <class State, class Make, class Fn>
void parallel_items(int64_t n, Make&& make, Fn&& fn) {
  if (n <= 0) return;
  const int team = omp_in_parallel() || Pool::in_worker() ? 1 : std::max(1, omp_get_max_threads());
  if (team > 1 && n > 1) {
    auto job = std::make_shared<Pool::Job>();
    job->total = n;
    job->slots = static_cast<int>(std::min<int64_t>(team - 1, n - 1));
    Pool::Job* j = job.get();
    // Runs on the caller and on workers; touches make/fn only after claiming an item, which the
    // caller waits for, so a late worker never sees them after parallel_items returned.
    job->participate = [j, &make, &fn] {
      std::optional<State> state;
      for (int64_t i = j->next.fetch_add(1); i < j->total; i = j->next.fetch_add(1)) {
        if (!state) state.emplace(make());
        fn(i, *state);
        if (j->done.fetch_add(1, std::memory_order_acq_rel) + 1 == j->total) Pool::get().signal();
      }
    };
    if (Pool::get().run(job)) return;
  }
  State state = make();
  for (int64_t i = 0; i < n; ++i) fn(i, state);
}

struct NoState {};

// fn(nc, z, slice, plane) over the slices of every active (sample, channel) volume.
template <class Fn>
void for_active_slices(const Batch& b, const uint8_t* active, Fn&& fn) {
  std::vector<int64_t> nc_list;
  for (int64_t k = 0; k < b.count(); ++k) {
    if (active[k]) nc_list.push_back(k);
  }
  const int64_t nz = b.shape.z, plane = b.shape.y * b.shape.x, vol = b.volume();
  parallel_items<NoState>(
      static_cast<int64_t>(nc_list.size()) * nz, [] { return NoState{}; },
      [&](int64_t item, NoState&) {
        const int64_t nc = nc_list[static_cast<size_t>(item / nz)], z = item % nz;
        fn(nc, z, b.data + nc * vol + z * plane, plane);
      });
}

// Moments of each active volume: mean and population std (shifted double sums), min and max.
struct Moments {
  double mean = 0.0, std = 0.0;
  float min = 0.0f, max = 0.0f;
};

Moments finish(const Partial& t, double shift, int64_t vol) {
  const double m1 = t.s1 / static_cast<double>(vol);
  const double var = std::max(t.s2 / static_cast<double>(vol) - m1 * m1, 0.0);
  return {shift + m1, std::sqrt(var), t.min, t.max};
}

std::vector<Moments> moments(const Batch& b, const uint8_t* active) {
  const int64_t nz = b.shape.z, vol = b.volume();
  std::vector<Partial> part(static_cast<size_t>(b.count() * nz));
  for_active_slices(b, active, [&](int64_t nc, int64_t z, const float* v, int64_t len) {
    Partial p;
    add_moments(v, len, b.data[nc * vol], p);
    part[static_cast<size_t>(nc * nz + z)] = p;
  });
  std::vector<Moments> out(static_cast<size_t>(b.count()));
  for (int64_t nc = 0; nc < b.count(); ++nc) {
    if (!active[nc] || vol == 0) continue;
    Partial t;
    for (int64_t z = 0; z < nz; ++z) {
      const Partial& p = part[static_cast<size_t>(nc * nz + z)];
      t.s1 += p.s1;
      t.s2 += p.s2;
      t.min = std::min(t.min, p.min);
      t.max = std::max(t.max, p.max);
    }
    out[static_cast<size_t>(nc)] = finish(t, b.data[nc * vol], vol);
  }
  return out;
}

struct AxisTable {
  std::vector<float> w;  // 4 per output index
  std::vector<int> i;    // floor of the control coordinate
};

AxisTable bspline_table(int64_t n_out, int g) {
  AxisTable t;
  t.w.resize(static_cast<size_t>(4 * n_out));
  t.i.resize(static_cast<size_t>(n_out));
  for (int64_t p = 0; p < n_out; ++p) {
    const float c = control_coord(p, n_out, g);
    const float f = floorf(c);
    bspline3_weights(c - f, &t.w[static_cast<size_t>(4 * p)]);
    t.i[static_cast<size_t>(p)] = static_cast<int>(f);
  }
  return t;
}

// x-taps of the B-spline per output voxel (4 weight rows, structure of arrays) and the row cut into
// segments of constant control interval (first voxel, end, first padded control column).
struct XTaps {
  std::vector<float> w;  // 4 * n_out: weight k of voxel x at w[k * n_out + x]
  std::vector<int> seg;  // 3 per segment
  std::vector<int32_t> col;  // per voxel: padded column of its first tap
  int segments = 0;
};

XTaps bspline_xtaps(int64_t n_out, int g) {
  const AxisTable t = bspline_table(n_out, g);
  XTaps r;
  r.w.resize(static_cast<size_t>(4 * n_out));
  r.col.resize(static_cast<size_t>(n_out));
  for (int64_t x = 0; x < n_out; ++x) {
    r.col[static_cast<size_t>(x)] = t.i[static_cast<size_t>(x)];
    for (int k = 0; k < 4; ++k) r.w[static_cast<size_t>(k * n_out + x)] = t.w[static_cast<size_t>(4 * x + k)];
    const int j = t.i[static_cast<size_t>(x)];  // padded column of the first tap (control index j - 1)
    if (r.segments == 0 || r.seg[static_cast<size_t>(3 * r.segments - 1)] != j) {
      r.seg.insert(r.seg.end(), {static_cast<int>(x), static_cast<int>(x), j});
      ++r.segments;
    }
    r.seg[static_cast<size_t>(3 * r.segments - 2)] = static_cast<int>(x) + 1;
  }
  return r;
}

std::vector<float> gauss_kernel(float sigma) {
  const int r = gauss_radius(sigma);
  std::vector<double> w(static_cast<size_t>(2 * r + 1));
  double sum = 0.0;
  for (int t = -r; t <= r; ++t) {
    w[static_cast<size_t>(t + r)] = std::exp(-0.5 * t * t / (static_cast<double>(sigma) * sigma));
    sum += w[static_cast<size_t>(t + r)];
  }
  std::vector<float> out(w.size());
  for (size_t i = 0; i < w.size(); ++i) out[i] = static_cast<float>(w[i] / sum);
  return out;
}

// Scratch memory of the calling thread, kept between calls (no zeroing, no fresh pages per sample):
// slot k holds at least `count` floats until the next call for that slot.
float* scratch(int slot, size_t count) {
  thread_local std::unique_ptr<float[]> buf[2];
  thread_local size_t cap[2] = {0, 0};
  if (cap[slot] < count) {
    buf[slot].reset();
    buf[slot].reset(new float[count]);
    cap[slot] = count;
  }
  return buf[slot].get();
}

// Reflected indices (SciPy's "reflect") of i + t, t in [-r, r], for every i in [0, n): 2r + 1 per i.
std::vector<int32_t> reflect_table(int64_t n, int r) {
  std::vector<int32_t> t(static_cast<size_t>(n * (2 * r + 1)));
  for (int64_t i = 0; i < n; ++i) {
    for (int k = -r; k <= r; ++k) t[static_cast<size_t>(i * (2 * r + 1) + k + r)] = static_cast<int32_t>(reflect_index(i + k, n));
  }
  return t;
}

// Separable Gaussian of one (z, y, x) volume with per-axis kernels (empty: axis skipped), SciPy's
// reflect border. Slice by slice so that every pass runs in cache: z taps into a plane, y taps into
// a second plane, x taps into `dst` (another volume).
void blur_volume(const float* src, float* dst, const Shape3& s, const std::vector<float>& kz,
                 const std::vector<float>& ky, const std::vector<float>& kx) {
  const int64_t plane = s.y * s.x;
  const int tz = static_cast<int>(kz.size()), ty = static_cast<int>(ky.size()), tx = static_cast<int>(kx.size());
  const int rx = tx / 2;
  const std::vector<int32_t> fz = reflect_table(tz > 0 ? s.z : 0, tz / 2), fy = reflect_table(ty > 0 ? s.y : 0, ty / 2);
  std::vector<int32_t> fx_lo, fx_hi;  // the x border: reflected indices of -rx .. -1 and nx .. nx + rx - 1
  for (int64_t i = -rx; i < 0; ++i) fx_lo.push_back(static_cast<int32_t>(reflect_index(i, s.x)));
  for (int64_t i = s.x; i < s.x + rx; ++i) fx_hi.push_back(static_cast<int32_t>(reflect_index(i, s.x)));
  struct Planes {
    std::vector<float> a, b, row, acc;
    std::vector<const float*> ptr;
  };
  parallel_items<Planes>(
      s.z,
      [&] {
        return Planes{std::vector<float>(static_cast<size_t>(tz > 0 ? plane : 0)),
                      std::vector<float>(static_cast<size_t>(ty > 0 ? plane : 0)),
                      std::vector<float>(static_cast<size_t>(s.x + 2 * rx)), std::vector<float>(static_cast<size_t>(s.x)),
                      std::vector<const float*>(static_cast<size_t>(std::max(tz, ty) + 1))};
      },
      [&](int64_t z, Planes& p) {
        const float* cur = src + z * plane;
        if (tz > 0) {
          const int32_t* f = fz.data() + z * tz;
          for (int64_t y = 0; y < s.y; ++y) {
            for (int t = 0; t < tz; ++t) p.ptr[static_cast<size_t>(t)] = src + f[t] * plane + y * s.x;
            row_weighted_sum(p.ptr.data(), kz.data(), tz, s.x, p.a.data() + y * s.x);
          }
          cur = p.a.data();
        }
        if (ty > 0) {
          for (int64_t y = 0; y < s.y; ++y) {
            const int32_t* f = fy.data() + y * ty;
            for (int t = 0; t < ty; ++t) p.ptr[static_cast<size_t>(t)] = cur + f[t] * s.x;
            row_weighted_sum(p.ptr.data(), ky.data(), ty, s.x, p.b.data() + y * s.x);
          }
          cur = p.b.data();
        }
        float* out = dst + z * plane;
        if (tx == 0) {
          std::copy(cur, cur + plane, out);
          return;
        }
        float* in = p.row.data();
        for (int64_t y = 0; y < s.y; ++y) {
          const float* r = cur + y * s.x;
          for (int i = 0; i < rx; ++i) {
            in[i] = r[fx_lo[static_cast<size_t>(i)]];
            in[s.x + rx + i] = r[fx_hi[static_cast<size_t>(i)]];
          }
          std::copy(r, r + s.x, in + rx);
          row_convolve(in, kx.data(), tx, s.x, p.acc.data());
          std::copy(p.acc.begin(), p.acc.end(), out + y * s.x);
        }
      });
}

// dst = src over n floats, split over the pool.
void parallel_copy(const float* src, float* dst, int64_t n) {
  constexpr int64_t kBlock = int64_t{1} << 16;
  parallel_items<NoState>(
      (n + kBlock - 1) / kBlock, [] { return NoState{}; },
      [&](int64_t i, NoState&) {
        const int64_t lo = i * kBlock, hi = std::min(n, lo + kBlock);
        std::copy(src + lo, src + hi, dst + lo);
      });
}

struct LinearTable {
  std::vector<int32_t> i0, i1;
  std::vector<float> w1;
};

LinearTable linear_table(int64_t n_in, int64_t n_out) {
  LinearTable t;
  t.i0.resize(static_cast<size_t>(n_out));
  t.i1.resize(static_cast<size_t>(n_out));
  t.w1.resize(static_cast<size_t>(n_out));
  for (int64_t i = 0; i < n_out; ++i) {
    int64_t a, b;
    linear_src(i, n_in, n_out, a, b, t.w1[static_cast<size_t>(i)]);
    t.i0[static_cast<size_t>(i)] = static_cast<int32_t>(a);
    t.i1[static_cast<size_t>(i)] = static_cast<int32_t>(b);
  }
  return t;
}

}  // namespace

template <class L>
void spatial_cpu(const SpatialArgs& a, const float* image, float* out_image, const L* label, L* out_label) {
  const Shape3 S = a.src, O = a.out;
  const int64_t sv = S.size(), ov = O.size(), oplane = O.y * O.x;
  if (a.n == 0 || ov == 0) return;
  const bool elastic = a.coef != nullptr && a.gz > 0 && a.gy > 0 && a.gx > 0;
  AxisTable tz, ty;
  XTaps tx;
  if (elastic) {
    tz = bspline_table(O.z, a.gz);
    ty = bspline_table(O.y, a.gy);
    tx = bspline_xtaps(O.x, a.gx);
  }
  const int64_t gyx3 = static_cast<int64_t>(a.gy) * a.gx * 3, gstride = a.gz * gyx3, gx3 = int64_t{a.gx} * 3;
  // The vectorised trilinear path indexes with int32.
  const bool fast_linear = a.image_order == 1 && sv < (int64_t{1} << 31);
  const bool fast_nearest = label != nullptr && a.label_mode == LABEL_NEAREST && sv < (int64_t{1} << 31);
  const L lcval = static_cast<L>(a.label_cval);
  constexpr bool byte_label = sizeof(L) == 1;
  (void)byte_label;
  const int snz = static_cast<int>(S.z), sny = static_cast<int>(S.y), snx = static_cast<int>(S.x);

  struct Buffers {
    std::vector<float> g, h, cz, cy, cx, w;  // w: 7 weight rows
    std::vector<int32_t> o, idx;             // o: 6 offset rows
  };
  const size_t ox = static_cast<size_t>(O.x);
  parallel_items<Buffers>(
      a.n * O.z,
      [&] {
        Buffers b;
        b.g.resize(static_cast<size_t>(elastic ? gyx3 : 0));
        b.h.resize(static_cast<size_t>(elastic ? gx3 + 9 : 0));
        for (auto* v : {&b.cz, &b.cy, &b.cx}) v->resize(ox);
        b.w.resize(7 * ox);
        b.o.resize(6 * ox);
        b.idx.resize(ox);
        return b;
      },
      [&](int64_t item, Buffers& buf) {
        const int64_t n = item / O.z, z = item % O.z;
        const VoxelMap& m = a.maps[n];
        const bool el = elastic && (a.has_elastic == nullptr || a.has_elastic[n] != 0);
        float* G = buf.g.data();
        float* H = buf.h.data();
        float* cz = buf.cz.data();
        float* cy = buf.cy.data();
        float* cx = buf.cx.data();
        if (el) {
          const float* coef = a.coef + n * gstride;
          const float* w = &tz.w[static_cast<size_t>(4 * z)];
          const int i0 = tz.i[static_cast<size_t>(z)] - 1;
          std::fill(G, G + gyx3, 0.0f);
          for (int k = 0; k < 4; ++k) row_axpy(G, coef + clamp_index(i0 + k, a.gz) * gyx3, w[k], gyx3);
        }
        const float pz = static_cast<float>(z);
        for (int64_t y = 0; y < O.y; ++y) {
          const float py = static_cast<float>(y);
          const float bz = m.b[0] + m.a[0] * pz + m.a[1] * py, by = m.b[1] + m.a[3] * pz + m.a[4] * py,
                      bx = m.b[2] + m.a[6] * pz + m.a[7] * py;
          if (el) {
            const float* w = &ty.w[static_cast<size_t>(4 * y)];
            const int i0 = ty.i[static_cast<size_t>(y)] - 1;
            float* Hm = H + 3;  // H[3 * (j + 1)] holds control column j; one pad left, two right
            std::fill(Hm, Hm + gx3, 0.0f);
            for (int k = 0; k < 4; ++k) row_axpy(Hm, G + clamp_index(i0 + k, a.gy) * gx3, w[k], gx3);
            for (int c = 0; c < 3; ++c) {
              H[c] = Hm[c];
              H[gx3 + 3 + c] = H[gx3 + 6 + c] = Hm[gx3 - 3 + c];
            }
            const float* xw = tx.w.data();
#ifdef FASTSEG_X86_GATHER
            if (simd_level() == SIMD_AVX512 && a.gx + 3 <= 16) {
              row_affine_elastic_avx512(bz, by, bx, m.a[2], m.a[5], m.a[8], H, a.gx + 3, tx.col.data(), xw, xw + ox,
                                        xw + 2 * ox, xw + 3 * ox, O.x, cz, cy, cx);
            } else
#endif
            row_affine_elastic(bz, by, bx, m.a[2], m.a[5], m.a[8], H, tx.seg.data(), tx.segments, xw, xw + ox,
                               xw + 2 * ox, xw + 3 * ox, cz, cy, cx);
          } else {
            row_affine(bz, by, bx, m.a[2], m.a[5], m.a[8], O.x, cz, cy, cx);
          }
          const int64_t vbase = z * oplane + y * O.x;
          const bool edge = a.border == BORDER_EDGE;
          int64_t fused = 0;       // voxels of the row the AVX-512 kernel did (image, and label index)
          int64_t label_done = 0;  // voxels whose label it wrote too
          if (fast_linear) {
#ifdef FASTSEG_X86_GATHER
            if (simd_level() == SIMD_AVX512) {
              fused = row_linear_fused_avx512(cz, cy, cx, O.x, snz, sny, snx, edge, image + n * a.c * sv, a.c, sv,
                                              a.cval, out_image + n * a.c * ov + vbase, ov,
                                              fast_nearest && !byte_label ? buf.idx.data() : nullptr,
                                              fast_nearest && byte_label ? reinterpret_cast<const uint8_t*>(label + n * sv)
                                                                         : nullptr,
                                              fast_nearest && byte_label
                                                  ? reinterpret_cast<uint8_t*>(out_label + n * ov + vbase)
                                                  : nullptr,
                                              static_cast<uint8_t>(lcval));
              if (fast_nearest && byte_label) label_done = fused;
            }
#endif
            const int64_t f = fused, m = O.x - f;
            int32_t* o = buf.o.data();
            float* w = buf.w.data();
            const LinearRow r{o, o + ox, o + 2 * ox, o + 3 * ox, o + 4 * ox, o + 5 * ox, w, w + ox,
                              w + 2 * ox, w + 3 * ox, w + 4 * ox, w + 5 * ox, w + 6 * ox};
            if (m > 0) {
              axis_taps(cz + f, m, snz, static_cast<int32_t>(S.y * S.x), edge, r.oz0, r.oz1, r.wz0, r.wz1);
              axis_taps(cy + f, m, sny, static_cast<int32_t>(S.x), edge, r.oy0, r.oy1, r.wy0, r.wy1);
              axis_taps(cx + f, m, snx, 1, edge, r.ox0, r.ox1, r.wx0, r.wx1);
              row_w_out(r.wz0, r.wz1, r.wy0, r.wy1, r.wx0, r.wx1, m, r.w_out);
              for (int64_t c = 0; c < a.c; ++c) {
                row_linear_gather(image + (n * a.c + c) * sv, r.oz0, r.oz1, r.oy0, r.oy1, r.ox0, r.ox1, r.wz0,
                                  r.wz1, r.wy0, r.wy1, r.wx0, r.wx1, r.w_out, a.cval, m,
                                  out_image + (n * a.c + c) * ov + vbase + f);
              }
            }
          } else {
            for (int64_t x = 0; x < O.x; ++x) {
              LinearTaps t;
              if (a.image_order == 1) linear_taps(cz[x], cy[x], cx[x], S.z, S.y, S.x, a.border, t);
              for (int64_t c = 0; c < a.c; ++c) {
                const float* src = image + (n * a.c + c) * sv;
                out_image[(n * a.c + c) * ov + vbase + x] =
                    a.image_order == 1 ? apply_taps(t, src, a.cval)
                                       : sample_cubic(src, S.z, S.y, S.x, cz[x], cy[x], cx[x], a.border, a.cval);
              }
            }
          }
          if (label == nullptr) continue;
          const L* lab = label + n * sv;
          L* dst = out_label + n * ov + vbase;
          if (fast_nearest) {
            int32_t* idx = buf.idx.data();
            if (fused < O.x) {
              row_nearest_index(cz + fused, cy + fused, cx + fused, O.x - fused, snz, sny, snx, edge, idx + fused);
            }
            for (int64_t x = label_done; x < O.x; ++x) dst[x] = idx[x] >= 0 ? lab[idx[x]] : lcval;
          } else if (a.label_mode == LABEL_NEAREST) {
            for (int64_t x = 0; x < O.x; ++x) {
              dst[x] = sample_nearest(lab, S.z, S.y, S.x, cz[x], cy[x], cx[x], a.border, lcval);
            }
          } else {
            for (int64_t x = 0; x < O.x; ++x) {
              LinearTaps t;
              linear_taps(cz[x], cy[x], cx[x], S.z, S.y, S.x, a.border, t);
              dst[x] = sample_label_linear(lab, t, lcval);
            }
          }
        }
      });
}

#define FASTSEG_SPATIAL_CPU(L) \
  template void spatial_cpu<L>(const SpatialArgs&, const float*, float*, const L*, L*);
FASTSEG_SPATIAL_CPU(uint8_t)
FASTSEG_SPATIAL_CPU(int8_t)
FASTSEG_SPATIAL_CPU(int16_t)
FASTSEG_SPATIAL_CPU(int32_t)
FASTSEG_SPATIAL_CPU(int64_t)
#undef FASTSEG_SPATIAL_CPU

void noise_cpu(const Batch& b, const uint8_t* active, const float* sigma, const uint64_t* keys) {
  const int64_t plane = b.shape.y * b.shape.x;
  for_active_slices(b, active, [&](int64_t nc, int64_t z, float* v, int64_t len) {
    const NoiseKey k = noise_key(keys[nc / b.c], nc % b.c);
    row_noise(v, len, static_cast<uint32_t>(z * plane), k.k0, k.k1, sigma[nc]);
  });
}

void brightness_cpu(const Batch& b, const uint8_t* active, const float* mul, const float* add) {
  for_active_slices(b, active,
                    [&](int64_t nc, int64_t, float* v, int64_t len) { row_scale_shift(v, len, mul[nc], add[nc]); });
}

void contrast_cpu(const Batch& b, const uint8_t* active, const float* factor, bool preserve_range) {
  const std::vector<Moments> mo = moments(b, active);
  for_active_slices(b, active, [&](int64_t nc, int64_t, float* v, int64_t len) {
    const Moments& s = mo[static_cast<size_t>(nc)];
    row_contrast(v, len, static_cast<float>(s.mean), factor[nc], s.min, s.max, preserve_range);
  });
}

void gamma_cpu(const Batch& b, const uint8_t* active, const float* gamma, const uint8_t* invert,
               bool retain_stats) {
  const std::vector<Moments> mo = moments(b, active);
  const int64_t nz = b.shape.z;
  std::vector<Partial> part(static_cast<size_t>(b.count() * nz));
  for_active_slices(b, active, [&](int64_t nc, int64_t z, float* v, int64_t len) {
    const Moments& s = mo[static_cast<size_t>(nc)];
    const float sign = invert[nc] ? -1.0f : 1.0f, lo = invert[nc] ? -s.max : s.min, range = s.max - s.min;
    const float inv = 1.0f / (range + 1e-7f);
    Partial p;
    for (int64_t i = 0; i < len; i += kChunk) {
      float m[2];
      chunk_gamma(v + i, std::min<int64_t>(kChunk, len - i), sign, lo, inv, gamma[nc], range, m);
      p.s1 += m[0];
      p.s2 += m[1];
    }
    part[static_cast<size_t>(nc * nz + z)] = p;
  });
  std::vector<float> scale(static_cast<size_t>(b.count())), shift(static_cast<size_t>(b.count()));
  for (int64_t nc = 0; nc < b.count(); ++nc) {
    if (!active[nc]) continue;
    const Moments& s = mo[static_cast<size_t>(nc)];
    const double sign = invert[nc] ? -1.0 : 1.0;
    double sc = sign, sh = 0.0;
    if (retain_stats) {
      Partial t;
      for (int64_t z = 0; z < nz; ++z) {
        t.s1 += part[static_cast<size_t>(nc * nz + z)].s1;
        t.s2 += part[static_cast<size_t>(nc * nz + z)].s2;
      }
      const Moments after = finish(t, invert[nc] ? -s.max : s.min, b.volume());
      const double ratio = s.std / (after.std + 1e-8);
      // sign * ((y - mean_after) * ratio + sign * mean_before)
      sc = sign * ratio;
      sh = sign * (sign * s.mean - after.mean * ratio);
    }
    scale[static_cast<size_t>(nc)] = static_cast<float>(sc);
    shift[static_cast<size_t>(nc)] = static_cast<float>(sh);
  }
  for_active_slices(b, active, [&](int64_t nc, int64_t, float* v, int64_t len) {
    row_scale_shift(v, len, scale[static_cast<size_t>(nc)], shift[static_cast<size_t>(nc)]);
  });
}

void bias_field_cpu(const Batch& b, const uint8_t* active, const float* coef, int order) {
  const int terms = bias_terms(order);
  const Shape3 s = b.shape;
  std::vector<float> ux(static_cast<size_t>(s.x));
  for (int64_t x = 0; x < s.x; ++x) ux[static_cast<size_t>(x)] = unit_coord(x, s.x);
  for_active_slices(b, active, [&](int64_t nc, int64_t z, float* v, int64_t) {
    const float* c = coef + nc * terms;
    // cyx[j][k] = sum_i c_ijk uz^i; then per row cx[k] = sum_j cyx[j][k] uy^j.
    float cyx[8][8] = {}, cx[8];
    const float uz = unit_coord(z, s.z);
    int t = 0;
    float pz = 1.0f;
    for (int i = 0; i <= order; ++i) {
      for (int j = 0; j <= order - i; ++j) {
        for (int k = 0; k <= order - i - j; ++k) cyx[j][k] += c[t++] * pz;
      }
      pz *= uz;
    }
    for (int64_t y = 0; y < s.y; ++y) {
      const float uy = unit_coord(y, s.y);
      for (int k = 0; k < 8; ++k) cx[k] = 0.0f;
      float py = 1.0f;
      for (int j = 0; j <= order; ++j) {
        for (int k = 0; k <= order - j; ++k) cx[k] += cyx[j][k] * py;
        py *= uy;
      }
      row_bias(v + y * s.x, s.x, ux.data(), cx);
    }
  });
}

void blur_cpu(const Batch& b, const uint8_t* active, const float* sigma) {
  const int64_t vol = b.volume();
  for (int64_t nc = 0; nc < b.count(); ++nc) {
    if (!active[nc] || vol == 0) continue;
    std::vector<float> k[3];
    for (int axis = 0; axis < 3; ++axis) {
      const float sg = sigma[nc * 3 + axis];
      if (sg > 1e-15f) k[axis] = gauss_kernel(sg);
    }
    if (k[0].empty() && k[1].empty() && k[2].empty()) continue;
    float* v = b.data + nc * vol;
    float* tmp = scratch(0, static_cast<size_t>(vol));
    blur_volume(v, tmp, b.shape, k[0], k[1], k[2]);
    parallel_copy(tmp, v, vol);
  }
}

void lowres_cpu(const Batch& b, const uint8_t* active, const float* zoom) {
  const Shape3 s = b.shape;
  if (s.size() == 0) return;
  for (int64_t nc = 0; nc < b.count(); ++nc) {
    if (!active[nc]) continue;
    float* v = b.data + nc * b.volume();
    const Shape3 m{lowres_size(s.z, zoom[nc * 3]), lowres_size(s.y, zoom[nc * 3 + 1]),
                   lowres_size(s.x, zoom[nc * 3 + 2])};
    float* low = scratch(0, static_cast<size_t>(m.size()));
    float* up_x = scratch(1, static_cast<size_t>(m.z * m.y * s.x));
    std::vector<int32_t> dx(static_cast<size_t>(m.x));
    for (int64_t x = 0; x < m.x; ++x) dx[static_cast<size_t>(x)] = static_cast<int32_t>(nearest_src(x, s.x, m.x));
    const LinearTable tz = linear_table(m.z, s.z), ty = linear_table(m.y, s.y), tx = linear_table(m.x, s.x);
    // Nearest downsampling, then linear upsampling axis by axis: x on the low grid, then y, then z
    // (the trilinear interpolant, evaluated separably).
    parallel_items<NoState>(
        m.z * m.y, [] { return NoState{}; },
        [&](int64_t row, NoState&) {
          const int64_t z = row / m.y, y = row % m.y;
          const float* src = v + (nearest_src(z, s.z, m.z) * s.y + nearest_src(y, s.y, m.y)) * s.x;
          row_gather_index(src, dx.data(), m.x, low + row * m.x);
          row_lerp_index(low + row * m.x, tx.i0.data(), tx.i1.data(), tx.w1.data(), s.x,
                         up_x + row * s.x);
        });
    // y then z, fused per output slice: the two y-upsampled rows a z-lerp reads are made in a
    // per-thread buffer (the same arithmetic as a separate y pass, without the (m.z, y, x) volume).
    parallel_items<std::vector<float>>(
        s.z, [&] { return std::vector<float>(static_cast<size_t>(2 * s.x)); },
        [&](int64_t z, std::vector<float>& rows) {
          const int64_t z0 = tz.i0[static_cast<size_t>(z)], z1 = tz.i1[static_cast<size_t>(z)];
          const float wz = tz.w1[static_cast<size_t>(z)];
          float* r0 = rows.data();
          float* r1 = r0 + s.x;
          for (int64_t y = 0; y < s.y; ++y) {
            const size_t yy = static_cast<size_t>(y);
            row_lerp(up_x + (z0 * m.y + ty.i0[yy]) * s.x, up_x + (z0 * m.y + ty.i1[yy]) * s.x, ty.w1[yy], s.x, r0);
            row_lerp(up_x + (z1 * m.y + ty.i0[yy]) * s.x, up_x + (z1 * m.y + ty.i1[yy]) * s.x, ty.w1[yy], s.x, r1);
            row_lerp(r0, r1, wz, s.x, v + (z * s.y + y) * s.x);
          }
        });
  }
}

}  // namespace fastseg::augment
