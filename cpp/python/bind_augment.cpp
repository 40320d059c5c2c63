// Python bindings of the augment op family (CPU). fastseg._native.augment_* is the caller; it
// prepares C-contiguous arrays, so these checks report what is wrong rather than convert.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "augment/augment.h"
#include "bind.h"
#include "checks.h"
#include "fastseg/augment_intensity.h"
#include "fastseg/augment_map.h"

namespace py = pybind11;

namespace fastseg {
namespace {

using namespace py_checks;
using augment::Batch;

std::string dims_str(const std::vector<py::ssize_t>& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
  return s + (d.size() == 1 ? ",)" : ")");
}

template <class T>
void require_array(const py::array& a, const char* name, const std::vector<py::ssize_t>& shape) {
  require_dtype<T>(a, name);
  require_c_contiguous(a, name);
  bool same = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; same && i < shape.size(); ++i) same = a.shape(static_cast<py::ssize_t>(i)) == shape[i];
  if (!same) {
    throw py::value_error(std::string(name) + ": expected shape " + dims_str(shape) + ", got " + shape_str(a));
  }
}

void require_writeable(const py::array& a, const char* name) {
  if (!a.writeable()) throw py::value_error(std::string(name) + ": expected a writeable array, got a read-only one");
}

Batch batch_of(py::array& image) {
  require_ndim(image, "image", 5);
  require_dtype<float>(image, "image");
  require_c_contiguous(image, "image");
  require_writeable(image, "image");
  Batch b;
  b.data = static_cast<float*>(image.mutable_data());
  b.n = image.shape(0);
  b.c = image.shape(1);
  b.shape = {image.shape(2), image.shape(3), image.shape(4)};
  return b;
}

const uint8_t* active_of(const py::array& active, const Batch& b) {
  require_array<uint8_t>(active, "active", {b.n, b.c});
  return static_cast<const uint8_t*>(active.data());
}

template <class T>
const T* param(const py::array& a, const char* name, std::vector<py::ssize_t> shape) {
  require_array<T>(a, name, shape);
  return static_cast<const T*>(a.data());
}

void bind_spatial(py::module_& m) {
  m.def(
      "augment_spatial",
      [](const py::array& image, const py::object& label, py::array out_image, const py::object& out_label,
         const py::array& maps, const py::object& coef, const py::array& has_elastic, int image_order,
         int label_mode, int border, double cval, int64_t label_cval) {
        require_ndim(image, "image", 5);
        require_dtype<float>(image, "image");
        require_c_contiguous(image, "image");
        require_ndim(out_image, "out_image", 5);
        require_dtype<float>(out_image, "out_image");
        require_c_contiguous(out_image, "out_image");
        require_writeable(out_image, "out_image");
        const py::ssize_t n = image.shape(0), c = image.shape(1);
        if (out_image.shape(0) != n || out_image.shape(1) != c) {
          throw py::value_error("out_image: expected (N, C) = (" + std::to_string(n) + ", " +
                                std::to_string(c) + ") as image, got shape " + shape_str(out_image));
        }
        if (image_order != 1 && image_order != 3) {
          throw py::value_error("image_order: expected 1 (linear) or 3 (cubic), got " + std::to_string(image_order));
        }
        if (label_mode != 0 && label_mode != 1) {
          throw py::value_error("label_mode: expected 0 (nearest) or 1 (linear), got " + std::to_string(label_mode));
        }
        if (border != 0 && border != 1) {
          throw py::value_error("border: expected 0 (constant) or 1 (edge), got " + std::to_string(border));
        }
        augment::SpatialArgs a;
        a.n = n;
        a.c = c;
        a.src = {image.shape(2), image.shape(3), image.shape(4)};
        a.out = {out_image.shape(2), out_image.shape(3), out_image.shape(4)};
        if (a.src.size() == 0 && a.out.size() > 0) {
          throw py::value_error("image: expected a non-empty source volume, got shape " + shape_str(image));
        }
        require_array<float>(maps, "maps", {n, 12});
        a.maps = reinterpret_cast<const augment::VoxelMap*>(maps.data());
        if (!coef.is_none()) {
          const py::array co = coef.cast<py::array>();
          require_ndim(co, "coef", 5);
          if (co.shape(0) < 1 || co.shape(1) < 1 || co.shape(2) < 1 || co.shape(3) < 1) {
            throw py::value_error("coef: expected at least one control point per axis, got shape " + shape_str(co));
          }
          require_array<float>(co, "coef", {n, co.shape(1), co.shape(2), co.shape(3), 3});
          a.coef = static_cast<const float*>(co.data());
          a.gz = static_cast<int>(co.shape(1));
          a.gy = static_cast<int>(co.shape(2));
          a.gx = static_cast<int>(co.shape(3));
          a.has_elastic = param<uint8_t>(has_elastic, "has_elastic", {n});
        }
        a.image_order = image_order;
        a.label_mode = label_mode;
        a.border = border;
        a.cval = static_cast<float>(cval);
        a.label_cval = label_cval;
        const float* src = static_cast<const float*>(image.data());
        float* dst = static_cast<float*>(out_image.mutable_data());
        if (label.is_none()) {
          py::gil_scoped_release release;
          augment::spatial_cpu<uint8_t>(a, src, dst, nullptr, nullptr);
          return;
        }
        const py::array lab = label.cast<py::array>();
        if (out_label.is_none()) throw py::value_error("out_label: expected an array when label is given, got None");
        py::array out_lab = out_label.cast<py::array>();
        require_writeable(out_lab, "out_label");
        if (!out_lab.dtype().is(lab.dtype())) {
          throw py::type_error("out_label: expected dtype " + dtype_str(lab) + " (as label), got " + dtype_str(out_lab));
        }
        dispatch_numeric(lab, "label", [&](auto tag) {
          using L = typename decltype(tag)::type;
          if constexpr (std::is_same_v<L, uint8_t> || std::is_same_v<L, int8_t> || std::is_same_v<L, int16_t> ||
                        std::is_same_v<L, int32_t> || std::is_same_v<L, int64_t>) {
            require_array<L>(lab, "label", {n, a.src.z, a.src.y, a.src.x});
            require_array<L>(out_lab, "out_label", {n, a.out.z, a.out.y, a.out.x});
            const L* ls = static_cast<const L*>(lab.data());
            L* ld = static_cast<L*>(out_lab.mutable_data());
            py::gil_scoped_release release;
            augment::spatial_cpu<L>(a, src, dst, ls, ld);
          } else {
            throw py::type_error("label: expected dtype uint8, int8, int16, int32 or int64, got " + dtype_str(lab));
          }
        });
      },
      py::arg("image"), py::arg("label"), py::arg("out_image"), py::arg("out_label"), py::arg("maps"),
      py::arg("coef"), py::arg("has_elastic"), py::arg("image_order"), py::arg("label_mode"), py::arg("border"),
      py::arg("cval"), py::arg("label_cval"),
      "Fused spatial augmentation: image (N, C, z, y, x) float32 and label (N, z, y, x) resampled "
      "through src = A p + b + elastic(p) into out_image / out_label (output shape).");
}

void bind_intensity_ops(py::module_& m) {
  m.def(
      "augment_noise",
      [](py::array image, const py::array& active, const py::array& sigma, const py::array& keys) {
        const Batch b = batch_of(image);
        const uint8_t* act = active_of(active, b);
        const float* s = param<float>(sigma, "sigma", {b.n, b.c});
        const uint64_t* k = param<uint64_t>(keys, "keys", {b.n});
        if (b.volume() >= (int64_t{1} << 32)) {
          throw py::value_error("image: expected fewer than 2^32 voxels per channel for the noise counter");
        }
        py::gil_scoped_release release;
        augment::noise_cpu(b, act, s, k);
      },
      py::arg("image"), py::arg("active"), py::arg("sigma"), py::arg("keys"),
      "In place: image += sigma[n, c] * N(0, 1), counter-based per (keys[n], channel, voxel).");
  m.def(
      "augment_blur",
      [](py::array image, const py::array& active, const py::array& sigma) {
        const Batch b = batch_of(image);
        const uint8_t* act = active_of(active, b);
        const float* s = param<float>(sigma, "sigma", {b.n, b.c, 3});
        for (py::ssize_t i = 0; i < b.n * b.c * 3; ++i) {
          if (!(s[i] >= 0.0f && s[i] <= 64.0f)) {
            throw py::value_error("sigma: expected values in [0, 64] voxels, got " + std::to_string(s[i]));
          }
        }
        py::gil_scoped_release release;
        augment::blur_cpu(b, act, s);
      },
      py::arg("image"), py::arg("active"), py::arg("sigma"),
      "In place: separable Gaussian blur, sigma[n, c, (z, y, x)] in voxels, reflect border, truncate 4.");
  m.def(
      "augment_brightness",
      [](py::array image, const py::array& active, const py::array& mul, const py::array& add) {
        const Batch b = batch_of(image);
        const uint8_t* act = active_of(active, b);
        const float* mu = param<float>(mul, "mul", {b.n, b.c});
        const float* ad = param<float>(add, "add", {b.n, b.c});
        py::gil_scoped_release release;
        augment::brightness_cpu(b, act, mu, ad);
      },
      py::arg("image"), py::arg("active"), py::arg("mul"), py::arg("add"),
      "In place: image = image * mul[n, c] + add[n, c].");
  m.def(
      "augment_contrast",
      [](py::array image, const py::array& active, const py::array& factor, bool preserve_range) {
        const Batch b = batch_of(image);
        const uint8_t* act = active_of(active, b);
        const float* f = param<float>(factor, "factor", {b.n, b.c});
        py::gil_scoped_release release;
        augment::contrast_cpu(b, act, f, preserve_range);
      },
      py::arg("image"), py::arg("active"), py::arg("factor"), py::arg("preserve_range"),
      "In place: (image - mean) * factor + mean per (n, c), optionally clipped to the input range.");
  m.def(
      "augment_lowres",
      [](py::array image, const py::array& active, const py::array& zoom) {
        const Batch b = batch_of(image);
        const uint8_t* act = active_of(active, b);
        const float* z = param<float>(zoom, "zoom", {b.n, b.c, 3});
        for (py::ssize_t i = 0; i < b.n * b.c * 3; ++i) {
          if (!(z[i] > 0.0f && z[i] <= 1.0f)) {
            throw py::value_error("zoom: expected values in (0, 1], got " + std::to_string(z[i]));
          }
        }
        py::gil_scoped_release release;
        augment::lowres_cpu(b, act, z);
      },
      py::arg("image"), py::arg("active"), py::arg("zoom"),
      "In place: nearest downsampling by zoom[n, c, (z, y, x)], then trilinear upsampling back.");
  m.def(
      "augment_gamma",
      [](py::array image, const py::array& active, const py::array& gamma, const py::array& invert,
         bool retain_stats) {
        const Batch b = batch_of(image);
        const uint8_t* act = active_of(active, b);
        const float* g = param<float>(gamma, "gamma", {b.n, b.c});
        const uint8_t* inv = param<uint8_t>(invert, "invert", {b.n, b.c});
        for (py::ssize_t i = 0; i < b.n * b.c; ++i) {
          if (!(g[i] > 0.0f)) throw py::value_error("gamma: expected values > 0, got " + std::to_string(g[i]));
        }
        py::gil_scoped_release release;
        augment::gamma_cpu(b, act, g, inv, retain_stats);
      },
      py::arg("image"), py::arg("active"), py::arg("gamma"), py::arg("invert"), py::arg("retain_stats"),
      "In place: nnU-Net's gamma augmentation per (n, c).");
  m.def(
      "augment_bias_field",
      [](py::array image, const py::array& active, const py::array& coef, int order) {
        const Batch b = batch_of(image);
        const uint8_t* act = active_of(active, b);
        if (order < 0 || order > 7) throw py::value_error("order: expected 0..7, got " + std::to_string(order));
        const float* c = param<float>(coef, "coef", {b.n, b.c, augment::bias_terms(order)});
        py::gil_scoped_release release;
        augment::bias_field_cpu(b, act, c, order);
      },
      py::arg("image"), py::arg("active"), py::arg("coef"), py::arg("order"),
      "In place: image *= exp(polynomial in [-1, 1] coordinates), coef[n, c, term].");
}

// The per-voxel math the CUDA kernels run (map_voxel with the 64-tap B-spline, the direct bias
// polynomial), evaluated on the CPU so that tests check those header functions without a GPU.
void bind_device_math(py::module_& m) {
  m.def(
      "augment_coordinates",
      [](const std::vector<int64_t>& out_shape, const py::array& maps, const py::object& coef) {
        if (out_shape.size() != 3) throw py::value_error("out_shape: expected (z, y, x)");
        require_ndim(maps, "maps", 2);
        const py::ssize_t n = maps.shape(0);
        require_array<float>(maps, "maps", {n, 12});
        const float* cf = nullptr;
        int g[3] = {0, 0, 0};
        if (!coef.is_none()) {
          const py::array co = coef.cast<py::array>();
          require_ndim(co, "coef", 5);
          require_array<float>(co, "coef", {n, co.shape(1), co.shape(2), co.shape(3), 3});
          cf = static_cast<const float*>(co.data());
          for (int k = 0; k < 3; ++k) g[k] = static_cast<int>(co.shape(k + 1));
        }
        const int64_t oz = out_shape[0], oy = out_shape[1], ox = out_shape[2], ov = oz * oy * ox;
        py::array_t<float> out({n, py::ssize_t{3}, oz, oy, ox});
        float* o = out.mutable_data();
        const auto* mp = static_cast<const augment::VoxelMap*>(maps.data());
        for (py::ssize_t k = 0; k < n; ++k) {
          const float* ck = cf ? cf + k * g[0] * g[1] * g[2] * 3 : nullptr;
          for (int64_t v = 0; v < ov; ++v) {
            float s[3];
            augment::map_voxel(mp[k], ck, g[0], g[1], g[2], oz, oy, ox, v / (oy * ox), (v / ox) % oy, v % ox, s);
            for (int a = 0; a < 3; ++a) o[(k * 3 + a) * ov + v] = s[a];
          }
        }
        return out;
      },
      py::arg("out_shape"), py::arg("maps"), py::arg("coef"),
      "(N, 3, z, y, x) source positions of every output voxel, as the CUDA spatial kernel computes them.");
  m.def(
      "augment_bias_log",
      [](const std::vector<int64_t>& shape, const py::array& coef, int order) {
        if (shape.size() != 3) throw py::value_error("shape: expected (z, y, x)");
        if (order < 0 || order > 7) throw py::value_error("order: expected 0..7, got " + std::to_string(order));
        const float* c = param<float>(coef, "coef", {augment::bias_terms(order)});
        py::array_t<float> out({shape[0], shape[1], shape[2]});
        float* o = out.mutable_data();
        for (int64_t z = 0; z < shape[0]; ++z) {
          for (int64_t y = 0; y < shape[1]; ++y) {
            for (int64_t x = 0; x < shape[2]; ++x) {
              *o++ = augment::bias_log_at(c, order, augment::unit_coord(z, shape[0]), augment::unit_coord(y, shape[1]),
                                          augment::unit_coord(x, shape[2]));
            }
          }
        }
        return out;
      },
      py::arg("shape"), py::arg("coef"), py::arg("order"),
      "Log of the bias field at every voxel, the direct sum the CUDA kernel evaluates.");
}

}  // namespace

void bind_augment(py::module_& m) {
  bind_spatial(m);
  bind_intensity_ops(m);
  bind_device_math(m);
}

}  // namespace fastseg
