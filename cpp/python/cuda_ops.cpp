// Registers the CUDA kernels as fastseg._core.cuda. Compiled only in a build with CUDA;
// cuda_ops_absent.cpp takes its place otherwise. Pointers and streams arrive as integers
// (tensor.data_ptr(), stream.cuda_stream) from fastseg._native: the extension never links torch.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bind.h"
#include "intensity/intensity.h"

namespace py = pybind11;

namespace fastseg {

namespace {
int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}
}  // namespace

void bind_cuda(py::module_& m) {
  py::module_ c = m.def_submodule("cuda", "CUDA kernels (device pointers as integers)");
  c.attr("architectures") = FASTSEG_CUDA_ARCHS;
  c.attr("toolkit_version") = FASTSEG_CUDA_VERSION;
  c.def("device_count", &device_count, "Number of CUDA devices visible to the runtime (0 if none).");
  c.def(
      "window",
      [](uintptr_t in, uintptr_t out, int64_t n, double lo, double hi, double offset, double scale,
         uintptr_t stream) {
        if (n < 0) throw py::value_error("n: expected >= 0, got " + std::to_string(n));
        if (n > 0 && (in == 0 || out == 0)) throw py::value_error("window: null device pointer");
        py::gil_scoped_release release;
        window_cuda(reinterpret_cast<const float*>(in), reinterpret_cast<float*>(out), n,
                    WindowParams{lo, hi, offset, scale}, stream);
      },
      py::arg("image_ptr"), py::arg("out_ptr"), py::arg("n"), py::arg("lo"), py::arg("hi"),
      py::arg("offset"), py::arg("scale"), py::arg("stream"),
      "float32 device arrays of n values; launched on `stream` (cudaStream_t as integer).");
}

}  // namespace fastseg
