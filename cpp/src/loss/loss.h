// Entry points of the fused soft-Dice loss: CPU (loss.cpp, OpenMP) and CUDA (loss_cuda.cu).
//
// Logits are (N, C, V) in C order (V = the spatial voxels, z, y, x flattened); the target is an
// integer label map (N, V) or, with sigmoid, a multi-label mask (N, C, V) of bytes 0/1. The
// forward pass writes the five sums of fastseg/dice.h per (n, c), `sums` (N, C, kSums) float64;
// the backward pass takes their gradients (N, C, kGrads) float64 and writes dL/dlogits (N, C, V)
// in the logits' type. Both make one pass over the logits. Inputs are trusted (checked at the
// Python boundary), except the label range, which the CPU forward pass counts.
#pragma once
#include <cstdint>

#include "fastseg/dice_loss.h"

namespace fastseg::loss {

using dice::LossSpec;

struct DiceProblem {
  int64_t n = 0, c = 0, v = 0;
  bool sigmoid = false;       // false: softmax over C; true: sigmoid per channel
  bool with_ce = false;       // also the cross-entropy sums (forward only)
  bool mask = false;          // target is an (N, C, V) 0/1 mask instead of an (N, V) label map
  int label_offset = 0;       // label map: class c is label c + label_offset
};

// Scalar types at the CUDA boundary (the CPU entry points are templates).
enum class DType : int { f16, bf16, f32, f64, u8, i8, i16, i32, i64 };

// CPU: T float or double; L uint8_t, int8_t, int16_t, int32_t or int64_t (uint8_t for a mask).
// Deterministic: partial sums per fixed block of voxels, added in a fixed order, whatever the
// number of threads. Returns the number of labels outside [0, label_offset + C) (they count in no
// class), so that the caller can refuse them without another pass.
template <class T, class L>
int64_t dice_sums_cpu(const DiceProblem& p, const T* logits, const L* target, double* sums);
template <class T, class L>
void dice_backward_cpu(const DiceProblem& p, const T* logits, const L* target, const double* grads,
                       T* grad_logits);
// The fused loss's backward pass: the sums' gradients from `sums` (N, C, kSums), `weight` (C values
// or null), the options and dL/dloss `scale` (dice::loss_from_sums), then dice_backward_cpu.
template <class T, class L>
void dice_loss_backward_cpu(const DiceProblem& p, const LossSpec& spec, const T* logits, const L* target,
                            const double* sums, const double* weight, double scale, T* grad_logits);

// CUDA: device pointers; logits f16, bf16, f32 or f64 (accumulated in float, f64 in double);
// target u8, i8, i16, i32 or i64. `workspace` holds dice_workspace_doubles(p) doubles (per-tile
// partial sums, reduced in a fixed order, so the sums are deterministic too). Launched on `stream`.
int64_t dice_workspace_doubles(const DiceProblem& p);
void dice_sums_cuda(const DiceProblem& p, DType logits_type, const void* logits, DType target_type,
                    const void* target, double* workspace, double* sums, uintptr_t stream);
void dice_backward_cuda(const DiceProblem& p, DType logits_type, const void* logits, DType target_type,
                        const void* target, const double* grads, void* grad_logits, uintptr_t stream);

// The fused loss on the device: `spec`, `sums` (N, C, kSums) and `weight` (C values or null) as in
// dice::loss_from_sums; nothing is read back to the host. Finalize: one single-thread launch writes the
// loss to `loss` (float64 if loss_double, else float32). Backward: two launches, one thread per sample
// writing dL/dloss (read at `grad_loss`, float64 if grad_double, else float32) times the loss's
// gradients of the sums into `grads` (N, C, kGrads doubles of workspace), then dice_backward_cuda.
void dice_finalize_cuda(const LossSpec& spec, const double* sums, const double* weight, void* loss,
                        bool loss_double, uintptr_t stream);
void dice_loss_backward_cuda(const DiceProblem& p, const LossSpec& spec, DType logits_type, const void* logits,
                             DType target_type, const void* target, const double* sums, const double* weight,
                             const void* grad_loss, bool grad_double, double* grads, void* grad_logits,
                             uintptr_t stream);

}  // namespace fastseg::loss
