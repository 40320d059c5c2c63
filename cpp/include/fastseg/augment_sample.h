// Sampling a (z, y, x) volume at a fractional source position, shared by CPU and CUDA kernels.
//
// Positions are voxel indices (voxel centres at integers). Border handling per tap:
//   BORDER_CONSTANT: a tap outside the volume reads `cval` (SciPy's mode="grid-constant");
//   BORDER_EDGE:     a tap outside reads the nearest edge voxel (SciPy's mode="nearest").
// Images: trilinear (8 taps), or cubic convolution with Keys' kernel, a = -0.5 (Keys, "Cubic
// convolution interpolation for digital image processing", IEEE TASSP 1981; Catmull-Rom: no
// prefilter, interpolating, 64 taps). At integer positions every interpolant returns the voxel
// itself exactly. Labels: nearest (round half up), or linear interpolation of the one-hot encoding
// followed by argmax, done per voxel over the at most 8 labels of its taps (ties: smaller label).
#pragma once
#include <cmath>
#include <cstdint>

#include "fastseg/augment_map.h"

namespace fastseg::augment {

enum Border : int { BORDER_CONSTANT = 0, BORDER_EDGE = 1 };

FASTSEG_HD inline bool inside(int64_t i, int64_t n) { return i >= 0 && i < n; }
FASTSEG_HD inline int64_t clamp64(int64_t i, int64_t n) { return i < 0 ? 0 : (i >= n ? n - 1 : i); }

// Positions far outside the volume are clamped to a band around it first so that floor() and the
// integer conversion stay defined; the band is wide enough that every tap is still outside.
FASTSEG_HD inline float guard(float v, int64_t n) {
  const float lo = -4.0f, hi = static_cast<float>(n) + 4.0f;
  return v < lo ? lo : (v > hi ? hi : v);
}

// The 8 taps of trilinear interpolation at (z, y, x): flat offsets, weights, and the total weight
// of taps that fall outside (constant border), so each channel costs 8 loads.
struct LinearTaps {
  int64_t off[8];
  float w[8];
  float w_out;
};

FASTSEG_HD inline void linear_taps(float z, float y, float x, int64_t nz, int64_t ny, int64_t nx,
                                   int border, LinearTaps& t) {
  z = guard(z, nz);
  y = guard(y, ny);
  x = guard(x, nx);
  const float fz = floorf(z), fy = floorf(y), fx = floorf(x);
  const float dz = z - fz, dy = y - fy, dx = x - fx;
  const int64_t iz = static_cast<int64_t>(fz), iy = static_cast<int64_t>(fy), ix = static_cast<int64_t>(fx);
  const float wz[2] = {1.0f - dz, dz}, wy[2] = {1.0f - dy, dy}, wx[2] = {1.0f - dx, dx};
  t.w_out = 0.0f;
  int k = 0;
  for (int a = 0; a < 2; ++a) {
    for (int b = 0; b < 2; ++b) {
      for (int c = 0; c < 2; ++c, ++k) {
        int64_t jz = iz + a, jy = iy + b, jx = ix + c;
        const float w = wz[a] * wy[b] * wx[c];
        if (border == BORDER_EDGE) {
          jz = clamp64(jz, nz);
          jy = clamp64(jy, ny);
          jx = clamp64(jx, nx);
        } else if (!(inside(jz, nz) && inside(jy, ny) && inside(jx, nx))) {
          t.w_out += w;
          t.off[k] = -1;
          t.w[k] = 0.0f;
          continue;
        }
        t.off[k] = (jz * ny + jy) * nx + jx;
        t.w[k] = w;
      }
    }
  }
}

FASTSEG_HD inline float apply_taps(const LinearTaps& t, const float* v, float cval) {
  float s = 0.0f;
  for (int k = 0; k < 8; ++k) s += t.off[k] >= 0 ? t.w[k] * v[t.off[k]] : 0.0f;
  return s + t.w_out * cval;
}

FASTSEG_HD inline void keys_weights(float f, float w[4]) {
  const float a = -0.5f, f2 = f * f, f3 = f2 * f;
  w[0] = a * f3 - 2.0f * a * f2 + a * f;
  w[1] = (a + 2.0f) * f3 - (a + 3.0f) * f2 + 1.0f;
  w[2] = -(a + 2.0f) * f3 + (2.0f * a + 3.0f) * f2 - a * f;
  w[3] = -a * f3 + a * f2;
}

// Cubic convolution (64 taps) of one channel at (z, y, x).
FASTSEG_HD inline float sample_cubic(const float* v, int64_t nz, int64_t ny, int64_t nx, float z,
                                     float y, float x, int border, float cval) {
  z = guard(z, nz);
  y = guard(y, ny);
  x = guard(x, nx);
  const float fz = floorf(z), fy = floorf(y), fx = floorf(x);
  float wz[4], wy[4], wx[4];
  keys_weights(z - fz, wz);
  keys_weights(y - fy, wy);
  keys_weights(x - fx, wx);
  const int64_t iz = static_cast<int64_t>(fz) - 1, iy = static_cast<int64_t>(fy) - 1,
                ix = static_cast<int64_t>(fx) - 1;
  float s = 0.0f;
  for (int a = 0; a < 4; ++a) {
    int64_t jz = iz + a;
    const bool in_z = inside(jz, nz);
    if (border == BORDER_EDGE) jz = clamp64(jz, nz);
    for (int b = 0; b < 4; ++b) {
      int64_t jy = iy + b;
      const bool in_zy = in_z && inside(jy, ny);
      if (border == BORDER_EDGE) jy = clamp64(jy, ny);
      float row = 0.0f;
      for (int c = 0; c < 4; ++c) {
        int64_t jx = ix + c;
        float val;
        if (border == BORDER_EDGE) {
          val = v[(jz * ny + jy) * nx + clamp64(jx, nx)];
        } else {
          val = in_zy && inside(jx, nx) ? v[(jz * ny + jy) * nx + jx] : cval;
        }
        row += wx[c] * val;
      }
      s += wz[a] * wy[b] * row;
    }
  }
  return s;
}

// Nearest neighbour (round half up) of a label volume; out-of-volume reads `cval` or the edge.
template <class L>
FASTSEG_HD inline L sample_nearest(const L* v, int64_t nz, int64_t ny, int64_t nx, float z, float y,
                                   float x, int border, L cval) {
  int64_t iz = static_cast<int64_t>(floorf(guard(z, nz) + 0.5f));
  int64_t iy = static_cast<int64_t>(floorf(guard(y, ny) + 0.5f));
  int64_t ix = static_cast<int64_t>(floorf(guard(x, nx) + 0.5f));
  if (border == BORDER_EDGE) {
    iz = clamp64(iz, nz);
    iy = clamp64(iy, ny);
    ix = clamp64(ix, nx);
  } else if (!(inside(iz, nz) && inside(iy, ny) && inside(ix, nx))) {
    return cval;
  }
  return v[(iz * ny + iy) * nx + ix];
}

// Linear interpolation of the one-hot encoding, then argmax: the label with the largest summed
// trilinear weight among the taps (ties go to the smaller label).
template <class L>
FASTSEG_HD inline L sample_label_linear(const L* v, const LinearTaps& t, L cval) {
  L labels[9];
  float weight[9];
  int n = 0;
  for (int k = 0; k <= 8; ++k) {
    L lab;
    float w;
    if (k == 8) {
      lab = cval;
      w = t.w_out;
    } else {
      lab = t.off[k] >= 0 ? v[t.off[k]] : cval;
      w = t.w[k];
    }
    int j = 0;
    while (j < n && labels[j] != lab) ++j;
    if (j == n) {
      labels[n] = lab;
      weight[n] = 0.0f;
      ++n;
    }
    weight[j] += w;
  }
  int best = 0;
  for (int j = 1; j < n; ++j) {
    if (weight[j] > weight[best] || (weight[j] == weight[best] && labels[j] < labels[best])) best = j;
  }
  return labels[best];
}

}  // namespace fastseg::augment
