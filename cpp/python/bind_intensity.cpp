#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "bind.h"
#include "checks.h"
#include "intensity/intensity.h"

namespace py = pybind11;

namespace fastseg {

void bind_intensity(py::module_& m) {
  m.def(
      "window",
      [](const py::array& in, py::array out, double lo, double hi, double offset,
         double scale) {
        using namespace py_checks;
        require_c_contiguous(in, "image");
        require_dtype<float>(out, "out");
        require_c_contiguous(out, "out");
        require_same_shape(in, "image", out, "out");
        if (!(lo <= hi)) throw py::value_error("window: expected lo <= hi, got lo=" +
                                               std::to_string(lo) + ", hi=" + std::to_string(hi));
        const WindowParams p{lo, hi, offset, scale};
        float* dst = static_cast<float*>(out.mutable_data());
        const int64_t n = in.size();
        dispatch_numeric(in, "image", [&](auto tag) {
          using T = typename decltype(tag)::type;
          if constexpr (std::is_same_v<T, uint8_t> || std::is_same_v<T, int16_t> ||
                        std::is_same_v<T, uint16_t> || std::is_same_v<T, int32_t> ||
                        std::is_same_v<T, float> || std::is_same_v<T, double>) {
            const T* src = static_cast<const T*>(in.data());
            py::gil_scoped_release release;
            window_cpu<T>(src, dst, n, p);
          } else {
            throw py::type_error("image: expected dtype uint8, int16, uint16, int32, float32 or "
                                 "float64, got " + dtype_str(in));
          }
        });
      },
      py::arg("image"), py::arg("out"), py::arg("lo"), py::arg("hi"), py::arg("offset"),
      py::arg("scale"),
      "out = (clip(image, lo, hi) - offset) * scale, elementwise; out is float32 of image's shape.");
}

}  // namespace fastseg
