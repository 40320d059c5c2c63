// Exact Euclidean distance transform with anisotropic spacing, in double precision.
//
// For a feature set F on a 3D grid with spacing (sz, sy, sx) mm, the squared distance transform
//   D(p) = min over f in F of (sz (pz - fz))^2 + (sy (py - fy))^2 + (sx (px - fx))^2   [mm^2]
// is separable: minimising over one axis at a time gives the exact result. The first axis (z)
// only needs the distance to the nearest feature along each column (two sweeps). Each later axis
// minimises g(q) + (s (p - q))^2 over the samples q of a line, which is the lower envelope of
// parabolas rooted at (q, g(q)); it is built and read in O(n) by the algorithm of
//   P. F. Felzenszwalb and D. P. Huttenlocher, "Distance Transforms of Sampled Functions",
//   Theory of Computing 8(19), 2012, 415-428 (Algorithm 1, "DT(f)"),
// here with the sample spacing s folded into the parabola intersection and infinite samples
// (no feature on that line) left out of the envelope.
//
// The sums are formed in the order ((z) + (y)) + (x), with each term (s d)^2 for an integer voxel
// offset d, as scipy.ndimage.distance_transform_edt(sampling=...) forms them.
//
// Restricted to a box: if every feature lies inside the box, the transform computed inside the box
// alone is exact for every point inside it. Lines that leave the box only cross voxels whose earlier
// partial minima are infinite (no feature shares their column, row or plane inside the box), so
// nothing outside the box can be the minimiser.
//
// Sparse queries (ColumnSearch): when the distance is wanted only at some voxels, most of them near
// the features, the first pass alone (along the axis of finest spacing) is kept and each query
// minimises over the other two axes by a search outwards that stops at the best value found; the
// result is the same number, at a cost of about the number of voxels in the query's distance disc.
#pragma once
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "fastseg/edt_line.h"
#include "fastseg/parallel.h"
#include "fastseg/shape.h"

namespace fastseg::edt {

inline constexpr double kInf = std::numeric_limits<double>::infinity();

// Work buffers for one line of length n (envelope_line's scratch).
struct LineBuffers {
  std::vector<double> fv, gv, zn, zd;
  std::vector<int64_t> v;
  explicit LineBuffers(int64_t n) : fv(n), gv(n), zn(n + 1), zd(n + 1), v(n) {}
};

// envelope_line (edt_line.h) with the buffers of `buf`.
inline void lower_envelope_line(double* d, int64_t n, int64_t stride, double s, LineBuffers& buf,
                                const uint8_t* need = nullptr, int64_t need_stride = 0) {
  envelope_line(d, n, stride, s, buf.fv.data(), buf.gv.data(), buf.zn.data(), buf.zd.data(),
                buf.v.data(), need, need_stride);
}

// First pass: squared distance (mm^2) along z from every voxel of a box of shape `shape` to the
// nearest voxel of its column (same y, x) with (mask[i] & feature_bit) != 0; +inf when the column
// has none. Forward and backward sweeps over whole planes, columns split into chunks.
inline void column_pass(const uint8_t* mask, uint8_t feature_bit, const Shape3& shape,
                        const Spacing3& sp, double* out, int64_t min_parallel) {
  const int64_t nz = shape.z, plane = shape.y * shape.x;
  constexpr int64_t chunk = 1024;
  parallel_for((plane + chunk - 1) / chunk, [&](int64_t c) {
    const int64_t a = c * chunk, b = std::min(plane, a + chunk);
    for (int64_t i = a; i < b; ++i) out[i] = (mask[i] & feature_bit) ? 0.0 : kInf;
    for (int64_t iz = 1; iz < nz; ++iz) {
      const uint8_t* m = mask + iz * plane;
      double* o = out + iz * plane;
      const double* prev = o - plane;
      for (int64_t i = a; i < b; ++i) o[i] = (m[i] & feature_bit) ? 0.0 : prev[i] + 1.0;
    }
    for (int64_t iz = nz - 2; iz >= 0; --iz) {
      double* o = out + iz * plane;
      const double* next = o + plane;
      for (int64_t i = a; i < b; ++i) o[i] = std::min(o[i], next[i] + 1.0);
    }
    for (int64_t iz = 0; iz < nz; ++iz) {
      double* o = out + iz * plane;
      for (int64_t i = a; i < b; ++i) {
        const double t = sp.z * o[i];
        o[i] = t * t;
      }
    }
  }, min_parallel);
}

// The first pass in whole voxels along any axis, for query-driven use: steps[i] = |i_axis - j_axis|
// to the nearest feature voxel j on the same line along `axis` (0 z, 1 y, 2 x), or the line length
// shape[axis] when the line has none.
inline void column_steps(const uint8_t* mask, uint8_t feature_bit, const Shape3& shape, int axis,
                         int32_t* steps) {
  const int64_t nz = shape.z, ny = shape.y, nx = shape.x;
  const int32_t none = static_cast<int32_t>(shape[axis]);
  if (axis == 2) {
    for (int64_t r = 0; r < nz * ny; ++r) {
      const uint8_t* m = mask + r * nx;
      int32_t* o = steps + r * nx;
      int32_t run = none;
      for (int64_t x = 0; x < nx; ++x) {
        run = (m[x] & feature_bit) ? 0 : std::min(run + 1, none);
        o[x] = run;
      }
      run = none;
      for (int64_t x = nx - 1; x >= 0; --x) {
        run = std::min(o[x], std::min(run + 1, none));
        o[x] = run;
      }
    }
    return;
  }
  // Along z (one block of whole planes) or y (one block per plane, lines of whole rows): sweeps
  // over contiguous slices of `inner` voxels.
  const int64_t blocks = axis == 0 ? 1 : nz, len = axis == 0 ? nz : ny;
  const int64_t inner = axis == 0 ? ny * nx : nx, block_size = len * inner;
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const uint8_t* mb = mask + blk * block_size;
    int32_t* sb = steps + blk * block_size;
    for (int64_t i = 0; i < inner; ++i) sb[i] = (mb[i] & feature_bit) ? 0 : none;
    for (int64_t l = 1; l < len; ++l) {
      const uint8_t* m = mb + l * inner;
      int32_t* o = sb + l * inner;
      const int32_t* prev = o - inner;
      for (int64_t i = 0; i < inner; ++i) {
        const int32_t keep = static_cast<int32_t>((m[i] & feature_bit) != 0) - 1;  // 0 on features
        o[i] = std::min(prev[i] + 1, none) & keep;
      }
    }
    for (int64_t l = len - 2; l >= 0; --l) {
      int32_t* o = sb + l * inner;
      const int32_t* next = o + inner;
      for (int64_t i = 0; i < inner; ++i) o[i] = std::min(o[i], std::min(next[i] + 1, none));
    }
  }
}

// Squared mm of every step count along `axis`, as column_pass computes them: (s k)^2 for
// k < shape[axis], +inf for k = shape[axis] (no feature).
inline std::vector<double> column_squares(const Shape3& shape, const Spacing3& sp, int axis) {
  const int64_t len = shape[axis];
  std::vector<double> sq(len + 1);
  for (int64_t k = 0; k < len; ++k) {
    const double t = sp[axis] * static_cast<double>(k);
    sq[k] = t * t;
  }
  sq[len] = kInf;
  return sq;
}

// Remaining passes on the output of column_pass, in place: lower envelopes along y, then along x
// (the x pass only on rows holding a voxel with query_bit, and there only at those voxels, when
// query_bit != 0).
inline void envelope_passes(const uint8_t* mask, const Shape3& shape, const Spacing3& sp,
                            double* out, uint8_t query_bit, int64_t min_parallel) {
  const int64_t nz = shape.z, ny = shape.y, nx = shape.x, plane = ny * nx;
  parallel_for(nz, [&](int64_t iz) {
    LineBuffers buf(ny);
    double* p = out + iz * plane;
    for (int64_t ix = 0; ix < nx; ++ix) lower_envelope_line(p + ix, ny, nx, sp.y, buf);
  }, min_parallel);
  parallel_for(nz, [&](int64_t iz) {
    LineBuffers buf(nx);
    std::vector<uint8_t> need(nx);
    for (int64_t iy = 0; iy < ny; ++iy) {
      const int64_t row = iz * plane + iy * nx;
      if (query_bit != 0) {
        bool any = false;
        for (int64_t ix = 0; ix < nx; ++ix) {
          need[ix] = (mask[row + ix] & query_bit) != 0;
          any |= need[ix] != 0;
        }
        if (!any) continue;
        lower_envelope_line(out + row, nx, 1, sp.x, buf, need.data(), 1);
      } else {
        lower_envelope_line(out + row, nx, 1, sp.x, buf);
      }
    }
  }, min_parallel);
}

// Squared distance (mm^2) from every voxel of a box of shape `shape` to the nearest voxel with
// (mask[i] & feature_bit) != 0; +inf when there is none. `out` has shape.size() elements, (z, y, x)
// C order. When query_bit != 0 the last pass writes only voxels with (mask[i] & query_bit) != 0
// (others hold partial minima). Threads over lines when the box is large and not already inside a
// parallel region.
inline void squared_edt(const uint8_t* mask, uint8_t feature_bit, const Shape3& shape,
                        const Spacing3& sp, double* out, uint8_t query_bit = 0) {
  if (shape.size() == 0) return;
  const int64_t min_parallel =
      shape.size() >= (int64_t{1} << 15) ? 2 : std::numeric_limits<int64_t>::max();
  column_pass(mask, feature_bit, shape, sp, out, min_parallel);
  envelope_passes(mask, shape, sp, out, query_bit, min_parallel);
}

// Query-driven evaluation for sparse queries near the features. With c the column steps along
// axis Axis (squared mm g = sq[c], see column_squares) and U, V the two other axes, the exact
// squared distance at voxel p is  min over (du, dv) of g(p + du + dv) + (s_U du)^2 + (s_V dv)^2,
// the three terms summed in z, y, x order. It is searched outwards from p and cut off once
// (s_U du)^2, or (s_U du)^2 + (s_V dv)^2, reaches the best value found (the omitted terms are >= 0
// and rounding is monotonic, so nothing smaller is skipped). Costs about the number of (du, dv)
// within the distance, fewest when Axis has the smallest spacing; adds that to `work`.
template <int Axis>
struct ColumnSearch {
  static constexpr int U = Axis == 0 ? 1 : 0;  // the two searched axes, U < V
  static constexpr int V = Axis == 2 ? 1 : 2;
  const int32_t* c;    // column_steps along Axis
  const double* sq;    // column_squares along Axis
  Shape3 n;
  Spacing3 sp;

  // (g, tu2, tv2) summed in z, y, x order.
  static double sum(double g, double tu2, double tv2) {
    if constexpr (Axis == 0) return (g + tu2) + tv2;
    if constexpr (Axis == 1) return (tu2 + g) + tv2;
    return (tu2 + tv2) + g;
  }

  double squared(int64_t z, int64_t y, int64_t x, int64_t& work) const {
    const int64_t pos[3] = {z, y, x};
    const int64_t stride[3] = {n.y * n.x, n.x, 1};
    const int64_t base = z * stride[0] + y * stride[1] + x;
    const double su = sp[U], sv = sp[V];
    const int64_t nu = n[U], nv = n[V], iu = pos[U], iv = pos[V];
    const int64_t u_stride = stride[U], v_stride = stride[V];
    double best = sq[c[base]];
    const int64_t ru = std::max(iu, nu - 1 - iu), rv = std::max(iv, nv - 1 - iv);
    int64_t steps = 0;
    for (int64_t du = 0; du <= ru; ++du) {
      const double tu = su * static_cast<double>(du);
      const double tu2 = tu * tu;
      if (tu2 >= best) break;
      for (int side = 0; side < (du == 0 ? 1 : 2); ++side) {
        const int64_t ju = side == 0 ? iu + du : iu - du;
        if (ju < 0 || ju >= nu) continue;
        const int32_t* line = c + base + (ju - iu) * u_stride;
        for (int64_t dv = 0; dv <= rv; ++dv) {
          const double tv = sv * static_cast<double>(dv);
          const double tv2 = tv * tv;
          if (tu2 + tv2 >= best) break;
          ++steps;
          if (iv + dv < nv) best = std::min(best, sum(sq[line[dv * v_stride]], tu2, tv2));
          if (dv > 0 && iv - dv >= 0) best = std::min(best, sum(sq[line[-dv * v_stride]], tu2, tv2));
        }
      }
    }
    work += steps;
    return best;
  }
};

// The axis with the smallest spacing (the first of equals): the cheapest column axis.
inline int finest_axis(const Spacing3& sp) {
  int best = 0;
  for (int k = 1; k < 3; ++k) {
    if (sp[k] < sp[best]) best = k;
  }
  return best;
}

}  // namespace fastseg::edt
