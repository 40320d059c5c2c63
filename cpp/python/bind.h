// One function per op family registers its functions on the one module, fastseg._core.
#pragma once
#include <pybind11/pybind11.h>

namespace fastseg {

void bind_intensity(pybind11::module_& m);
void bind_metrics(pybind11::module_& m);
void bind_augment(pybind11::module_& m);
void bind_loss(pybind11::module_& m);
// Registers the submodule `cuda` (CUDA kernels), or sets `cuda = None` in a build without them.
void bind_cuda(pybind11::module_& m);

}  // namespace fastseg
