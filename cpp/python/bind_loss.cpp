// Bindings of the fused soft-Dice loss (cpp/src/loss), CPU path: NumPy arrays in and out.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "bind.h"
#include "checks.h"
#include "fastseg/dice.h"
#include "fastseg/dice_loss.h"
#include "loss/loss.h"

namespace py = pybind11;

namespace fastseg {
namespace {

using namespace py_checks;

void require_shape(const py::array& a, const char* name, std::initializer_list<py::ssize_t> shape) {
  bool same = a.ndim() == static_cast<py::ssize_t>(shape.size());
  py::ssize_t i = 0;
  std::string want = "(";
  for (py::ssize_t d : shape) {
    want += (i ? ", " : "") + std::to_string(d);
    if (same && a.shape(i) != d) same = false;
    ++i;
  }
  want += ")";
  if (!same) throw py::value_error(std::string(name) + ": expected shape " + want + ", got " + shape_str(a));
}

// Checks logits (N, C, V) and target (N, V) or (N, C, V) and fills the problem's shape and kind.
loss::DiceProblem problem(const py::array& logits, const py::array& target, bool sigmoid, int label_offset) {
  require_ndim(logits, "logits", 3);
  require_c_contiguous(logits, "logits");
  if (!is_dtype<float>(logits.dtype()) && !is_dtype<double>(logits.dtype())) {
    throw py::type_error("logits: expected dtype float32 or float64, got " + dtype_str(logits));
  }
  loss::DiceProblem p;
  p.n = logits.shape(0);
  p.c = logits.shape(1);
  p.v = logits.shape(2);
  p.sigmoid = sigmoid;
  p.label_offset = label_offset;
  if (p.c < 1) throw py::value_error("logits: expected at least one class, got shape " + shape_str(logits));
  require_c_contiguous(target, "target");
  if (target.ndim() == 3) {
    require_same_shape(logits, "logits", target, "target");
    require_dtype<uint8_t>(target, "target");
    p.mask = true;
  } else {
    require_shape(target, "target", {p.n, p.v});
  }
  return p;
}

// Calls fn(T*, L*) with the logits' and target's C++ types.
template <class Fn>
void dispatch(const py::array& logits, const py::array& target, Fn&& fn) {
  auto with_labels = [&](auto* x) {
    const py::dtype dt = target.dtype();
    const void* t = target.data();
    if (is_dtype<uint8_t>(dt)) return fn(x, static_cast<const uint8_t*>(t));
    if (is_dtype<int8_t>(dt)) return fn(x, static_cast<const int8_t*>(t));
    if (is_dtype<int16_t>(dt)) return fn(x, static_cast<const int16_t*>(t));
    if (is_dtype<int32_t>(dt)) return fn(x, static_cast<const int32_t*>(t));
    if (is_dtype<int64_t>(dt)) return fn(x, static_cast<const int64_t*>(t));
    throw py::type_error("target: expected dtype uint8, int8, int16, int32 or int64, got " + dtype_str(target));
  };
  if (is_dtype<float>(logits.dtype())) {
    with_labels(static_cast<const float*>(logits.data()));
  } else {
    with_labels(static_cast<const double*>(logits.data()));
  }
}

// The sums (N, C, kSums) float64 array of a problem.
const double* sums_of(const py::array& sums, const loss::DiceProblem& p) {
  require_shape(sums, "sums", {p.n, p.c, dice::kSums});
  require_dtype<double>(sums, "sums");
  require_c_contiguous(sums, "sums");
  return static_cast<const double*>(sums.data());
}

// The class weights: None (null) or C float64 values.
const double* weight_of(const py::object& weight, int64_t classes) {
  if (weight.is_none()) return nullptr;
  if (!py::isinstance<py::array>(weight)) throw py::type_error("weight: expected None or a float64 array");
  const py::array w = py::reinterpret_borrow<py::array>(weight);
  require_shape(w, "weight", {classes});
  require_dtype<double>(w, "weight");
  require_c_contiguous(w, "weight");
  return static_cast<const double*>(w.data());
}

}  // namespace

// The loss options from (squared, include_background, batch_dice, smooth_nr, smooth_dr, dice_weight,
// ce_weight) and the problem (shared with the CUDA bindings of cuda_ops.cpp).
dice::LossSpec dice_loss_spec(const py::tuple& options, int64_t n, int64_t c, int64_t voxels, bool sigmoid,
                              bool with_ce) {
  if (options.size() != 7) {
    throw py::value_error("options: expected (squared, include_background, batch_dice, smooth_nr, smooth_dr, "
                          "dice_weight, ce_weight), got " + std::to_string(options.size()) + " values");
  }
  dice::LossSpec s;
  s.n = n;
  s.c = c;
  s.voxels = voxels;
  s.sigmoid = sigmoid;
  s.with_ce = with_ce;
  s.squared = options[0].cast<bool>();
  s.include_background = options[1].cast<bool>();
  s.batch_dice = options[2].cast<bool>();
  s.smooth_nr = options[3].cast<double>();
  s.smooth_dr = options[4].cast<double>();
  s.dice_weight = options[5].cast<double>();
  s.ce_weight = options[6].cast<double>();
  return s;
}

void bind_loss(py::module_& m) {
  m.attr("dice_sums_count") = static_cast<int>(dice::kSums);
  m.attr("dice_grads_count") = static_cast<int>(dice::kGrads);
  m.def(
      "dice_sums",
      [](const py::array& logits, const py::array& target, py::array sums, bool sigmoid, bool with_ce,
         int label_offset) {
        loss::DiceProblem p = problem(logits, target, sigmoid, label_offset);
        p.with_ce = with_ce;
        require_shape(sums, "sums", {p.n, p.c, dice::kSums});
        require_dtype<double>(sums, "sums");
        require_c_contiguous(sums, "sums");
        double* out = static_cast<double*>(sums.mutable_data());
        int64_t invalid = 0;
        dispatch(logits, target, [&](const auto* x, const auto* t) {
          py::gil_scoped_release release;
          invalid = loss::dice_sums_cpu(p, x, t, out);
        });
        return invalid;
      },
      py::arg("logits"), py::arg("target"), py::arg("sums"), py::arg("sigmoid"), py::arg("with_ce"),
      py::arg("label_offset"),
      "Per (sample, class) sums (intersection, Σp, Σp², Σt, cross-entropy) of logits (N, C, V) float32 "
      "or float64 against a label map (N, V) or a uint8 mask (N, C, V), into sums (N, C, 5) float64. "
      "Returns the number of labels outside [0, label_offset + C).");
  m.def(
      "dice_backward",
      [](const py::array& logits, const py::array& target, const py::array& grads, py::array grad_logits,
         bool sigmoid, int label_offset) {
        const loss::DiceProblem p = problem(logits, target, sigmoid, label_offset);
        require_shape(grads, "grads", {p.n, p.c, dice::kGrads});
        require_dtype<double>(grads, "grads");
        require_c_contiguous(grads, "grads");
        require_same_shape(logits, "logits", grad_logits, "grad_logits");
        require_c_contiguous(grad_logits, "grad_logits");
        if (!same_dtype(logits.dtype(), grad_logits.dtype())) {
          throw py::type_error("grad_logits: expected dtype " + dtype_str(logits) + " (as logits), got " +
                               dtype_str(grad_logits));
        }
        const double* g = static_cast<const double*>(grads.data());
        void* out = grad_logits.mutable_data();
        dispatch(logits, target, [&](const auto* x, const auto* t) {
          using T = std::remove_cv_t<std::remove_pointer_t<decltype(x)>>;
          py::gil_scoped_release release;
          loss::dice_backward_cpu(p, x, t, g, static_cast<T*>(out));
        });
      },
      py::arg("logits"), py::arg("target"), py::arg("grads"), py::arg("grad_logits"), py::arg("sigmoid"),
      py::arg("label_offset"),
      "dL/dlogits (N, C, V) from the gradients (N, C, 4) float64 of the sums (intersection, Σp, Σp², "
      "cross-entropy), recomputing the softmax or sigmoid.");
  m.def(
      "dice_loss_forward",
      [](const py::array& logits, const py::array& target, py::array sums, const py::object& weight, bool sigmoid,
         bool with_ce, int label_offset, const py::tuple& options) {
        loss::DiceProblem p = problem(logits, target, sigmoid, label_offset);
        p.with_ce = with_ce;
        const dice::LossSpec spec = dice_loss_spec(options, p.n, p.c, p.v, sigmoid, with_ce);
        sums_of(sums, p);
        const double* w = weight_of(weight, p.c);
        double* out = static_cast<double*>(sums.mutable_data());
        int64_t invalid = 0;
        double value = 0.0;
        dispatch(logits, target, [&](const auto* x, const auto* t) {
          py::gil_scoped_release release;
          invalid = loss::dice_sums_cpu(p, x, t, out);
          value = dice::loss_from_sums(spec, out, w, 1.0, -1, nullptr);
        });
        return py::make_tuple(invalid, value);
      },
      py::arg("logits"), py::arg("target"), py::arg("sums"), py::arg("weight"), py::arg("sigmoid"),
      py::arg("with_ce"), py::arg("label_offset"), py::arg("options"),
      "dice_sums into `sums`, then the loss from them (fastseg/dice_loss.h); returns (labels outside "
      "[0, label_offset + C), loss). options: (squared, include_background, batch_dice, smooth_nr, "
      "smooth_dr, dice_weight, ce_weight); weight: None or C float64 values.");
  m.def(
      "dice_loss_backward",
      [](const py::array& logits, const py::array& target, const py::array& sums, const py::object& weight,
         py::array grad_logits, bool sigmoid, bool with_ce, int label_offset, const py::tuple& options,
         double scale) {
        const loss::DiceProblem p = problem(logits, target, sigmoid, label_offset);
        const dice::LossSpec spec = dice_loss_spec(options, p.n, p.c, p.v, sigmoid, with_ce);
        const double* s = sums_of(sums, p);
        const double* w = weight_of(weight, p.c);
        require_same_shape(logits, "logits", grad_logits, "grad_logits");
        require_c_contiguous(grad_logits, "grad_logits");
        if (!same_dtype(logits.dtype(), grad_logits.dtype())) {
          throw py::type_error("grad_logits: expected dtype " + dtype_str(logits) + " (as logits), got " +
                               dtype_str(grad_logits));
        }
        void* out = grad_logits.mutable_data();
        dispatch(logits, target, [&](const auto* x, const auto* t) {
          using T = std::remove_cv_t<std::remove_pointer_t<decltype(x)>>;
          py::gil_scoped_release release;
          loss::dice_loss_backward_cpu(p, spec, x, t, s, w, scale, static_cast<T*>(out));
        });
      },
      py::arg("logits"), py::arg("target"), py::arg("sums"), py::arg("weight"), py::arg("grad_logits"),
      py::arg("sigmoid"), py::arg("with_ce"), py::arg("label_offset"), py::arg("options"), py::arg("scale"),
      "dL/dlogits (N, C, V) into grad_logits: scale (dL/dloss) times the loss's gradients of the sums "
      "(fastseg/dice_loss.h), then one backward pass.");
  m.def(
      "dice_loss_from_sums",
      [](const py::array& sums, const py::object& weight, bool sigmoid, bool with_ce, int64_t voxels,
         const py::tuple& options, double scale) {
        require_ndim(sums, "sums", 3);
        loss::DiceProblem p;
        p.n = sums.shape(0);
        p.c = sums.shape(1);
        const double* s = sums_of(sums, p);
        const double* w = weight_of(weight, p.c);
        const dice::LossSpec spec = dice_loss_spec(options, p.n, p.c, voxels, sigmoid, with_ce);
        py::array_t<double> grads(std::vector<py::ssize_t>{p.n, p.c, dice::kGrads});
        const double value = dice::loss_from_sums(spec, s, w, scale, -1, grads.mutable_data());
        return py::make_tuple(value, grads);
      },
      py::arg("sums"), py::arg("weight"), py::arg("sigmoid"), py::arg("with_ce"), py::arg("voxels"),
      py::arg("options"), py::arg("scale"),
      "(loss, scale * dloss/d(Σpt, Σp, Σp², cross-entropy) (N, C, 4)) from sums (N, C, 5) float64 "
      "(fastseg/dice_loss.h).");
}

}  // namespace fastseg
