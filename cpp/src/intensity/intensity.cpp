#include "intensity.h"

#include <cstdint>

#include "fastseg/parallel.h"

namespace fastseg {

template <class T>
void window_cpu(const T* in, float* out, int64_t n, const WindowParams& p) {
  constexpr int64_t block = 1 << 16;
  const int64_t blocks = (n + block - 1) / block;
  parallel_for(blocks, [&](int64_t b) {
    const int64_t end = (b + 1) * block < n ? (b + 1) * block : n;
    for (int64_t i = b * block; i < end; ++i) out[i] = window_value(in[i], p);
  }, 2);
}

template void window_cpu<uint8_t>(const uint8_t*, float*, int64_t, const WindowParams&);
template void window_cpu<int16_t>(const int16_t*, float*, int64_t, const WindowParams&);
template void window_cpu<uint16_t>(const uint16_t*, float*, int64_t, const WindowParams&);
template void window_cpu<int32_t>(const int32_t*, float*, int64_t, const WindowParams&);
template void window_cpu<float>(const float*, float*, int64_t, const WindowParams&);
template void window_cpu<double>(const double*, float*, int64_t, const WindowParams&);

}  // namespace fastseg
