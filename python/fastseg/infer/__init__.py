"""Sliding-window inference with Gaussian importance weighting (nnU-Net's scheme).

Images are ``(C, z, y, x)`` (or ``(z, y, x)``), patch sizes ``(z, y, x)`` voxels, model batches
``(N, C, z, y, x)``. Importing this package imports torch.
"""

from __future__ import annotations

from fastseg.infer._sliding_window import (
    gaussian_importance_map,
    sliding_window_inference,
    window_starts,
)

__all__ = ["gaussian_importance_map", "sliding_window_inference", "window_starts"]
