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

// dtype equality by type number and byte order: NumPy may hand over equal dtypes that are
// distinct objects (nibabel does), so identity (`dtype::is`) is not the test. Non-native byte
// order is refused (fastseg._native converts to native order before calling _core).
inline bool native_byte_order(const py::dtype& dt) {
  const char order = dt.byteorder();
  return order == '=' || order == '|' || (order == '<') == (PY_LITTLE_ENDIAN != 0);
}

template <class T>
bool is_dtype(const py::dtype& dt) {
  return native_byte_order(dt) && dt.normalized_num() == py::dtype::of<T>().normalized_num();
}

inline bool same_dtype(const py::dtype& a, const py::dtype& b) {
  return a.normalized_num() == b.normalized_num() && native_byte_order(a) == native_byte_order(b);
}

template <class T>
void require_dtype(const py::array& a, const char* name) {
  if (!is_dtype<T>(a.dtype())) {
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
  if (is_dtype<uint8_t>(dt)) return fn(Tag<uint8_t>{});
  if (is_dtype<int8_t>(dt)) return fn(Tag<int8_t>{});
  if (is_dtype<int16_t>(dt)) return fn(Tag<int16_t>{});
  if (is_dtype<uint16_t>(dt)) return fn(Tag<uint16_t>{});
  if (is_dtype<int32_t>(dt)) return fn(Tag<int32_t>{});
  if (is_dtype<uint32_t>(dt)) return fn(Tag<uint32_t>{});
  if (is_dtype<int64_t>(dt)) return fn(Tag<int64_t>{});
  if (is_dtype<float>(dt)) return fn(Tag<float>{});
  if (is_dtype<double>(dt)) return fn(Tag<double>{});
  throw py::type_error(std::string(name) +
                       ": expected dtype uint8, int8, int16, uint16, int32, uint32, int64, "
                       "float32 or float64, got " + dtype_str(a));
}

}  // namespace fastseg::py_checks
