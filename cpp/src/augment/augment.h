// Entry points of the augment op family: CPU (augment.cpp, OpenMP) and CUDA (augment_cuda.cu).
//
// Images are float32 batches (N, C, D, H, W) in C order, labels (N, D, H, W) of an integer type.
// Per-sample / per-(sample, channel) parameters are flat arrays indexed n or n * C + c; `active`
// (n * C bytes) says which (sample, channel) an intensity op touches. CUDA entry points take
// device pointers (parameters included) and a cudaStream_t as an integer, and launch one kernel
// per stage for the whole batch.
#pragma once
#include <cstdint>

#include "fastseg/augment_map.h"
#include "fastseg/shape.h"

namespace fastseg::augment {

enum LabelMode : int { LABEL_NEAREST = 0, LABEL_LINEAR = 1 };

struct SpatialArgs {
  int64_t n = 0, c = 0;
  Shape3 src, out;
  const VoxelMap* maps = nullptr;          // n
  const float* coef = nullptr;             // n * gz * gy * gx * 3, or null (no elastic part)
  const uint8_t* has_elastic = nullptr;    // n; with coef, which samples use it
  int gz = 0, gy = 0, gx = 0;
  int image_order = 1;                     // 1 trilinear, 3 cubic convolution
  int label_mode = LABEL_NEAREST;
  int border = 0;                          // Border
  float cval = 0.0f;
  int64_t label_cval = 0;
};

// Image-only (label null) or image and label; out arrays have the output shape.
template <class L>
void spatial_cpu(const SpatialArgs& a, const float* image, float* out_image, const L* label, L* out_label);
template <class L>
void spatial_cuda(const SpatialArgs& a, const float* image, float* out_image, const L* label, L* out_label,
                  uintptr_t stream);

// An image batch modified in place by an intensity op.
struct Batch {
  float* data = nullptr;
  int64_t n = 0, c = 0;
  Shape3 shape;
  int64_t volume() const { return shape.size(); }
  int64_t count() const { return n * c; }
};

// out = x + sigma * N(0, 1) from the counter-based generator (key per sample).
void noise_cpu(const Batch& b, const uint8_t* active, const float* sigma, const uint64_t* keys);
// Separable Gaussian, sigma (n * C * 3, voxels, (z, y, x)), SciPy's reflect border, truncate 4.
void blur_cpu(const Batch& b, const uint8_t* active, const float* sigma);
// out = x * mul + add.
void brightness_cpu(const Batch& b, const uint8_t* active, const float* mul, const float* add);
// out = (x - mean) * factor + mean, clipped to the input's [min, max] if preserve_range.
void contrast_cpu(const Batch& b, const uint8_t* active, const float* factor, bool preserve_range);
// Nearest downsampling to round(n * zoom) per axis, then trilinear upsampling (align_corners=False).
void lowres_cpu(const Batch& b, const uint8_t* active, const float* zoom);
// nnU-Net's gamma: optional inversion, min-max normalise, power, rescale, optional retained mean/std.
void gamma_cpu(const Batch& b, const uint8_t* active, const float* gamma, const uint8_t* invert,
               bool retain_stats);
// out = x * exp(polynomial of the given order in [-1, 1] coordinates), coef n * C * bias_terms(order).
void bias_field_cpu(const Batch& b, const uint8_t* active, const float* coef, int order);

// CUDA: parameters are device arrays; workspace sizes: blur and lowres n * C * volume floats,
// contrast and gamma n * C * 4 doubles.
void noise_cuda(const Batch& b, const uint8_t* active, const float* sigma, const uint64_t* keys,
                uintptr_t stream);
void blur_cuda(const Batch& b, const uint8_t* active, const float* sigma, float* workspace, uintptr_t stream);
void brightness_cuda(const Batch& b, const uint8_t* active, const float* mul, const float* add,
                     uintptr_t stream);
void contrast_cuda(const Batch& b, const uint8_t* active, const float* factor, bool preserve_range,
                   double* workspace, uintptr_t stream);
void lowres_cuda(const Batch& b, const uint8_t* active, const float* zoom, float* workspace, uintptr_t stream);
void gamma_cuda(const Batch& b, const uint8_t* active, const float* gamma, const uint8_t* invert,
                bool retain_stats, double* workspace, uintptr_t stream);
void bias_field_cuda(const Batch& b, const uint8_t* active, const float* coef, int order, uintptr_t stream);

}  // namespace fastseg::augment
