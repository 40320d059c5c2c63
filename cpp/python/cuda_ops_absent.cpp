// Stands in for cuda_ops.cpp in a build without a CUDA toolkit.
#include <pybind11/pybind11.h>

#include "bind.h"

namespace fastseg {

void bind_cuda(pybind11::module_& m) { m.attr("cuda") = pybind11::none(); }

}  // namespace fastseg
