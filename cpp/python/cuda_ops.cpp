// Registers the CUDA kernels as fastseg._core.cuda. Compiled only in a build with CUDA;
// cuda_ops_absent.cpp takes its place otherwise. Pointers and streams arrive as integers
// (tensor.data_ptr(), stream.cuda_stream) from fastseg._native: the extension never links torch.
#include <cuda_runtime.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "augment/augment.h"
#include "bind.h"
#include "intensity/intensity.h"
#include "loss/loss.h"
#include "metrics/edt_cuda.h"

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

// ---- augment (cpp/src/augment/augment_cuda.cu): device pointers and shapes as integers ----
namespace {

augment::Batch augment_batch(uintptr_t image, const std::vector<int64_t>& shape) {
  if (shape.size() != 5) throw py::value_error("shape: expected (N, C, z, y, x), got " + std::to_string(shape.size()) + " values");
  for (int64_t d : shape) {
    if (d < 0) throw py::value_error("shape: expected sizes >= 0, got " + std::to_string(d));
  }
  if (shape[0] > 65535 || shape[0] * shape[1] > 65535) {
    throw py::value_error("shape: expected N * C <= 65535 for the CUDA kernels, got " +
                          std::to_string(shape[0] * shape[1]));
  }
  if (image == 0 && shape[0] * shape[1] * shape[2] * shape[3] * shape[4] > 0) {
    throw py::value_error("augment: null device pointer for image");
  }
  augment::Batch b;
  b.data = reinterpret_cast<float*>(image);
  b.n = shape[0];
  b.c = shape[1];
  b.shape = {shape[2], shape[3], shape[4]};
  return b;
}

template <class T>
const T* dptr(uintptr_t p) {
  return reinterpret_cast<const T*>(p);
}

template <class L>
void spatial_typed(const augment::SpatialArgs& a, uintptr_t image, uintptr_t out_image, uintptr_t label,
                   uintptr_t out_label, uintptr_t stream) {
  augment::spatial_cuda<L>(a, dptr<float>(image), reinterpret_cast<float*>(out_image), dptr<L>(label),
                           reinterpret_cast<L*>(out_label), stream);
}

void bind_augment_cuda(py::module_& c) {
  c.def(
      "augment_spatial",
      [](uintptr_t image, uintptr_t label, uintptr_t out_image, uintptr_t out_label, const std::string& label_dtype,
         const std::vector<int64_t>& src_shape, const std::vector<int64_t>& out_shape, uintptr_t maps, uintptr_t coef,
         uintptr_t has_elastic, const std::vector<int>& grid, int image_order, int label_mode, int border, double cval,
         int64_t label_cval, uintptr_t stream) {
        const augment::Batch src = augment_batch(image, src_shape);
        const augment::Batch out = augment_batch(out_image, out_shape);
        if (grid.size() != 3) throw py::value_error("grid: expected 3 control-grid sizes");
        augment::SpatialArgs a;
        a.n = src.n;
        a.c = src.c;
        a.src = src.shape;
        a.out = out.shape;
        a.maps = dptr<augment::VoxelMap>(maps);
        a.coef = coef != 0 ? dptr<float>(coef) : nullptr;
        a.has_elastic = coef != 0 ? dptr<uint8_t>(has_elastic) : nullptr;
        a.gz = grid[0];
        a.gy = grid[1];
        a.gx = grid[2];
        a.image_order = image_order;
        a.label_mode = label_mode;
        a.border = border;
        a.cval = static_cast<float>(cval);
        a.label_cval = label_cval;
        if (label != 0 && label_dtype != "uint8" && label_dtype != "int8" && label_dtype != "int16" &&
            label_dtype != "int32" && label_dtype != "int64") {
          throw py::type_error("label: expected dtype uint8, int8, int16, int32 or int64, got " + label_dtype);
        }
        py::gil_scoped_release release;
        if (label == 0 || label_dtype == "uint8") {
          spatial_typed<uint8_t>(a, image, out_image, label, out_label, stream);
        } else if (label_dtype == "int8") {
          spatial_typed<int8_t>(a, image, out_image, label, out_label, stream);
        } else if (label_dtype == "int16") {
          spatial_typed<int16_t>(a, image, out_image, label, out_label, stream);
        } else if (label_dtype == "int32") {
          spatial_typed<int32_t>(a, image, out_image, label, out_label, stream);
        } else {
          spatial_typed<int64_t>(a, image, out_image, label, out_label, stream);
        }
      },
      py::arg("image_ptr"), py::arg("label_ptr"), py::arg("out_image_ptr"), py::arg("out_label_ptr"),
      py::arg("label_dtype"), py::arg("src_shape"), py::arg("out_shape"), py::arg("maps_ptr"), py::arg("coef_ptr"),
      py::arg("has_elastic_ptr"), py::arg("grid"), py::arg("image_order"), py::arg("label_mode"), py::arg("border"),
      py::arg("cval"), py::arg("label_cval"), py::arg("stream"),
      "Fused spatial augmentation of a (N, C, z, y, x) float32 batch and its (N, z, y, x) labels.");
  c.def(
      "augment_noise",
      [](uintptr_t image, const std::vector<int64_t>& shape, uintptr_t active, uintptr_t sigma, uintptr_t keys,
         uintptr_t stream) {
        const augment::Batch b = augment_batch(image, shape);
        py::gil_scoped_release release;
        augment::noise_cuda(b, dptr<uint8_t>(active), dptr<float>(sigma), dptr<uint64_t>(keys), stream);
      },
      py::arg("image_ptr"), py::arg("shape"), py::arg("active_ptr"), py::arg("sigma_ptr"), py::arg("keys_ptr"),
      py::arg("stream"));
  c.def(
      "augment_blur",
      [](uintptr_t image, const std::vector<int64_t>& shape, uintptr_t active, uintptr_t sigma, uintptr_t workspace,
         uintptr_t stream) {
        const augment::Batch b = augment_batch(image, shape);
        py::gil_scoped_release release;
        augment::blur_cuda(b, dptr<uint8_t>(active), dptr<float>(sigma), reinterpret_cast<float*>(workspace), stream);
      },
      py::arg("image_ptr"), py::arg("shape"), py::arg("active_ptr"), py::arg("sigma_ptr"), py::arg("workspace_ptr"),
      py::arg("stream"));
  c.def(
      "augment_brightness",
      [](uintptr_t image, const std::vector<int64_t>& shape, uintptr_t active, uintptr_t mul, uintptr_t add,
         uintptr_t stream) {
        const augment::Batch b = augment_batch(image, shape);
        py::gil_scoped_release release;
        augment::brightness_cuda(b, dptr<uint8_t>(active), dptr<float>(mul), dptr<float>(add), stream);
      },
      py::arg("image_ptr"), py::arg("shape"), py::arg("active_ptr"), py::arg("mul_ptr"), py::arg("add_ptr"),
      py::arg("stream"));
  c.def(
      "augment_contrast",
      [](uintptr_t image, const std::vector<int64_t>& shape, uintptr_t active, uintptr_t factor, bool preserve_range,
         uintptr_t workspace, uintptr_t stream) {
        const augment::Batch b = augment_batch(image, shape);
        py::gil_scoped_release release;
        augment::contrast_cuda(b, dptr<uint8_t>(active), dptr<float>(factor), preserve_range,
                               reinterpret_cast<double*>(workspace), stream);
      },
      py::arg("image_ptr"), py::arg("shape"), py::arg("active_ptr"), py::arg("factor_ptr"), py::arg("preserve_range"),
      py::arg("workspace_ptr"), py::arg("stream"));
  c.def(
      "augment_lowres",
      [](uintptr_t image, const std::vector<int64_t>& shape, uintptr_t active, uintptr_t zoom, uintptr_t workspace,
         uintptr_t stream) {
        const augment::Batch b = augment_batch(image, shape);
        py::gil_scoped_release release;
        augment::lowres_cuda(b, dptr<uint8_t>(active), dptr<float>(zoom), reinterpret_cast<float*>(workspace), stream);
      },
      py::arg("image_ptr"), py::arg("shape"), py::arg("active_ptr"), py::arg("zoom_ptr"), py::arg("workspace_ptr"),
      py::arg("stream"));
  c.def(
      "augment_gamma",
      [](uintptr_t image, const std::vector<int64_t>& shape, uintptr_t active, uintptr_t gamma, uintptr_t invert,
         bool retain_stats, uintptr_t workspace, uintptr_t stream) {
        const augment::Batch b = augment_batch(image, shape);
        py::gil_scoped_release release;
        augment::gamma_cuda(b, dptr<uint8_t>(active), dptr<float>(gamma), dptr<uint8_t>(invert), retain_stats,
                            reinterpret_cast<double*>(workspace), stream);
      },
      py::arg("image_ptr"), py::arg("shape"), py::arg("active_ptr"), py::arg("gamma_ptr"), py::arg("invert_ptr"),
      py::arg("retain_stats"), py::arg("workspace_ptr"), py::arg("stream"));
  c.def(
      "augment_bias_field",
      [](uintptr_t image, const std::vector<int64_t>& shape, uintptr_t active, uintptr_t coef, int order,
         uintptr_t stream) {
        if (order < 0 || order > 7) throw py::value_error("order: expected 0..7, got " + std::to_string(order));
        const augment::Batch b = augment_batch(image, shape);
        py::gil_scoped_release release;
        augment::bias_field_cuda(b, dptr<uint8_t>(active), dptr<float>(coef), order, stream);
      },
      py::arg("image_ptr"), py::arg("shape"), py::arg("active_ptr"), py::arg("coef_ptr"), py::arg("order"),
      py::arg("stream"));
}

}  // namespace

// ---- fused soft-Dice loss (cpp/src/loss/loss_cuda.cu): device pointers, dtypes as names ----
// Defined in bind_loss.cpp: the loss options from their Python tuple.
dice::LossSpec dice_loss_spec(const py::tuple& options, int64_t n, int64_t c, int64_t voxels, bool sigmoid,
                              bool with_ce);

namespace {

loss::DType loss_dtype(const std::string& name, const char* arg) {
  static const std::pair<const char*, loss::DType> names[] = {
      {"float16", loss::DType::f16}, {"bfloat16", loss::DType::bf16}, {"float32", loss::DType::f32},
      {"float64", loss::DType::f64}, {"uint8", loss::DType::u8},      {"int8", loss::DType::i8},
      {"int16", loss::DType::i16},   {"int32", loss::DType::i32},     {"int64", loss::DType::i64}};
  for (const auto& [n, t] : names) {
    if (name == n) return t;
  }
  throw py::type_error(std::string(arg) + ": unsupported dtype " + name);
}

loss::DiceProblem loss_problem(const std::vector<int64_t>& shape, bool sigmoid, bool mask, int label_offset,
                               const std::string& logits_dtype, const std::string& target_dtype) {
  if (shape.size() != 3) throw py::value_error("shape: expected (N, C, V), got " + std::to_string(shape.size()) + " values");
  for (int64_t d : shape) {
    if (d < 0) throw py::value_error("shape: expected sizes >= 0, got " + std::to_string(d));
  }
  const loss::DType lt = loss_dtype(logits_dtype, "logits");
  const loss::DType tt = loss_dtype(target_dtype, "target");
  if (lt != loss::DType::f16 && lt != loss::DType::bf16 && lt != loss::DType::f32 && lt != loss::DType::f64) {
    throw py::type_error("logits: expected dtype float16, bfloat16, float32 or float64, got " + logits_dtype);
  }
  if (tt == loss::DType::f16 || tt == loss::DType::bf16 || tt == loss::DType::f32 || tt == loss::DType::f64 ||
      (mask && tt != loss::DType::u8)) {
    throw py::type_error("target: expected an integer dtype (uint8 for a mask), got " + target_dtype);
  }
  loss::DiceProblem p;
  p.n = shape[0];
  p.c = shape[1];
  p.v = shape[2];
  p.sigmoid = sigmoid;
  p.mask = mask;
  p.label_offset = label_offset;
  return p;
}

void bind_loss_cuda(py::module_& c) {
  c.def(
      "dice_workspace_doubles",
      [](const std::vector<int64_t>& shape) {
        return loss::dice_workspace_doubles(loss_problem(shape, false, false, 0, "float32", "int64"));
      },
      py::arg("shape"), "Doubles of device workspace dice_sums needs for logits of shape (N, C, V).");
  c.def(
      "dice_sums",
      [](uintptr_t logits, const std::string& logits_dtype, uintptr_t target, const std::string& target_dtype,
         const std::vector<int64_t>& shape, bool sigmoid, bool with_ce, bool mask, int label_offset,
         uintptr_t workspace, uintptr_t sums, uintptr_t stream) {
        loss::DiceProblem p = loss_problem(shape, sigmoid, mask, label_offset, logits_dtype, target_dtype);
        p.with_ce = with_ce;
        if (p.n * p.c > 0 && (sums == 0 || (p.v > 0 && (logits == 0 || target == 0 || workspace == 0)))) {
          throw py::value_error("dice_sums: null device pointer");
        }
        py::gil_scoped_release release;
        loss::dice_sums_cuda(p, loss_dtype(logits_dtype, "logits"), reinterpret_cast<const void*>(logits),
                             loss_dtype(target_dtype, "target"), reinterpret_cast<const void*>(target),
                             reinterpret_cast<double*>(workspace), reinterpret_cast<double*>(sums), stream);
      },
      py::arg("logits_ptr"), py::arg("logits_dtype"), py::arg("target_ptr"), py::arg("target_dtype"),
      py::arg("shape"), py::arg("sigmoid"), py::arg("with_ce"), py::arg("mask"), py::arg("label_offset"),
      py::arg("workspace_ptr"), py::arg("sums_ptr"), py::arg("stream"),
      "Sums (N, C, 5) float64 of logits (N, C, V) against a label map (N, V) or uint8 mask (N, C, V).");
  c.def(
      "dice_backward",
      [](uintptr_t logits, const std::string& logits_dtype, uintptr_t target, const std::string& target_dtype,
         const std::vector<int64_t>& shape, bool sigmoid, bool mask, int label_offset, uintptr_t grads,
         uintptr_t grad_logits, uintptr_t stream) {
        const loss::DiceProblem p = loss_problem(shape, sigmoid, mask, label_offset, logits_dtype, target_dtype);
        if (p.n * p.c * p.v > 0 && (logits == 0 || target == 0 || grads == 0 || grad_logits == 0)) {
          throw py::value_error("dice_backward: null device pointer");
        }
        py::gil_scoped_release release;
        loss::dice_backward_cuda(p, loss_dtype(logits_dtype, "logits"), reinterpret_cast<const void*>(logits),
                                 loss_dtype(target_dtype, "target"), reinterpret_cast<const void*>(target),
                                 reinterpret_cast<const double*>(grads), reinterpret_cast<void*>(grad_logits),
                                 stream);
      },
      py::arg("logits_ptr"), py::arg("logits_dtype"), py::arg("target_ptr"), py::arg("target_dtype"),
      py::arg("shape"), py::arg("sigmoid"), py::arg("mask"), py::arg("label_offset"), py::arg("grads_ptr"),
      py::arg("grad_logits_ptr"), py::arg("stream"),
      "dL/dlogits (N, C, V), logits' dtype, from the sums' gradients (N, C, 4) float64.");
  c.def(
      "dice_loss_forward",
      [](uintptr_t logits, const std::string& logits_dtype, uintptr_t target, const std::string& target_dtype,
         const std::vector<int64_t>& shape, bool sigmoid, bool with_ce, bool mask, int label_offset,
         uintptr_t workspace, uintptr_t sums, uintptr_t weight, const py::tuple& options, uintptr_t loss,
         bool loss_double, uintptr_t stream) {
        loss::DiceProblem p = loss_problem(shape, sigmoid, mask, label_offset, logits_dtype, target_dtype);
        p.with_ce = with_ce;
        const dice::LossSpec spec = dice_loss_spec(options, p.n, p.c, p.v, sigmoid, with_ce);
        if (p.n < 1 || p.c < 1) throw py::value_error("shape: expected N >= 1 and C >= 1");
        if (sums == 0 || loss == 0 || (p.v > 0 && (logits == 0 || target == 0 || workspace == 0))) {
          throw py::value_error("dice_loss_forward: null device pointer");
        }
        py::gil_scoped_release release;
        loss::dice_sums_cuda(p, loss_dtype(logits_dtype, "logits"), reinterpret_cast<const void*>(logits),
                             loss_dtype(target_dtype, "target"), reinterpret_cast<const void*>(target),
                             reinterpret_cast<double*>(workspace), reinterpret_cast<double*>(sums), stream);
        loss::dice_finalize_cuda(spec, reinterpret_cast<const double*>(sums), reinterpret_cast<const double*>(weight),
                                 reinterpret_cast<void*>(loss), loss_double, stream);
      },
      py::arg("logits_ptr"), py::arg("logits_dtype"), py::arg("target_ptr"), py::arg("target_dtype"),
      py::arg("shape"), py::arg("sigmoid"), py::arg("with_ce"), py::arg("mask"), py::arg("label_offset"),
      py::arg("workspace_ptr"), py::arg("sums_ptr"), py::arg("weight_ptr"), py::arg("options"), py::arg("loss_ptr"),
      py::arg("loss_double"), py::arg("stream"),
      "dice_sums, then one launch turning the sums into the loss (fastseg/dice_loss.h), written as one float64 "
      "(loss_double) or float32. weight_ptr: C float64 values, or 0 for none.");
  c.def(
      "dice_loss_backward",
      [](uintptr_t logits, const std::string& logits_dtype, uintptr_t target, const std::string& target_dtype,
         const std::vector<int64_t>& shape, bool sigmoid, bool with_ce, bool mask, int label_offset, uintptr_t sums,
         uintptr_t weight, const py::tuple& options, uintptr_t grad_loss, bool grad_double, uintptr_t grads,
         uintptr_t grad_logits, uintptr_t stream) {
        const loss::DiceProblem p = loss_problem(shape, sigmoid, mask, label_offset, logits_dtype, target_dtype);
        const dice::LossSpec spec = dice_loss_spec(options, p.n, p.c, p.v, sigmoid, with_ce);
        if (p.n * p.c * p.v > 0 &&
            (logits == 0 || target == 0 || sums == 0 || grad_loss == 0 || grads == 0 || grad_logits == 0)) {
          throw py::value_error("dice_loss_backward: null device pointer");
        }
        py::gil_scoped_release release;
        loss::dice_loss_backward_cuda(p, spec, loss_dtype(logits_dtype, "logits"), reinterpret_cast<const void*>(logits),
                                      loss_dtype(target_dtype, "target"), reinterpret_cast<const void*>(target),
                                      reinterpret_cast<const double*>(sums), reinterpret_cast<const double*>(weight),
                                      reinterpret_cast<const void*>(grad_loss), grad_double,
                                      reinterpret_cast<double*>(grads), reinterpret_cast<void*>(grad_logits), stream);
      },
      py::arg("logits_ptr"), py::arg("logits_dtype"), py::arg("target_ptr"), py::arg("target_dtype"),
      py::arg("shape"), py::arg("sigmoid"), py::arg("with_ce"), py::arg("mask"), py::arg("label_offset"),
      py::arg("sums_ptr"), py::arg("weight_ptr"), py::arg("options"), py::arg("grad_loss_ptr"),
      py::arg("grad_double"), py::arg("grads_ptr"), py::arg("grad_logits_ptr"), py::arg("stream"),
      "dL/dlogits (N, C, V), logits' dtype, in two launches: the sums' gradients into grads (N, C, 4) float64 "
      "from the sums, the options and dL/dloss read on the device (float64 if grad_double, else float32), "
      "then the backward pass.");
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
  bind_augment_cuda(c);
  bind_loss_cuda(c);
  c.def(
      "edt_envelope_pass",
      [](uintptr_t d, uintptr_t spacing, int64_t items, const std::vector<int64_t>& shape, int axis,
         int64_t line_begin, int64_t line_count, uintptr_t scratch, uintptr_t positions,
         uintptr_t stream) {
        if (shape.size() != 3 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1) {
          throw py::value_error("shape: expected (z, y, x) sizes >= 1");
        }
        if (axis < 0 || axis > 2) throw py::value_error("axis: expected 0, 1 or 2");
        const int64_t lines = items * shape[0] * shape[1] * shape[2] / shape[axis];
        if (items < 0 || line_begin < 0 || line_count < 0 || line_begin + line_count > lines) {
          throw py::value_error("edt_envelope_pass: lines [" + std::to_string(line_begin) + ", " +
                                std::to_string(line_begin + line_count) + ") outside [0, " +
                                std::to_string(lines) + ")");
        }
        if (line_count > 0 && (d == 0 || spacing == 0 || scratch == 0 || positions == 0)) {
          throw py::value_error("edt_envelope_pass: null device pointer");
        }
        py::gil_scoped_release release;
        envelope_pass_cuda(reinterpret_cast<double*>(d), reinterpret_cast<const double*>(spacing),
                           items, Shape3{shape[0], shape[1], shape[2]}, axis, line_begin,
                           line_count, reinterpret_cast<double*>(scratch),
                           reinterpret_cast<int64_t*>(positions), stream);
      },
      py::arg("d_ptr"), py::arg("spacing_ptr"), py::arg("items"), py::arg("shape"), py::arg("axis"),
      py::arg("line_begin"), py::arg("line_count"), py::arg("scratch_ptr"),
      py::arg("positions_ptr"), py::arg("stream"),
      "One squared-EDT envelope pass along `axis` of an (items, z, y, x) float64 stack, in place;\n"
      "spacing: `items` float64 (mm along `axis`); scratch (4 n + 2) float64 and positions n int64\n"
      "per line of the call.");
}

}  // namespace fastseg
