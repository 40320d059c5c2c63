// Coordinate map of the fused spatial augmentation, shared by the CPU and CUDA kernels.
//
// Every output voxel p = (z, y, x) (voxel indices of the output patch) is mapped to a position in
// the source volume (voxel units, fractional) by ONE map:
//
//   src(p) = A p + b + E(p)
//
// A (3x3) and b (3) are the affine part in voxel units: flips, rotation (done in millimetres, so
// anisotropic spacing is handled), scaling, translation and the crop offset, composed on the host
// in double precision (fastseg.augment._spatial). E(p) is the elastic displacement, a uniform cubic
// B-spline over a coarse control grid of gz x gy x gx points spread evenly over the output patch
// (control point k of an axis sits at output voxel k * (n_out - 1) / (g - 1)); the coefficients
// are stored already transformed into source-voxel units, shape (gz, gy, gx, 3), components
// (z, y, x). Control indices beyond the grid are clamped to its edge. Nothing but the coarse grid
// is ever stored: E is evaluated per output voxel (the CPU kernel stages it per slice and per row,
// the CUDA kernel evaluates the 64 taps directly).
//
// Cubic B-spline basis: de Boor, "A Practical Guide to Splines" (1978); with fraction f of the
// control coordinate t, taps floor(t) - 1 .. floor(t) + 2 get weights
//   (1-f)^3/6, (3f^3 - 6f^2 + 4)/6, (-3f^3 + 3f^2 + 3f + 1)/6, f^3/6.
#pragma once
#include <cmath>
#include <cstdint>

#ifndef FASTSEG_HD
#include "fastseg/portability.h"
#endif

namespace fastseg::augment {

// src = A p + b, row-major A; float so that CPU and CUDA evaluate the same arithmetic.
struct VoxelMap {
  float a[9];
  float b[3];
};

FASTSEG_HD inline int clamp_index(int i, int n) { return i < 0 ? 0 : (i >= n ? n - 1 : i); }

FASTSEG_HD inline void bspline3_weights(float f, float w[4]) {
  const float f2 = f * f, f3 = f2 * f, g = 1.0f - f;
  w[0] = g * g * g * (1.0f / 6.0f);
  w[1] = (3.0f * f3 - 6.0f * f2 + 4.0f) * (1.0f / 6.0f);
  w[2] = (-3.0f * f3 + 3.0f * f2 + 3.0f * f + 1.0f) * (1.0f / 6.0f);
  w[3] = f3 * (1.0f / 6.0f);
}

// Control-grid coordinate of output voxel index p on an axis of n_out voxels and g control points.
FASTSEG_HD inline float control_coord(int64_t p, int64_t n_out, int g) {
  if (n_out <= 1 || g <= 1) return 0.0f;
  return static_cast<float>(static_cast<double>(p) * (g - 1) / static_cast<double>(n_out - 1));
}

// The elastic displacement at control coordinates (tz, ty, tx): all 64 taps, clamped indices.
// coef: (gz, gy, gx, 3) floats.
FASTSEG_HD inline void elastic_at(const float* coef, int gz, int gy, int gx, float tz, float ty,
                                  float tx, float d[3]) {
  const float fz = floorf(tz), fy = floorf(ty), fx = floorf(tx);
  float wz[4], wy[4], wx[4];
  bspline3_weights(tz - fz, wz);
  bspline3_weights(ty - fy, wy);
  bspline3_weights(tx - fx, wx);
  const int iz = static_cast<int>(fz) - 1, iy = static_cast<int>(fy) - 1, ix = static_cast<int>(fx) - 1;
  d[0] = d[1] = d[2] = 0.0f;
  for (int a = 0; a < 4; ++a) {
    const int kz = clamp_index(iz + a, gz);
    for (int b = 0; b < 4; ++b) {
      const int ky = clamp_index(iy + b, gy);
      const float wzy = wz[a] * wy[b];
      for (int c = 0; c < 4; ++c) {
        const int kx = clamp_index(ix + c, gx);
        const float* q = coef + ((static_cast<int64_t>(kz) * gy + ky) * gx + kx) * 3;
        const float w = wzy * wx[c];
        d[0] += w * q[0];
        d[1] += w * q[1];
        d[2] += w * q[2];
      }
    }
  }
}

// The full map at output voxel (z, y, x); coef may be null (no elastic part).
FASTSEG_HD inline void map_voxel(const VoxelMap& m, const float* coef, int gz, int gy, int gx,
                                 int64_t oz, int64_t oy, int64_t ox, int64_t z, int64_t y, int64_t x,
                                 float s[3]) {
  const float pz = static_cast<float>(z), py = static_cast<float>(y), px = static_cast<float>(x);
  for (int i = 0; i < 3; ++i) s[i] = m.b[i] + m.a[3 * i] * pz + m.a[3 * i + 1] * py + m.a[3 * i + 2] * px;
  if (coef != nullptr) {
    float d[3];
    elastic_at(coef, gz, gy, gx, control_coord(z, oz, gz), control_coord(y, oy, gy),
               control_coord(x, ox, gx), d);
    s[0] += d[0];
    s[1] += d[1];
    s[2] += d[2];
  }
}

}  // namespace fastseg::augment
