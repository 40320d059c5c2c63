"""Augmentation for 3D segmentation: spatial steps fused into one resampling, intensity steps after.

Images are (C, z, y, x) or batches (N, C, z, y, x), labels (z, y, x) or (N, z, y, x); NumPy arrays
run on the CPU (OpenMP), CUDA tensors on the GPU, with the same results up to float rounding.

>>> pipeline = Pipeline(default_config(), patch_size=(96, 96, 96))
>>> image, label = pipeline(image, label, seed=0, spacing=(1.5, 0.8, 0.8))  # doctest: +SKIP
"""

from __future__ import annotations

from fastseg.augment._config import default_config, step_names
from fastseg.augment._params import IntensityParams, SampleParams, SpatialParams
from fastseg.augment._pipeline import Pipeline
from fastseg.augment._preview import save_preview
from fastseg.augment._spatial import compile_maps, rotation_matrix

__all__ = [
    "IntensityParams",
    "Pipeline",
    "SampleParams",
    "SpatialParams",
    "compile_maps",
    "default_config",
    "rotation_matrix",
    "save_preview",
    "step_names",
]
