"""Sliding-window inference with Gaussian importance weighting, mirror test-time augmentation
and bounded memory (z-slab accumulation).

Images are ``(C, z, y, x)`` (or ``(z, y, x)``), patch sizes ``(z, y, x)`` voxels, model batches
``(N, C, z, y, x)``. Importing this package imports torch.
"""

from __future__ import annotations

from fastseg.infer._mirror import mirror_combinations, mirror_tta
from fastseg.infer._predict import PredictReport, predict
from fastseg.infer._sliding_window import (
    AUTO_WHOLE_VOLUME_BYTES,
    FLOAT16_MIN_WEIGHT,
    label_dtype,
    sliding_window_inference,
    sliding_window_logits,
)
from fastseg.infer._windows import SCHEMES, gaussian_importance_map, window_starts

__all__ = [
    "AUTO_WHOLE_VOLUME_BYTES",
    "FLOAT16_MIN_WEIGHT",
    "SCHEMES",
    "PredictReport",
    "gaussian_importance_map",
    "label_dtype",
    "mirror_combinations",
    "mirror_tta",
    "predict",
    "sliding_window_inference",
    "sliding_window_logits",
    "window_starts",
]
