// A thin parallel-for over OpenMP, so kernels state what is parallel without pragmas everywhere.
#pragma once
#include <cstdint>
#include <omp.h>

namespace fastseg {

inline int max_threads() { return omp_get_max_threads(); }

// Calls fn(i) for i in [0, n), split statically over the OpenMP threads. Falls back to one
// thread when the work is too small to pay for the fork (n < min_parallel).
template <class Fn>
void parallel_for(int64_t n, Fn&& fn, int64_t min_parallel = 1) {
  if (n < min_parallel || omp_in_parallel()) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) fn(i);
}

// Same, with dynamic scheduling for items of uneven cost (e.g. one item per mask pair).
template <class Fn>
void parallel_for_dynamic(int64_t n, Fn&& fn) {
  if (omp_in_parallel()) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) fn(i);
}

}  // namespace fastseg
