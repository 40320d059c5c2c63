// CUDA pass of the exact distance transform for the device metrics (fastseg.metrics._device):
// one thread per line of a (B, z, y, x) float64 stack, each running the CPU's envelope_line
// (fastseg/edt_line.h) on its line with scratch in global memory.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "fastseg/edt_line.h"
#include "metrics/edt_cuda.h"

namespace fastseg {

namespace {

__global__ void envelope_pass_kernel(double* d, const double* spacing, int64_t nz, int64_t ny,
                                     int64_t nx, int axis, int64_t line_begin, int64_t line_count,
                                     double* scratch, int64_t* positions) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= line_count) return;
  const int64_t line = line_begin + t;
  const int64_t volume = nz * ny * nx;
  int64_t n, stride, item, base;
  if (axis == 0) {  // lines along z: one per (y, x)
    n = nz;
    stride = ny * nx;
    item = line / (ny * nx);
    base = item * volume + line % (ny * nx);
  } else if (axis == 1) {  // along y: one per (z, x)
    n = ny;
    stride = nx;
    item = line / (nz * nx);
    const int64_t r = line % (nz * nx);
    base = item * volume + (r / nx) * ny * nx + r % nx;
  } else {  // along x: one per (z, y)
    n = nx;
    stride = 1;
    item = line / (nz * ny);
    base = item * volume + (line % (nz * ny)) * nx;
  }
  double* fv = scratch + t * (4 * n + 2);
  double* gv = fv + n;
  double* zn = gv + n;
  double* zd = zn + n + 1;
  edt::envelope_line(d + base, n, stride, spacing[item], fv, gv, zn, zd, positions + t * n,
                     nullptr, 0);
}

}  // namespace

void envelope_pass_cuda(double* d, const double* spacing, int64_t items, const Shape3& shape,
                        int axis, int64_t line_begin, int64_t line_count, double* scratch,
                        int64_t* positions, uintptr_t stream) {
  if (line_count <= 0 || items <= 0) return;
  constexpr int threads = 128;
  const int64_t blocks = (line_count + threads - 1) / threads;
  envelope_pass_kernel<<<static_cast<unsigned>(blocks), threads, 0,
                         reinterpret_cast<cudaStream_t>(stream)>>>(
      d, spacing, shape.z, shape.y, shape.x, axis, line_begin, line_count, scratch, positions);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("envelope_pass_cuda: ") + cudaGetErrorString(err));
  }
}

}  // namespace fastseg
