"""A minimal trainer: foreground-oversampled patches, AdamW with poly decay, a time budget.

Images are ``(C, z, y, x)`` float32 (preprocessed), labels ``(z, y, x)`` integers; batches
``(N, C, z, y, x)``. Importing this package imports torch.
"""

from __future__ import annotations

from fastseg.train._sampler import PatchSampler
from fastseg.train._trainer import TrainConfig, TrainResult, train

__all__ = ["PatchSampler", "TrainConfig", "TrainResult", "train"]
