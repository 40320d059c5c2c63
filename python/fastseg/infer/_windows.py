"""Window placement and importance maps for sliding-window inference, in two conventions.

``scheme="nnunet"`` (nnU-Net v2): windows spread evenly between the first and last position with
a step of at most ``patch * (1 - overlap)``; Gaussian ``exp(-d² / 2σ²)`` with ``σ = patch *
sigma_scale`` centred on voxel ``patch // 2``, float32, peak 1.

``scheme="monai"`` (MONAI's ``sliding_window_inference``, ``mode="gaussian"``): windows every
``int(patch * (1 - overlap))`` voxels, the last one moved back to end at the edge; Gaussian centred
on ``(patch - 1) / 2`` (between two voxels for even sizes), clamped below at
``max(min, 1e-3)``. The two schemes differ for even patch sizes (centre), wherever the product of
the three axes falls below 1e-3 (the window's corners), and in the window positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from fastseg.errors import InputError

Scheme = Literal["nnunet", "monai"]
SCHEMES = ("nnunet", "monai")


def check_scheme(scheme: str) -> Scheme:
    if scheme not in SCHEMES:
        raise InputError(f"scheme: expected one of {SCHEMES}, got {scheme!r}")
    return scheme  # type: ignore[return-value]


def window_starts(
    size: int, patch: int, overlap: float = 0.5, scheme: Scheme = "nnunet"
) -> list[int]:
    """Start indices along one axis of length ``size`` (>= ``patch``) for windows of ``patch``.

    ``"nnunet"``: nnU-Net's ``compute_steps_for_sliding_window`` (the step is at most
    ``patch * (1 - overlap)``, windows spread evenly between 0 and ``size - patch``).
    ``"monai"``: MONAI's ``dense_patch_slices`` (step ``int(patch * (1 - overlap))``, at least 1,
    the last window clamped to the edge).
    """
    check_scheme(scheme)
    if patch < 1 or size < patch:
        raise InputError(f"window_starts: need 1 <= patch <= size, got patch={patch}, size={size}")
    if not 0.0 <= overlap < 1.0:
        raise InputError(f"overlap: expected a fraction in [0, 1), got {overlap}")
    if scheme == "monai":
        if size == patch:
            return [0]
        interval = max(int(patch * (1.0 - overlap)), 1)
        count = next(d for d in range(size) if d * interval + patch >= size) + 1
        return [min(i * interval, size - patch) for i in range(count)]
    target_step = patch * (1.0 - overlap)
    count = math.ceil((size - patch) / target_step) + 1
    if count == 1:
        return [0]
    step = (size - patch) / (count - 1)
    return [round(step * i) for i in range(count)]


def gaussian_importance_map(
    patch_size: Sequence[int], sigma_scale: float = 1.0 / 8, scheme: Scheme = "nnunet"
) -> np.ndarray:
    """Importance weights of a window, float32 array of shape ``patch_size`` ``(z, y, x)``.

    ``"nnunet"``: ``exp(-Σ (i_k - p_k//2)² / (2 σ_k²))``, ``σ_k = p_k * sigma_scale``, peak 1;
    equals nnU-Net's map (a unit impulse at ``p//2`` smoothed by ``scipy.ndimage.gaussian_filter``,
    scaled to peak 1) wherever the filter's truncation does not cut it; it is never zero.
    ``"monai"``: MONAI's ``compute_importance_map(mode="gaussian")``: centre ``(p_k - 1)/2``,
    computed in float32, clamped below at ``max(min, 1e-3)``.
    """
    check_scheme(scheme)
    patch = [int(p) for p in patch_size]
    if not patch or min(patch) < 1 or not sigma_scale > 0:
        raise InputError(
            f"gaussian_importance_map: expected positive sizes and sigma_scale, got {patch_size}, {sigma_scale}"
        )
    if scheme == "monai":
        weights32 = np.ones((), dtype=np.float32)
        for p in patch:
            d = np.arange(p, dtype=np.float32) - np.float32((p - 1) / 2.0)
            sigma = np.float32(p * sigma_scale)
            axis = np.exp(d**2 / (np.float32(-2.0) * sigma**2)).astype(np.float32)
            weights32 = np.multiply.outer(weights32, axis).astype(np.float32)
        return np.maximum(weights32, np.float32(max(float(weights32.min()), 1e-3)))
    weights = np.ones((), dtype=np.float64)
    for p in patch:
        d = np.arange(p, dtype=np.float64) - p // 2
        weights = np.multiply.outer(weights, np.exp(-(d**2) / (2.0 * (p * sigma_scale) ** 2)))
    weights = weights.astype(np.float32)
    positive = weights > 0
    if not positive.all():
        weights[~positive] = weights[positive].min()
    return weights
