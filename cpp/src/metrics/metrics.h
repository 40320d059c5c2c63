// Entry points of the metrics op family (CPU, OpenMP, in metrics.cpp). The algorithms live in the
// framework-free headers fastseg/{edt,surface,surfels,metrics}.h.
#pragma once
#include <cstdint>
#include <vector>

#include "fastseg/metrics.h"
#include "fastseg/shape.h"

namespace fastseg {

// Metrics of every requested label (every non-zero label of either map when all_labels) of one
// pair of C-ordered (z, y, x) label maps of the same shape. T: an integer label type.
template <class T>
std::vector<metrics::LabelResult> evaluate_pair_cpu(const T* pred, const T* ref, const Shape3& shape,
                                                    const std::vector<int64_t>& labels,
                                                    bool all_labels, const metrics::Options& opt);

// Squared EDT (mm^2) to the non-zero voxels of mask over the whole array; +inf without any.
void squared_edt_cpu(const uint8_t* mask, const Shape3& shape, const Spacing3& spacing, double* out);

// 1 on the voxel surface of (mask != 0) (6-neighbourhood, outside the array counts as outside).
void voxel_surface_cpu(const uint8_t* mask, const Shape3& shape, uint8_t* out);

// Neighbour codes of (mask != 0) on the corner grid, shape (z + 1, y + 1, x + 1).
void corner_codes_cpu(const uint8_t* mask, const Shape3& shape, uint8_t* out);

}  // namespace fastseg
