#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "bind.h"
#include "checks.h"
#include "fastseg/parallel.h"
#include "metrics/metrics.h"

namespace py = pybind11;

namespace fastseg {

namespace {

using metrics::LabelResult;
using Task = std::function<std::vector<LabelResult>()>;

Spacing3 spacing3(const std::vector<double>& s, const char* name) {
  if (s.size() != 3) {
    throw py::value_error(std::string(name) + ": expected 3 values (z, y, x), got " +
                          std::to_string(s.size()));
  }
  for (double v : s) {
    if (!(std::isfinite(v) && v > 0)) {
      throw py::value_error(std::string(name) + ": expected finite values > 0 mm, got " +
                            std::to_string(v));
    }
  }
  return {s[0], s[1], s[2]};
}

metrics::Options options(const std::vector<double>& spacing, const std::string& hd95,
                         double nsd_tolerance, int nsd_method, int distance_method) {
  metrics::Options opt;
  opt.spacing = spacing3(spacing, "spacing");
  if (hd95 == "max_directed") {
    opt.hd95 = metrics::Hd95::kMaxDirected;
  } else if (hd95 == "pooled") {
    opt.hd95 = metrics::Hd95::kPooled;
  } else {
    throw py::value_error("hd95: expected 'max_directed' or 'pooled', got '" + hd95 + "'");
  }
  if (!(std::isnan(nsd_tolerance) || (std::isfinite(nsd_tolerance) && nsd_tolerance >= 0))) {
    throw py::value_error("nsd_tolerance: expected a finite value >= 0 mm (or NaN for none), got " +
                          std::to_string(nsd_tolerance));
  }
  opt.nsd_tolerance = nsd_tolerance;
  if (nsd_method < 0 || nsd_method > 2) {
    throw py::value_error("nsd_method: expected 0 (auto), 1 (probe) or 2 (edt), got " +
                          std::to_string(nsd_method));
  }
  opt.nsd_method = static_cast<metrics::NsdMethod>(nsd_method);
  if (distance_method < 0 || distance_method > 2) {
    throw py::value_error("distance_method: expected 0 (auto), 1 (search) or 2 (edt), got " +
                          std::to_string(distance_method));
  }
  opt.distance_method = static_cast<metrics::DistanceMethod>(distance_method);
  return opt;
}

// Validates one pair and returns the work to run later without the GIL (the arrays must outlive it).
Task make_task(const py::array& pred, const py::array& ref, const std::string& pred_name,
               const std::string& ref_name, const std::optional<std::vector<int64_t>>& labels,
               const metrics::Options& opt) {
  using namespace py_checks;
  require_ndim(pred, pred_name.c_str(), 3);
  require_ndim(ref, ref_name.c_str(), 3);
  require_same_shape(pred, pred_name.c_str(), ref, ref_name.c_str());
  require_c_contiguous(pred, pred_name.c_str());
  require_c_contiguous(ref, ref_name.c_str());
  if (!pred.dtype().is(ref.dtype())) {
    throw py::type_error(ref_name + ": expected dtype " + dtype_str(pred) + " (as " + pred_name +
                         "), got " + dtype_str(ref));
  }
  const Shape3 shape = shape3(pred);
  const bool all = !labels.has_value();
  const std::vector<int64_t> wanted = labels.value_or(std::vector<int64_t>{});
  return dispatch_numeric(pred, pred_name.c_str(), [&](auto tag) -> Task {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_integral_v<T>) {
      const T* p = static_cast<const T*>(pred.data());
      const T* r = static_cast<const T*>(ref.data());
      return [=] { return evaluate_pair_cpu<T>(p, r, shape, wanted, all, opt); };
    } else {
      throw py::type_error(pred_name + ": expected an integer label dtype, got " + dtype_str(pred));
    }
  });
}

py::dict to_dict(const std::vector<LabelResult>& rows) {
  const py::ssize_t n = static_cast<py::ssize_t>(rows.size());
  py::array_t<int64_t> label(n), pv(n), rv(n), iv(n);
  py::array_t<double> dice(n), jac(n), vs(n), hd(n), hd95(n), avd(n), assd(n), nsd(n);
  for (py::ssize_t k = 0; k < n; ++k) {
    const LabelResult& r = rows[k];
    label.mutable_at(k) = r.label;
    pv.mutable_at(k) = r.pred_voxels;
    rv.mutable_at(k) = r.ref_voxels;
    iv.mutable_at(k) = r.inter_voxels;
    dice.mutable_at(k) = r.dice;
    jac.mutable_at(k) = r.jaccard;
    vs.mutable_at(k) = r.vs;
    hd.mutable_at(k) = r.hd;
    hd95.mutable_at(k) = r.hd95;
    avd.mutable_at(k) = r.avd;
    assd.mutable_at(k) = r.assd;
    nsd.mutable_at(k) = r.nsd;
  }
  py::dict d;
  d["label"] = label;
  d["pred_voxels"] = pv;
  d["ref_voxels"] = rv;
  d["inter_voxels"] = iv;
  d["dice"] = dice;
  d["jaccard"] = jac;
  d["vs"] = vs;
  d["hd"] = hd;
  d["hd95"] = hd95;
  d["avd"] = avd;
  d["assd"] = assd;
  d["nsd"] = nsd;
  return d;
}

py::array_t<uint8_t> mask_arg(const py::array& mask) {
  using namespace py_checks;
  require_ndim(mask, "mask", 3);
  require_dtype<uint8_t>(mask, "mask");
  require_c_contiguous(mask, "mask");
  return py::array_t<uint8_t>(mask);
}

}  // namespace

void bind_metrics(py::module_& m) {
  m.def(
      "metrics",
      [](const py::array& pred, const py::array& ref, const std::vector<double>& spacing,
         const std::optional<std::vector<int64_t>>& labels, const std::string& hd95,
         double nsd_tolerance, int nsd_method, int distance_method) {
        const metrics::Options opt =
            options(spacing, hd95, nsd_tolerance, nsd_method, distance_method);
        const Task task = make_task(pred, ref, "pred", "ref", labels, opt);
        std::vector<LabelResult> rows;
        {
          py::gil_scoped_release release;
          rows = task();
        }
        return to_dict(rows);
      },
      py::arg("pred"), py::arg("ref"), py::arg("spacing"), py::arg("labels") = py::none(),
      py::arg("hd95") = "max_directed", py::arg("nsd_tolerance") = 1.0, py::arg("nsd_method") = 0,
      py::arg("distance_method") = 0,
      "Metrics per label of two (z, y, x) integer label maps of one shape and dtype, C-contiguous.\n"
      "labels=None: every non-zero label of either map. nsd_tolerance in mm, NaN for no nsd.\n"
      "nsd_method (0 auto, 1 probe, 2 corner EDT) and distance_method (0 auto, 1 search, 2 EDT)\n"
      "choose between exact algorithms with equal results.\n"
      "Returns a dict of arrays: label, pred_voxels, ref_voxels, inter_voxels, dice, jaccard, vs,\n"
      "hd, hd95, avd, assd, nsd (distances in mm).");

  m.def(
      "metrics_batch",
      [](const std::vector<py::array>& preds, const std::vector<py::array>& refs,
         const std::vector<std::vector<double>>& spacings,
         const std::optional<std::vector<int64_t>>& labels, const std::string& hd95,
         double nsd_tolerance, int nsd_method, int distance_method) {
        if (preds.size() != refs.size() || preds.size() != spacings.size()) {
          throw py::value_error("refs/spacings: expected " + std::to_string(preds.size()) +
                                " entries (one per pred), got " + std::to_string(refs.size()) +
                                " refs and " + std::to_string(spacings.size()) + " spacings");
        }
        const int64_t n = static_cast<int64_t>(preds.size());
        std::vector<Task> tasks;
        tasks.reserve(n);
        for (int64_t k = 0; k < n; ++k) {
          const std::string idx = "[" + std::to_string(k) + "]";
          const metrics::Options opt =
              options(spacings[k], hd95, nsd_tolerance, nsd_method, distance_method);
          tasks.push_back(make_task(preds[k], refs[k], "pred" + idx, "ref" + idx, labels, opt));
        }
        std::vector<std::vector<LabelResult>> rows(n);
        {
          py::gil_scoped_release release;
          parallel_for_dynamic(n, [&](int64_t k) { rows[k] = tasks[k](); });
        }
        py::list out;
        for (const auto& r : rows) out.append(to_dict(r));
        return out;
      },
      py::arg("preds"), py::arg("refs"), py::arg("spacings"), py::arg("labels") = py::none(),
      py::arg("hd95") = "max_directed", py::arg("nsd_tolerance") = 1.0, py::arg("nsd_method") = 0,
      py::arg("distance_method") = 0,
      "metrics() over many pairs, OpenMP across pairs; returns one dict per pair.");

  m.def(
      "squared_edt",
      [](const py::array& mask, const std::vector<double>& spacing) {
        const py::array_t<uint8_t> in = mask_arg(mask);
        const Spacing3 sp = spacing3(spacing, "spacing");
        const Shape3 shape = py_checks::shape3(in);
        py::array_t<double> out({shape.z, shape.y, shape.x});
        const uint8_t* src = in.data();
        double* dst = out.mutable_data();
        {
          py::gil_scoped_release release;
          squared_edt_cpu(src, shape, sp, dst);
        }
        return out;
      },
      py::arg("mask"), py::arg("spacing"),
      "Squared distance (mm^2) of every voxel to the nearest non-zero voxel of a (z, y, x) uint8 "
      "mask; inf without any.");

  m.def(
      "voxel_surface",
      [](const py::array& mask) {
        const py::array_t<uint8_t> in = mask_arg(mask);
        const Shape3 shape = py_checks::shape3(in);
        py::array_t<uint8_t> out({shape.z, shape.y, shape.x});
        voxel_surface_cpu(in.data(), shape, out.mutable_data());
        return out;
      },
      py::arg("mask"),
      "1 on voxels of mask != 0 with a 6-neighbour outside it (outside the array counts), else 0.");

  m.def(
      "corner_codes",
      [](const py::array& mask) {
        const py::array_t<uint8_t> in = mask_arg(mask);
        const Shape3 shape = py_checks::shape3(in);
        py::array_t<uint8_t> out({shape.z + 1, shape.y + 1, shape.x + 1});
        corner_codes_cpu(in.data(), shape, out.mutable_data());
        return out;
      },
      py::arg("mask"), "2x2x2 neighbour codes of mask != 0 on the corner grid (z+1, y+1, x+1).");

  m.def(
      "surfel_areas",
      [](const std::vector<double>& spacing) {
        const auto table = surfel_area_table(spacing3(spacing, "spacing"));
        py::array_t<double> out(256);
        for (int k = 0; k < 256; ++k) out.mutable_at(k) = table[k];
        return out;
      },
      py::arg("spacing"), "Surfel area (mm^2) of every neighbour code for spacing (z, y, x).");
}

}  // namespace fastseg
