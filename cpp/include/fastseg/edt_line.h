// One lower-envelope step of the exact distance transform on one line (edt.h explains the
// transform), shared by the CPU transform and the CUDA kernel (cpp/src/metrics/metrics_cuda.cu):
// raw pointers, no allocation, nothing the device cannot run.
#pragma once
#include <cmath>
#include <cstdint>

#include "fastseg/portability.h"

namespace fastseg::edt {

// In place along a line: d[i * stride] = min_q f(q) + (s (i - q))^2 over the n samples, f(q) =
// d[q * stride] on entry (Felzenszwalb & Huttenlocher's DT(f) with the spacing s folded into the
// parabola intersections). Infinite samples take no part; an all-infinite line stays so. When
// `need` is non-null only positions with need[i * need_stride] != 0 are written.
// Scratch: fv, gv and v of n entries (value, f(q) + s^2 q^2 and position of each envelope
// parabola), zn and zd of n + 1 (where each parabola starts, as the fraction zn / zd, zd > 0,
// compared by cross multiplication to avoid a division per sample).
FASTSEG_HD inline void envelope_line(double* d, int64_t n, int64_t stride, double s, double* fv,
                                     double* gv, double* zn, double* zd, int64_t* v,
                                     const uint8_t* need, int64_t need_stride) {
  const double inf = static_cast<double>(INFINITY);
  const double s2 = s * s;
  // zn[0] / zd[0] = -inf: the bottom parabola is never popped; zn[top + 1] = +inf ends the scan.
  int64_t k = -1;
  for (int64_t q = 0; q < n; ++q) {
    const double fq = d[q * stride];
    if (fq == inf) continue;
    const double dq = static_cast<double>(q);
    const double gq = fq + s2 * dq * dq;
    if (k < 0) {
      k = 0;
      v[0] = q;
      fv[0] = fq;
      gv[0] = gq;
      zn[0] = -inf;
      zd[0] = 1.0;
      continue;
    }
    double num, den;
    for (;;) {
      num = gq - gv[k];
      den = 2.0 * s2 * static_cast<double>(q - v[k]);
      // Pop the top parabola when the new one undercuts it before its own start zn[k] / zd[k].
      if (num * zd[k] <= zn[k] * den) {
        --k;
      } else {
        break;
      }
    }
    ++k;
    v[k] = q;
    fv[k] = fq;
    gv[k] = gq;
    zn[k] = num;
    zd[k] = den;
  }
  if (k < 0) return;  // no finite sample: the line stays infinite
  zn[k + 1] = inf;
  zd[k + 1] = 1.0;
  k = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double di = static_cast<double>(i);
    while (zn[k + 1] < di * zd[k + 1]) ++k;
    if (need != nullptr && need[i * need_stride] == 0) continue;
    const double t = s * static_cast<double>(i - v[k]);
    d[i * stride] = fv[k] + t * t;
  }
}

}  // namespace fastseg::edt
