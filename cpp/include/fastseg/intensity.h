// Intensity mapping shared by CPU and CUDA kernels: clip to a window, then shift and scale.
//   out = (clamp(in, lo, hi) - offset) * scale
// covers Hounsfield windowing to [0, 1] (offset = lo, scale = 1 / (hi - lo)) and clipping
// followed by a z-score (offset = mean, scale = 1 / std).
#pragma once
#include <cstdint>

#include "fastseg/portability.h"

namespace fastseg {

struct WindowParams {
  double lo, hi, offset, scale;
};

template <class T>
FASTSEG_HD inline float window_value(T v, const WindowParams& p) {
  double d = static_cast<double>(v);
  d = d < p.lo ? p.lo : (d > p.hi ? p.hi : d);
  return static_cast<float>((d - p.offset) * p.scale);
}

}  // namespace fastseg
