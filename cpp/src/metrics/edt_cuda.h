// CUDA entry point of the device metrics' distance transform (metrics_cuda.cu).
#pragma once
#include <cstdint>

#include "fastseg/shape.h"

namespace fastseg {

// One lower-envelope pass of the squared EDT, in place, along `axis` (0 z, 1 y, 2 x) of an
// (items, z, y, x) float64 device stack `d`, for lines [line_begin, line_begin + line_count) of
// its items * (lines per item) lines in C order; spacing[item] is the item's spacing (mm) along
// `axis`. Scratch: (4 n + 2) doubles and n int64 per line of the call (n the line length).
// Launched on `stream` (a cudaStream_t as integer).
void envelope_pass_cuda(double* d, const double* spacing, int64_t items, const Shape3& shape,
                        int axis, int64_t line_begin, int64_t line_count, double* scratch,
                        int64_t* positions, uintptr_t stream);

}  // namespace fastseg
