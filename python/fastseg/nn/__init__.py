"""Networks and losses. Batches are ``(N, C, D, H, W)`` = ``(N, C, z, y, x)``.

Importing this package imports torch.
"""

from __future__ import annotations

from fastseg.nn._losses import DiceCELoss, DiceLoss
from fastseg.nn._unet import UNet3D

__all__ = ["DiceCELoss", "DiceLoss", "UNet3D"]
