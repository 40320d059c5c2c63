// fastseg._core: the one native module. Python reaches it only through fastseg._native.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bind.h"
#include "fastseg/parallel.h"

#ifndef FASTSEG_VERSION
#define FASTSEG_VERSION "unknown"
#endif
#ifndef FASTSEG_CXX_COMPILER
#define FASTSEG_CXX_COMPILER "unknown"
#endif

namespace py = pybind11;

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastseg native kernels (CPU with OpenMP; CUDA in the `cuda` submodule when built)";
  m.def("build_info", [] {
    py::dict d;
    d["version"] = FASTSEG_VERSION;
    d["compiler"] = FASTSEG_CXX_COMPILER;
    d["openmp_threads"] = fastseg::max_threads();
    d["openmp_version"] = _OPENMP;
    return d;
  }, "What this build of _core was compiled with.");
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("num_threads: expected >= 1, got " + std::to_string(n));
    omp_set_num_threads(n);
  }, py::arg("num_threads"));
  fastseg::bind_intensity(m);
  fastseg::bind_metrics(m);
  fastseg::bind_augment(m);
  fastseg::bind_loss(m);
  fastseg::bind_cuda(m);
}
