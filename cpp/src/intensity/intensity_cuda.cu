#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "intensity.h"

namespace fastseg {
namespace {

__global__ void window_kernel(const float* __restrict__ in, float* __restrict__ out, int64_t n,
                              WindowParams p) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = window_value(in[i], p);
  }
}

}  // namespace

void window_cuda(const float* in, float* out, int64_t n, const WindowParams& p, uintptr_t stream) {
  if (n == 0) return;
  const int threads = 256;
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  window_kernel<<<static_cast<unsigned>(blocks), threads, 0,
                  reinterpret_cast<cudaStream_t>(stream)>>>(in, out, n, p);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("fastseg window_cuda launch failed: ") +
                             cudaGetErrorString(err));
  }
}

}  // namespace fastseg
