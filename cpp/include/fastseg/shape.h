// Shapes and strides of C-ordered (z, y, x) volumes, the axis order of every fastseg array.
#pragma once
#include <array>
#include <cstdint>

namespace fastseg {

struct Shape3 {
  int64_t z = 0, y = 0, x = 0;

  int64_t size() const { return z * y * x; }
  int64_t index(int64_t iz, int64_t iy, int64_t ix) const { return (iz * y + iy) * x + ix; }
  int64_t operator[](int axis) const { return axis == 0 ? z : (axis == 1 ? y : x); }
};

// Physical voxel size in millimetres, same (z, y, x) order as Shape3.
struct Spacing3 {
  double z = 1.0, y = 1.0, x = 1.0;
  double operator[](int axis) const { return axis == 0 ? z : (axis == 1 ? y : x); }
};

// Half-open box [lo, hi) per axis, (z, y, x).
struct Box3 {
  std::array<int64_t, 3> lo{0, 0, 0};
  std::array<int64_t, 3> hi{0, 0, 0};

  bool empty() const { return hi[0] <= lo[0] || hi[1] <= lo[1] || hi[2] <= lo[2]; }
  Shape3 shape() const { return {hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]}; }
};

}  // namespace fastseg
