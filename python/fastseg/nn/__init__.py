"""Networks and losses. Batches are ``(N, C, D, H, W)`` = ``(N, C, z, y, x)``.

Importing this package imports torch.
"""

from __future__ import annotations

from fastseg.nn._deep_supervision import DeepSupervisionLoss, deep_supervision_weights
from fastseg.nn._losses import DiceCELoss, DiceLoss
from fastseg.nn._spec import build_model, model_spec
from fastseg.nn._unet import UNet, UNet2D, UNet3D

__all__ = [
    "DeepSupervisionLoss",
    "DiceCELoss",
    "DiceLoss",
    "UNet",
    "UNet2D",
    "UNet3D",
    "build_model",
    "deep_supervision_weights",
    "model_spec",
]
