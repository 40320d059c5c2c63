// Boundary checks for arrays entering _core: rank, shape, dtype and contiguity are validated
// here, with "expected X, got Y" messages, so that kernels can trust their input.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>

#include "fastseg/shape.h"

namespace fastseg::py_checks {

namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

inline void require_ndim(const py::array& a, const char* name, py::ssize_t ndim) {
  if (a.ndim() != ndim) {
    std::ostringstream s;
    s << name << ": expected a " << ndim << "-d array, got " << a.ndim() << "-d with shape "
      << shape_str(a);
    throw py::value_error(s.str());
  }
}

inline void require_c_contiguous(const py::array& a, const char* name) {
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + ": expected a C-contiguous array, got strides that are not");
  }
}

template <class T>
void require_dtype(const py::array& a, const char* name) {
  if (!py::isinstance<py::array_t<T>>(a) || !a.dtype().is(py::dtype::of<T>())) {
    throw py::type_error(std::string(name) + ": expected dtype " +
                         py::str(py::dtype::of<T>()).cast<std::string>() + ", got " + dtype_str(a));
  }
}

inline void require_same_shape(const py::array& a, const char* an, const py::array& b, const char* bn) {
  bool same = a.ndim() == b.ndim();
  for (py::ssize_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == b.shape(i);
  if (!same) {
    throw py::value_error(std::string(bn) + ": expected shape " + shape_str(a) + " (as " + an +
                          "), got " + shape_str(b));
  }
}

inline Shape3 shape3(const py::array& a) { return {a.shape(0), a.shape(1), a.shape(2)}; }

template <class T>
struct Tag {
  using type = T;
};

// Calls fn(Tag<T>{}) with T the C++ type of the array's dtype, for the dtypes that volumes and
// label maps come in. Anything else is a TypeError naming the argument.
template <class Fn>
auto dispatch_numeric(const py::array& a, const char* name, Fn&& fn) {
  const py::dtype dt = a.dtype();
  if (dt.is(py::dtype::of<uint8_t>())) return fn(Tag<uint8_t>{});
  if (dt.is(py::dtype::of<int8_t>())) return fn(Tag<int8_t>{});
  if (dt.is(py::dtype::of<int16_t>())) return fn(Tag<int16_t>{});
  if (dt.is(py::dtype::of<uint16_t>())) return fn(Tag<uint16_t>{});
  if (dt.is(py::dtype::of<int32_t>())) return fn(Tag<int32_t>{});
  if (dt.is(py::dtype::of<uint32_t>())) return fn(Tag<uint32_t>{});
  if (dt.is(py::dtype::of<int64_t>())) return fn(Tag<int64_t>{});
  if (dt.is(py::dtype::of<float>())) return fn(Tag<float>{});
  if (dt.is(py::dtype::of<double>())) return fn(Tag<double>{});
  throw py::type_error(std::string(name) +
                       ": expected dtype uint8, int8, int16, uint16, int32, uint32, int64, "
                       "float32 or float64, got " + dtype_str(a));
}

}  // namespace fastseg::py_checks
