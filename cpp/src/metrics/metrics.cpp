#include "metrics.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fastseg/edt.h"
#include "fastseg/surface.h"

namespace fastseg {

template <class T>
std::vector<metrics::LabelResult> evaluate_pair_cpu(const T* pred, const T* ref, const Shape3& shape,
                                                    const std::vector<int64_t>& labels,
                                                    bool all_labels, const metrics::Options& opt) {
  return metrics::evaluate_pair(pred, ref, shape, labels, all_labels, opt);
}

#define FASTSEG_INSTANTIATE(T)                                                                  \
  template std::vector<metrics::LabelResult> evaluate_pair_cpu<T>(                              \
      const T*, const T*, const Shape3&, const std::vector<int64_t>&, bool, const metrics::Options&);
FASTSEG_INSTANTIATE(uint8_t)
FASTSEG_INSTANTIATE(int8_t)
FASTSEG_INSTANTIATE(int16_t)
FASTSEG_INSTANTIATE(uint16_t)
FASTSEG_INSTANTIATE(int32_t)
FASTSEG_INSTANTIATE(uint32_t)
FASTSEG_INSTANTIATE(int64_t)
#undef FASTSEG_INSTANTIATE

namespace {
std::vector<uint8_t> as_bit(const uint8_t* mask, int64_t n, uint8_t bit) {
  std::vector<uint8_t> b(n);
  for (int64_t i = 0; i < n; ++i) b[i] = mask[i] != 0 ? bit : 0;
  return b;
}
}  // namespace

void squared_edt_cpu(const uint8_t* mask, const Shape3& shape, const Spacing3& spacing, double* out) {
  const std::vector<uint8_t> b = as_bit(mask, shape.size(), 1);
  edt::squared_edt(b.data(), 1, shape, spacing, out);
}

void voxel_surface_cpu(const uint8_t* mask, const Shape3& shape, uint8_t* out) {
  std::vector<uint8_t> b = as_bit(mask, shape.size(), 1);
  mark_surface(b.data(), shape, 1, 2);
  for (int64_t i = 0; i < shape.size(); ++i) out[i] = (b[i] & 2) ? 1 : 0;
}

void corner_codes_cpu(const uint8_t* mask, const Shape3& shape, uint8_t* out) {
  const std::vector<uint8_t> b = as_bit(mask, shape.size(), 1);
  const Shape3 g{shape.z + 1, shape.y + 1, shape.x + 1};
  std::fill(out, out + g.size(), 0);
  corner_codes(b.data(), shape, 1, out, Shape3{0, 0, 0});
}

}  // namespace fastseg
