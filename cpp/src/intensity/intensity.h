// Entry points of the intensity op family (CPU in intensity.cpp, CUDA in intensity_cuda.cu).
#pragma once
#include <cstdint>

#include "fastseg/intensity.h"

namespace fastseg {

// in: n values of type T; out: n float32 values. OpenMP over voxels.
template <class T>
void window_cpu(const T* in, float* out, int64_t n, const WindowParams& p);

// Device pointers, float32 in and out, launched on the given cudaStream_t (as an integer).
void window_cuda(const float* in, float* out, int64_t n, const WindowParams& p, uintptr_t stream);

}  // namespace fastseg
