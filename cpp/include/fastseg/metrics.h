// Segmentation metrics of DESIGN.md for every label of a pair of label maps, in one pass.
//
// A = prediction == label, M = reference == label. One scan of the two maps gives, per label,
// |A|, |M|, |A ∩ M| and the bounding boxes of A and M. All further work for a label happens in
// B = bbox(A ∪ M): a uint8 box of bits (A, M, ∂A, ∂M), exact distances to ∂M and ∂A over B (see
// edt.h: exact inside B because all features lie in B; answered per query by a search outwards
// from the first EDT pass, or by the full EDT when the surfaces are far apart), and for the NSD the
// corner grid of B.
//
//   d(x, ∂M) for x in ∂A and d(y, ∂A) for y in ∂M give hd, hd95 and assd (MedPy's definitions on
//   the voxel surface ∂, see surface.h).
//   avd needs d(a, M) for every a in A: 0 inside M, and for a outside M the nearest voxel of M is
//   on ∂M (an interior voxel of M has a 6-neighbour, one step towards a, that is closer), so the
//   distances to ∂M serve both.
//   nsd follows DeepMind's surface-distance: border corners with surfel areas (surfels.h), a
//   corner of one surface counts when a border corner of the other lies within the tolerance.
//   That test probes a precomputed ball of corner offsets, or (for large tolerances) reads an EDT
//   of the corner grid; both are exact.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fastseg/edt.h"
#include "fastseg/parallel.h"
#include "fastseg/shape.h"
#include "fastseg/surface.h"
#include "fastseg/surfels.h"

namespace fastseg::metrics {

enum class Hd95 : int { kMaxDirected = 0, kPooled = 1 };
enum class NsdMethod : int { kAuto = 0, kProbe = 1, kEdt = 2 };
enum class DistanceMethod : int { kAuto = 0, kSearch = 1, kEdt = 2 };

struct Options {
  Spacing3 spacing;
  Hd95 hd95 = Hd95::kMaxDirected;
  double nsd_tolerance = 1.0;  // mm; NaN leaves nsd out (NaN in the result)
  NsdMethod nsd_method = NsdMethod::kAuto;
  DistanceMethod distance_method = DistanceMethod::kAuto;  // kSearch: no budget; kEdt: no search
};

inline Box3 empty_box() {
  constexpr int64_t big = std::numeric_limits<int64_t>::max();
  constexpr int64_t small = std::numeric_limits<int64_t>::min();
  return Box3{{big, big, big}, {small, small, small}};
}

inline void extend(Box3& b, int64_t z, int64_t y, int64_t x0, int64_t x1) {
  b.lo[0] = std::min(b.lo[0], z);
  b.hi[0] = std::max(b.hi[0], z + 1);
  b.lo[1] = std::min(b.lo[1], y);
  b.hi[1] = std::max(b.hi[1], y + 1);
  b.lo[2] = std::min(b.lo[2], x0);
  b.hi[2] = std::max(b.hi[2], x1);
}

inline Box3 merge(const Box3& a, const Box3& b) {
  Box3 r;
  for (int k = 0; k < 3; ++k) {
    r.lo[k] = std::min(a.lo[k], b.lo[k]);
    r.hi[k] = std::max(a.hi[k], b.hi[k]);
  }
  return r;
}

struct LabelCounts {
  int64_t pred = 0, ref = 0, inter = 0;
  Box3 pred_box = empty_box(), ref_box = empty_box();

  void add(const LabelCounts& o) {
    pred += o.pred;
    ref += o.ref;
    inter += o.inter;
    pred_box = merge(pred_box, o.pred_box);
    ref_box = merge(ref_box, o.ref_box);
  }
};

struct LabelResult {
  int64_t label = 0;
  int64_t pred_voxels = 0, ref_voxels = 0, inter_voxels = 0;
  double dice = 0, jaccard = 0, vs = 0, hd = 0, hd95 = 0, avd = 0, assd = 0, nsd = 0;
};

// Per-label counts keyed by label value, with a one-entry cache (neighbouring runs mostly share
// their label).
class CountTable {
 public:
  LabelCounts& at(int64_t key) {
    if (last_ < items_.size() && last_key_ == key) return items_[last_].second;
    auto it = index_.find(key);
    if (it == index_.end()) {
      it = index_.emplace(key, items_.size()).first;
      items_.emplace_back(key, LabelCounts{});
    }
    last_key_ = key;
    last_ = it->second;
    return items_[last_].second;
  }
  const std::vector<std::pair<int64_t, LabelCounts>>& items() const { return items_; }

 private:
  std::unordered_map<int64_t, size_t> index_;
  std::vector<std::pair<int64_t, LabelCounts>> items_;
  int64_t last_key_ = 0;
  size_t last_ = std::numeric_limits<size_t>::max();
};

// End of the run of equal values starting at a[x] (exclusive), within [x, nx). Bytes are compared
// eight at a time.
template <class T>
int64_t run_end(const T* a, int64_t x, int64_t nx) {
  const T v = a[x];
  int64_t e = x + 1;
  if constexpr (sizeof(T) == 1) {
    const uint64_t pattern = 0x0101010101010101ULL * static_cast<uint8_t>(v);
    while (e + 8 <= nx) {
      uint64_t w;
      std::memcpy(&w, a + e, 8);
      const uint64_t diff = w ^ pattern;
      if (diff != 0) {
        if constexpr (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__) {
          return e + (__builtin_ctzll(diff) >> 3);
        } else {
          break;
        }
      }
      e += 8;
    }
  }
  while (e < nx && a[e] == v) ++e;
  return e;
}

template <class T>
void scan_row(const T* pr, const T* rr, int64_t nx, int64_t z, int64_t y, CountTable& table) {
  T any = 0;
  for (int64_t x = 0; x < nx; ++x) any |= static_cast<T>(pr[x] | rr[x]);
  if (any == 0) return;
  for (int64_t x = 0; x < nx;) {
    const T v = pr[x];
    const int64_t e = run_end(pr, x, nx);
    if (v != 0) {
      LabelCounts& c = table.at(static_cast<int64_t>(v));
      c.pred += e - x;
      extend(c.pred_box, z, y, x, e);
      int64_t inter = 0;
      for (int64_t k = x; k < e; ++k) inter += rr[k] == v;
      c.inter += inter;
    }
    x = e;
  }
  for (int64_t x = 0; x < nx;) {
    const T v = rr[x];
    const int64_t e = run_end(rr, x, nx);
    if (v != 0) {
      LabelCounts& c = table.at(static_cast<int64_t>(v));
      c.ref += e - x;
      extend(c.ref_box, z, y, x, e);
    }
    x = e;
  }
}

// Counts and bounding boxes of every non-zero label of either map, sorted by label.
template <class T>
std::vector<std::pair<int64_t, LabelCounts>> scan_labels(const T* pred, const T* ref, const Shape3& n) {
  const int64_t chunks =
      n.size() >= (int64_t{1} << 22) ? std::max<int64_t>(1, std::min<int64_t>(max_threads(), n.z)) : 1;
  std::vector<CountTable> tables(chunks);
  parallel_for(chunks, [&](int64_t c) {
    const int64_t z0 = n.z * c / chunks, z1 = n.z * (c + 1) / chunks;
    for (int64_t z = z0; z < z1; ++z) {
      for (int64_t y = 0; y < n.y; ++y) {
        const int64_t off = n.index(z, y, 0);
        scan_row(pred + off, ref + off, n.x, z, y, tables[c]);
      }
    }
  }, 2);
  std::unordered_map<int64_t, LabelCounts> all;
  for (const CountTable& t : tables) {
    for (const auto& [key, c] : t.items()) all[key].add(c);
  }
  std::vector<std::pair<int64_t, LabelCounts>> out(all.begin(), all.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

// The q-th quantile (q in [0, 1]) with linear interpolation, as numpy.percentile computes it.
inline double quantile_linear(std::vector<double>& v, double q) {
  const int64_t n = static_cast<int64_t>(v.size());
  const double h = q * static_cast<double>(n - 1);
  const int64_t lo = std::min<int64_t>(static_cast<int64_t>(std::floor(h)), n - 1);
  std::nth_element(v.begin(), v.begin() + lo, v.end());
  const double a = v[lo];
  if (lo + 1 >= n) return a;
  const double b = *std::min_element(v.begin() + lo + 1, v.end());
  const double t = h - static_cast<double>(lo);
  const double diff = b - a;
  return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

inline constexpr uint8_t kInA = 1, kInM = 2, kSurfA = 4, kSurfM = 8;
// Boxes from this many voxels run a label's three tasks on separate threads; smaller ones take a
// few milliseconds, less than a fork costs on a busy machine.
inline constexpr int64_t kThreadedBox = int64_t{1} << 20;

// Per-thread buffers reused from call to call (they keep the size of the largest box seen), so
// that evaluating many pairs does not map and zero fresh pages for every label.
struct Scratch {
  std::vector<uint8_t> mask, codes_a, codes_m;
  std::vector<int32_t> steps;
};

inline Scratch& thread_scratch() {
  static thread_local Scratch s;
  return s;
}

template <class T>
T* scratch_buffer(std::vector<T>& v, size_t n) {
  if (v.size() < n) {
    v.clear();
    v.shrink_to_fit();
    v.resize(n);
  }
  return v.data();
}

// Surface Dice at tolerance tau from the A/M bits of a box (see the comment at the top).
inline double surface_dice(const uint8_t* mask, const Shape3& n, const Options& opt,
                           const std::array<double, 256>& area, int64_t surface_voxels) {
  const Spacing3& sp = opt.spacing;
  const double tau = opt.nsd_tolerance;
  const Shape3 cn{n.z + 1, n.y + 1, n.x + 1};
  const int64_t corners = cn.size();

  // Offsets within tau, nearest first; r = largest offset per axis.
  const auto reach = [&](double s) {
    return static_cast<int64_t>(std::min(std::floor(tau / s), 1e6));
  };
  const Shape3 r{reach(sp.z), reach(sp.y), reach(sp.x)};
  const double ball = (2.0 * r.z + 1) * (2.0 * r.y + 1) * (2.0 * r.x + 1);
  bool probe = opt.nsd_method == NsdMethod::kProbe;
  if (opt.nsd_method == NsdMethod::kAuto) {
    probe = ball * static_cast<double>(surface_voxels) <= 16.0 * static_cast<double>(corners) &&
            ball <= 1e5;
  }

  double area_a = 0, area_m = 0, near_a = 0, near_m = 0;
  if (probe) {
    const Shape3 g{cn.z + 2 * r.z, cn.y + 2 * r.y, cn.x + 2 * r.x};
    Scratch& scratch = thread_scratch();
    uint8_t* ca = scratch_buffer(scratch.codes_a, g.size());
    uint8_t* cm = scratch_buffer(scratch.codes_m, g.size());
    std::fill(ca, ca + g.size(), 0);
    std::fill(cm, cm + g.size(), 0);
    corner_codes(mask, n, kInA, ca, r);
    corner_codes(mask, n, kInM, cm, r);
    std::vector<std::pair<double, int64_t>> ball_off;
    for (int64_t dz = -r.z; dz <= r.z; ++dz) {
      for (int64_t dy = -r.y; dy <= r.y; ++dy) {
        for (int64_t dx = -r.x; dx <= r.x; ++dx) {
          const double tz = sp.z * dz, ty = sp.y * dy, tx = sp.x * dx;
          const double d = std::sqrt(tz * tz + ty * ty + tx * tx);
          if (d <= tau) ball_off.emplace_back(d, (dz * g.y + dy) * g.x + dx);
        }
      }
    }
    std::sort(ball_off.begin(), ball_off.end());
    std::vector<int64_t> off(ball_off.size());
    for (size_t k = 0; k < off.size(); ++k) off[k] = ball_off[k].second;
    const auto near = [&](const uint8_t* other, int64_t i) {
      for (int64_t o : off) {
        if (is_border_code(other[i + o])) return true;
      }
      return false;
    };
    for (int64_t z = 0; z < cn.z; ++z) {
      for (int64_t y = 0; y < cn.y; ++y) {
        const int64_t row = g.index(z + r.z, y + r.y, r.x);
        for (int64_t x = 0; x < cn.x; ++x) {
          const int64_t i = row + x;
          if (is_border_code(ca[i])) {
            area_a += area[ca[i]];
            if (near(cm, i)) near_a += area[ca[i]];
          }
          if (is_border_code(cm[i])) {
            area_m += area[cm[i]];
            if (near(ca, i)) near_m += area[cm[i]];
          }
        }
      }
    }
  } else {
    const Shape3 zero{0, 0, 0};
    std::vector<uint8_t> ca(corners, 0), cm(corners, 0);
    corner_codes(mask, n, kInA, ca.data(), zero);
    corner_codes(mask, n, kInM, cm.data(), zero);
    std::vector<uint8_t> bits(corners);
    for (int64_t i = 0; i < corners; ++i) {
      bits[i] = static_cast<uint8_t>((is_border_code(ca[i]) ? kInA : 0) | (is_border_code(cm[i]) ? kInM : 0));
    }
    std::vector<double> d(corners);
    edt::squared_edt(bits.data(), kInM, cn, sp, d.data(), kInA);
    for (int64_t i = 0; i < corners; ++i) {
      if (bits[i] & kInA) {
        area_a += area[ca[i]];
        if (std::sqrt(d[i]) <= tau) near_a += area[ca[i]];
      }
    }
    edt::squared_edt(bits.data(), kInA, cn, sp, d.data(), kInM);
    for (int64_t i = 0; i < corners; ++i) {
      if (bits[i] & kInM) {
        area_m += area[cm[i]];
        if (std::sqrt(d[i]) <= tau) near_m += area[cm[i]];
      }
    }
  }
  return (near_a + near_m) / (area_a + area_m);
}

// All metrics of one label from its counts; reads pred and ref (full arrays of shape `shape`)
// only inside the label's box.
template <class T>
LabelResult label_metrics(const T* pred, const T* ref, const Shape3& shape, int64_t label,
                          const LabelCounts& c, const Options& opt, const std::array<double, 256>& area) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  LabelResult r;
  r.label = label;
  r.pred_voxels = c.pred;
  r.ref_voxels = c.ref;
  r.inter_voxels = c.inter;
  const bool want_nsd = !std::isnan(opt.nsd_tolerance);
  if (c.pred == 0 && c.ref == 0) {
    r.dice = r.jaccard = r.vs = 1.0;
    r.nsd = want_nsd ? 1.0 : std::nan("");
    return r;
  }
  const double a = static_cast<double>(c.pred), m = static_cast<double>(c.ref);
  const double i = static_cast<double>(c.inter);
  r.dice = 2.0 * i / (a + m);
  r.jaccard = i / (a + m - i);
  r.vs = 1.0 - std::abs(a - m) / (a + m);
  if (c.pred == 0 || c.ref == 0) {
    r.hd = r.hd95 = r.avd = r.assd = inf;
    r.nsd = want_nsd ? 0.0 : std::nan("");
    return r;
  }

  const Box3 box = merge(c.pred_box, c.ref_box);
  const Shape3 n = box.shape();
  const T value = static_cast<T>(label);
  const int64_t nx = n.x;  // a local: uint8_t stores may alias n.x
  uint8_t* const mask = scratch_buffer(thread_scratch().mask, n.size());
  for (int64_t z = 0; z < n.z; ++z) {
    for (int64_t y = 0; y < n.y; ++y) {
      const int64_t src = shape.index(box.lo[0] + z, box.lo[1] + y, box.lo[2]);
      const T* p = pred + src;
      const T* q = ref + src;
      uint8_t* dst = mask + n.index(z, y, 0);
      for (int64_t x = 0; x < nx; ++x) {
        dst[x] = static_cast<uint8_t>((p[x] == value ? kInA : 0) | (q[x] == value ? kInM : 0));
      }
    }
  }
  const int64_t surface_voxels =
      mark_surface(mask, n, kInA, kSurfA) + mark_surface(mask, n, kInM, kSurfM);

  // Three independent tasks: d(., ∂M) over A, d(., ∂A) over M, the surface Dice; on separate
  // threads (one fork per label) for large boxes.
  std::vector<double> a_to_m, m_to_a;
  double sum_a = 0, sum_m = 0;
  // d(x, ∂M) is needed at x in ∂A (surface distances) and x in A \ M (avd; 0 inside M). Queries
  // are answered from the column pass of the EDT by a search outwards (edt::ColumnSearch),
  // which is fast while the surfaces are near each other; past a work budget of a few times the
  // box size the envelope passes of the full EDT take over.
  const auto directed = [&](uint8_t feature, uint8_t query, uint8_t query_surface, uint8_t other,
                            std::vector<double>& dist, double& sum_outside) {
    int32_t* const c = scratch_buffer(thread_scratch().steps, n.size());
    const int column_axis = edt::finest_axis(opt.spacing);
    edt::column_steps(mask, feature, n, column_axis, c);
    const std::vector<double> sq = edt::column_squares(n, opt.spacing, column_axis);
    bool done = opt.distance_method != DistanceMethod::kEdt;
    if (done) {
      const int64_t budget = opt.distance_method == DistanceMethod::kSearch
                                 ? std::numeric_limits<int64_t>::max()
                                 : 4 * n.size() + 4096;
      const auto run = [&](const auto& search) {
        int64_t work = 0;
        for (int64_t z = 0; z < n.z; ++z) {
          for (int64_t y = 0; y < n.y; ++y) {
            const uint8_t* row = mask + n.index(z, y, 0);
            for (int64_t x = 0; x < nx; ++x) {
              const uint8_t b = row[x];
              if (!(b & query)) continue;
              const bool on_surface = (b & query_surface) != 0, outside = !(b & other);
              if (!on_surface && !outside) continue;
              const double dk = std::sqrt(search.squared(z, y, x, work));
              if (on_surface) dist.push_back(dk);
              if (outside) sum_outside += dk;
              if (work > budget) return false;
            }
          }
        }
        return true;
      };
      if (column_axis == 0) done = run(edt::ColumnSearch<0>{c, sq.data(), n, opt.spacing});
      if (column_axis == 1) done = run(edt::ColumnSearch<1>{c, sq.data(), n, opt.spacing});
      if (column_axis == 2) done = run(edt::ColumnSearch<2>{c, sq.data(), n, opt.spacing});
    }
    if (done) return;
    dist.clear();
    sum_outside = 0;
    std::unique_ptr<double[]> g(new double[n.size()]);
    if (column_axis == 0) {
      for (int64_t k = 0; k < n.size(); ++k) g[k] = sq[c[k]];
    } else {
      edt::column_pass(mask, feature, n, opt.spacing, g.get(), std::numeric_limits<int64_t>::max());
    }
    edt::envelope_passes(mask, n, opt.spacing, g.get(), query,
                         std::numeric_limits<int64_t>::max());
    for (int64_t k = 0; k < n.size(); ++k) {
      const uint8_t b = mask[k];
      if (!(b & query)) continue;
      const double dk = std::sqrt(g[k]);
      if (b & query_surface) dist.push_back(dk);
      if (!(b & other)) sum_outside += dk;
    }
  };
  double nsd = std::nan("");
  const auto task = [&](int64_t t) {
    if (t == 0) directed(kSurfM, kInA, kSurfA, kInM, a_to_m, sum_a);
    if (t == 1) directed(kSurfA, kInM, kSurfM, kInA, m_to_a, sum_m);
    if (t == 2 && want_nsd) nsd = surface_dice(mask, n, opt, area, surface_voxels);
  };
  if (n.size() >= kThreadedBox && max_threads() > 1) {
    parallel_for_dynamic(3, task);
  } else {
    for (int64_t t = 0; t < 3; ++t) task(t);
  }

  const auto mean = [](const std::vector<double>& v) {
    return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  };
  const double max_a = *std::max_element(a_to_m.begin(), a_to_m.end());
  const double max_m = *std::max_element(m_to_a.begin(), m_to_a.end());
  r.hd = std::max(max_a, max_m);
  r.assd = 0.5 * (mean(a_to_m) + mean(m_to_a));
  r.avd = std::max(sum_a / a, sum_m / m);
  if (opt.hd95 == Hd95::kPooled) {
    a_to_m.insert(a_to_m.end(), m_to_a.begin(), m_to_a.end());
    r.hd95 = quantile_linear(a_to_m, 0.95);
  } else {
    r.hd95 = std::max(quantile_linear(a_to_m, 0.95), quantile_linear(m_to_a, 0.95));
  }
  r.nsd = nsd;
  return r;
}

// Metrics of the given labels (every non-zero label of either map when `all_labels`), in the order
// given (sorted when all). Threads across labels when there are enough, else within each label.
template <class T>
std::vector<LabelResult> evaluate_pair(const T* pred, const T* ref, const Shape3& shape,
                                       const std::vector<int64_t>& labels, bool all_labels,
                                       const Options& opt) {
  const auto counts = scan_labels(pred, ref, shape);
  std::vector<int64_t> wanted;
  std::vector<LabelCounts> wanted_counts;
  if (all_labels) {
    for (const auto& [key, c] : counts) {
      wanted.push_back(key);
      wanted_counts.push_back(c);
    }
  } else {
    std::unordered_map<int64_t, LabelCounts> lookup(counts.begin(), counts.end());
    for (int64_t l : labels) {
      wanted.push_back(l);
      auto it = lookup.find(l);
      wanted_counts.push_back(it == lookup.end() ? LabelCounts{} : it->second);
    }
  }
  const auto area = surfel_area_table(opt.spacing);
  const int64_t nl = static_cast<int64_t>(wanted.size());
  std::vector<LabelResult> out(nl);
  const auto one = [&](int64_t k) {
    out[k] = label_metrics(pred, ref, shape, wanted[k], wanted_counts[k], opt, area);
  };
  if (nl > 1 && nl >= max_threads()) {
    // Largest boxes first, so that dynamic scheduling balances the threads.
    std::vector<int64_t> order(nl);
    std::iota(order.begin(), order.end(), 0);
    const auto volume = [&](int64_t k) {
      const Box3 b = merge(wanted_counts[k].pred_box, wanted_counts[k].ref_box);
      return b.empty() ? 0 : b.shape().size();
    };
    std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return volume(x) > volume(y); });
    parallel_for_dynamic(nl, [&](int64_t k) { one(order[k]); });
  } else {
    for (int64_t k = 0; k < nl; ++k) one(k);
  }
  return out;
}

}  // namespace fastseg::metrics
