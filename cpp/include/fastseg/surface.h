// Surfaces of binary masks held as bits of a uint8 box, (z, y, x) C order.
//
// Voxel surface (DESIGN.md): the voxels of X with at least one 6-neighbour outside X, where
// everything outside the array counts as outside X. The box passed here must contain X's
// bounding box, so that every neighbour outside the box is outside X (outside the array, or
// inside the array but outside X's bounding box) and the box alone decides.
//
// Corner surface (DeepMind surface-distance, see surfels.h): every voxel corner gets the 8-bit
// code of the 2x2x2 voxels around it. The corner grid of a box of shape (nz, ny, nx) has shape
// (nz + 1, ny + 1, nx + 1); corner (cz, cy, cx) sits between voxels (cz - 1, cy - 1, cx - 1) and
// (cz, cy, cx), and the bit of the voxel at offset (a - 1, b - 1, c - 1) is 128 >> (4a + 2b + c).
#pragma once
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "fastseg/shape.h"

namespace fastseg {

// Sets surf_bit on the voxels with in_bit that have a 6-neighbour without in_bit or outside the box.
// Returns how many voxels it marked.
inline int64_t mark_surface(uint8_t* mask, const Shape3& shape, uint8_t in_bit, uint8_t surf_bit) {
  const Shape3 n = shape;  // a local copy: uint8_t stores may alias the caller's
  const int64_t plane = n.y * n.x;
  int64_t count = 0;
  std::vector<uint8_t> marks(n.x);
  for (int64_t z = 0; z < n.z; ++z) {
    for (int64_t y = 0; y < n.y; ++y) {
      uint8_t* row = mask + z * plane + y * n.x;
      uint8_t* out = marks.data();
      if (z == 0 || z == n.z - 1 || y == 0 || y == n.y - 1 || n.x < 3) {
        for (int64_t x = 0; x < n.x; ++x) out[x] = (row[x] & in_bit) ? surf_bit : 0;
      } else {
        const uint8_t *up = row - n.x, *down = row + n.x, *front = row - plane, *back = row + plane;
        for (int64_t x = 1; x < n.x - 1; ++x) {
          const uint8_t all = row[x - 1] & row[x + 1] & up[x] & down[x] & front[x] & back[x];
          out[x] = (row[x] & in_bit & ~all) ? surf_bit : 0;
        }
        out[0] = (row[0] & in_bit) ? surf_bit : 0;
        out[n.x - 1] = (row[n.x - 1] & in_bit) ? surf_bit : 0;
      }
      for (int64_t x = 0; x < n.x; ++x) {
        row[x] |= out[x];
        count += out[x] != 0;
      }
    }
  }
  return count;
}

// True for the neighbour codes of corners on the surface (neither all outside nor all inside).
inline bool is_border_code(uint8_t code) { return code != 0 && code != 255; }

// Neighbour codes of the voxels with in_bit, written into a corner grid of shape
// (n.z + 1 + 2 pad.z, n.y + 1 + 2 pad.y, n.x + 1 + 2 pad.x) whose first `pad` corners per side are
// a zero margin; `codes` must be zero-filled on entry.
inline void corner_codes(const uint8_t* mask, const Shape3& shape, uint8_t in_bit, uint8_t* codes,
                         const Shape3& padding) {
  const Shape3 n = shape, pad = padding;  // local copies: uint8_t stores may alias the caller's
  const int64_t cy_n = n.y + 1, cx_n = n.x + 1;
  const Shape3 g{n.z + 1 + 2 * pad.z, n.y + 1 + 2 * pad.y, n.x + 1 + 2 * pad.x};
  const int64_t plane = n.y * n.x;
  // p[cy * cx_n + cx]: 4-bit code of the 2x2 voxels of one voxel plane around 2D corner (cy, cx),
  // bit 8 >> (2b + c) for the voxel (cy - 1 + b, cx - 1 + c).
  std::vector<uint8_t> prev(cy_n * cx_n, 0), cur(cy_n * cx_n, 0), q_above(cx_n, 0), q(cx_n, 0);
  std::vector<uint8_t> v(n.x + 2, 0);  // one voxel row with a zero on each side
  for (int64_t cz = 0; cz <= n.z; ++cz) {
    if (cz < n.z) {
      std::fill(q_above.begin(), q_above.end(), 0);
      for (int64_t cy = 0; cy <= n.y; ++cy) {
        if (cy < n.y) {
          const uint8_t* row = mask + cz * plane + cy * n.x;
          for (int64_t x = 0; x < n.x; ++x) v[x + 1] = (row[x] & in_bit) ? 1 : 0;
          for (int64_t cx = 0; cx <= n.x; ++cx) q[cx] = static_cast<uint8_t>((v[cx] << 1) | v[cx + 1]);
        } else {
          std::fill(q.begin(), q.end(), 0);
        }
        uint8_t* p = cur.data() + cy * cx_n;
        for (int64_t cx = 0; cx <= n.x; ++cx) p[cx] = static_cast<uint8_t>((q_above[cx] << 2) | q[cx]);
        std::swap(q_above, q);
      }
    } else {
      std::fill(cur.begin(), cur.end(), 0);
    }
    for (int64_t cy = 0; cy <= n.y; ++cy) {
      uint8_t* out = codes + g.index(cz + pad.z, cy + pad.y, pad.x);
      const uint8_t* a = prev.data() + cy * cx_n;
      const uint8_t* b = cur.data() + cy * cx_n;
      for (int64_t cx = 0; cx <= n.x; ++cx) out[cx] = static_cast<uint8_t>((a[cx] << 4) | b[cx]);
    }
    std::swap(prev, cur);
  }
}

}  // namespace fastseg
