// The fused soft-Dice (+ cross-entropy) loss and its gradients as functions of the per-(sample,
// class) sums of fastseg/dice.h: one routine for the CPU path (cpp/src/loss/loss.cpp) and the CUDA
// finalize and gradient kernels (cpp/src/loss/loss_cuda.cu).
//
// With s = the sums (N, C, kSums), D_c = (squared ? Q : P) + T + smooth_dr and
// dice = (2 I + smooth_nr) / D per group (each sample, or with batch_dice the sums over the batch)
// and class, K = the classes in the loss (class 0 dropped unless include_background) and w their
// weights (1 without weights):
//     dice_loss = mean over groups of Σ_{c∈K} w_c (1 - dice_c) / Σ_{c∈K} w_c
//     ce        = Σ_{n,c} w_c E_nc / (N C voxels)      (sigmoid: binary CE, mean over voxels, channels)
//               = Σ_{n,c} w_c E_nc / Σ_{n,c} w_c T_nc  (softmax: F.cross_entropy's weighted mean)
//     loss      = dice_weight dice_loss + ce_weight ce  (ce only with with_ce)
// which is fastseg.nn._fused_dice.dice_from_sums and ce_from_sums (the readable reference the tests
// compare against). The gradients per (n, c), in float64 and scaled by dL/dloss:
//     dI = -2 a_c / D,   d(squared ? Q : P) = a_c (2 I + smooth_nr) / D²,   a_c = dice_weight w_c / (Σw groups)
//     dE = ce_weight w_c / (N C voxels)   or   ce_weight w_c / Σ w T
// (with batch_dice, every sample of the group gets the group's gradient: d(group sum)/d(sample sum) = 1).
#pragma once
#include <cstdint>

#include "fastseg/dice.h"
#include "fastseg/portability.h"

namespace fastseg::dice {

// The options of one loss evaluation; n, c and voxels are the shape of the logits (N, C, voxels).
struct LossSpec {
  int64_t n = 0, c = 0, voxels = 0;
  bool squared = true;
  bool include_background = true;
  bool batch_dice = false;
  bool sigmoid = false;
  bool with_ce = false;
  double smooth_nr = 1e-5, smooth_dr = 1e-5;
  double dice_weight = 1.0, ce_weight = 0.0;
};

// The loss from `sums` (N, C, kSums) and `weight` (C values, or null for 1). If `grads` is not null
// it receives scale * dLoss/d(I, P, Q, E) (kGrads per class, layout of Grad), for sample `only`
// alone (C * kGrads values) or, with only < 0, for every sample (N * C * kGrads values).
FASTSEG_HD inline double loss_from_sums(const LossSpec& s, const double* sums, const double* weight, double scale,
                                        int64_t only, double* grads) {
  const int64_t start = s.include_background ? 0 : 1;
  const int denominator = s.squared ? kQ : kP;
  const int grad_denominator = s.squared ? kGradQ : kGradP;
  auto w = [&](int64_t c) { return weight != nullptr ? weight[c] : 1.0; };
  auto at = [&](int64_t n, int64_t c, int k) { return sums[(n * s.c + c) * kSums + k]; };
  double weight_sum = 0.0;
  for (int64_t c = start; c < s.c; ++c) weight_sum += w(c);
  const int64_t groups = s.batch_dice ? 1 : s.n;
  // Numerator 2 I + smooth_nr and denominator (P or Q) + T + smooth_dr of class c for the group of
  // sample n (the sample itself, or the whole batch with batch_dice).
  auto dice_terms = [&](int64_t n, int64_t c, double& num, double& den) {
    double inter = 0.0, pred = 0.0, truth = 0.0;
    for (int64_t m = s.batch_dice ? 0 : n; m < (s.batch_dice ? s.n : n + 1); ++m) {
      inter += at(m, c, kInter);
      pred += at(m, c, denominator);
      truth += at(m, c, kT);
    }
    num = 2.0 * inter + s.smooth_nr;
    den = pred + truth + s.smooth_dr;
  };
  double dice_total = 0.0;
  for (int64_t g = 0; g < groups; ++g) {
    double acc = 0.0;
    for (int64_t c = start; c < s.c; ++c) {
      double num = 0.0, den = 0.0;
      dice_terms(g, c, num, den);
      acc += w(c) * (1.0 - num / den);
    }
    dice_total += acc / weight_sum;
  }
  double loss = s.dice_weight * (dice_total / static_cast<double>(groups));
  // Cross-entropy term.
  double ce_denominator = 0.0;
  if (s.with_ce) {
    double ce = 0.0;
    for (int64_t n = 0; n < s.n; ++n) {
      for (int64_t c = 0; c < s.c; ++c) {
        ce += at(n, c, kCE) * w(c);
        ce_denominator += at(n, c, kT) * w(c);
      }
    }
    if (s.sigmoid) ce_denominator = static_cast<double>(s.n * s.c * s.voxels);
    loss += s.ce_weight * (ce / ce_denominator);
  }
  if (grads == nullptr) return loss;
  const int64_t first = only < 0 ? 0 : only, last = only < 0 ? s.n : only + 1;
  const double dice_scale = scale * s.dice_weight / (weight_sum * static_cast<double>(groups));
  for (int64_t n = first; n < last; ++n) {
    double* gn = grads + (n - first) * s.c * kGrads;
    for (int64_t c = 0; c < s.c; ++c) {
      double* gc = gn + c * kGrads;
      gc[kGradInter] = gc[kGradP] = gc[kGradQ] = gc[kGradCE] = 0.0;
      if (c >= start) {
        double num = 0.0, den = 0.0;
        dice_terms(n, c, num, den);
        const double a = dice_scale * w(c);
        gc[kGradInter] = -2.0 * a / den;
        gc[grad_denominator] = a * num / (den * den);
      }
      if (s.with_ce) gc[kGradCE] = scale * s.ce_weight * w(c) / ce_denominator;
    }
  }
  return loss;
}

}  // namespace fastseg::dice
