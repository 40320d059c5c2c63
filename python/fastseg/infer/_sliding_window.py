"""Sliding-window inference over a whole volume, as nnU-Net v2 does it.

Windows of ``patch_size`` are placed so that neighbours overlap by at least ``overlap`` of the
patch and the first and last windows touch the volume's edges; each window's logits are weighted by
a Gaussian importance map (σ = patch/8, peak 1 at the patch centre), summed, and divided by the
summed weights. Volumes smaller than the patch are padded (centred) with ``pad_value`` and the
result is cropped back.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Literal, overload

import numpy as np
import torch

from fastseg.errors import InputError


def window_starts(size: int, patch: int, overlap: float = 0.5) -> list[int]:
    """Start indices along one axis of length ``size`` (>= ``patch``) for windows of ``patch``.

    nnU-Net's ``compute_steps_for_sliding_window``: the step is at most ``patch * (1 - overlap)``,
    the windows are spread evenly between 0 and ``size - patch``.
    """
    if patch < 1 or size < patch:
        raise InputError(f"window_starts: need 1 <= patch <= size, got patch={patch}, size={size}")
    if not 0.0 <= overlap < 1.0:
        raise InputError(f"overlap: expected a fraction in [0, 1), got {overlap}")
    target_step = patch * (1.0 - overlap)
    count = math.ceil((size - patch) / target_step) + 1
    if count == 1:
        return [0]
    step = (size - patch) / (count - 1)
    return [round(step * i) for i in range(count)]


def gaussian_importance_map(patch_size: Sequence[int], sigma_scale: float = 1.0 / 8) -> np.ndarray:
    """``exp(-Σ (i_k - p_k//2)² / (2 σ_k²))`` with ``σ_k = p_k * sigma_scale``; float32, peak 1.

    Equals nnU-Net's map (a unit impulse at ``p//2`` smoothed by ``scipy.ndimage.gaussian_filter``,
    scaled to peak 1) wherever the filter's truncation does not cut it; it is never zero.
    """
    patch = [int(p) for p in patch_size]
    if not patch or min(patch) < 1 or not sigma_scale > 0:
        raise InputError(
            f"gaussian_importance_map: expected positive sizes and sigma_scale, got {patch_size}, {sigma_scale}"
        )
    weights = np.ones((), dtype=np.float64)
    for p in patch:
        d = np.arange(p, dtype=np.float64) - p // 2
        weights = np.multiply.outer(weights, np.exp(-(d**2) / (2.0 * (p * sigma_scale) ** 2)))
    weights = weights.astype(np.float32)
    positive = weights > 0
    if not positive.all():
        weights[~positive] = weights[positive].min()
    return weights


@overload
def sliding_window_inference(
    predictor: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    patch_size: Sequence[int],
    overlap: float = ...,
    *,
    batch_size: int = ...,
    gaussian: bool = ...,
    pad_value: float = ...,
    return_probabilities: Literal[False] = ...,
    device: str | torch.device | None = ...,
) -> np.ndarray: ...


@overload
def sliding_window_inference(
    predictor: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    patch_size: Sequence[int],
    overlap: float = ...,
    *,
    batch_size: int = ...,
    gaussian: bool = ...,
    pad_value: float = ...,
    return_probabilities: Literal[True],
    device: str | torch.device | None = ...,
) -> tuple[np.ndarray, np.ndarray]: ...


@torch.no_grad()
def sliding_window_inference(
    predictor: Callable[[torch.Tensor], torch.Tensor],
    image: np.ndarray,
    patch_size: Sequence[int],
    overlap: float = 0.5,
    *,
    batch_size: int = 1,
    gaussian: bool = True,
    pad_value: float = 0.0,
    return_probabilities: bool = False,
    device: str | torch.device | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Label map ``(z, y, x)`` (int64, argmax over classes) of ``image`` ``(C, z, y, x)``.

    ``predictor`` maps ``(N, C, pz, py, px)`` to logits ``(N, K, pz, py, px)`` (a model in eval
    mode). ``gaussian=False`` weights every voxel of a window equally. With
    ``return_probabilities=True`` also returns the softmax of the averaged logits, ``(K, z, y, x)``
    float32. ``device`` is where the windows are run and the logits accumulated (default CPU).
    """
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise InputError(f"image: expected (C, z, y, x) or (z, y, x), got shape {np.shape(image)}")
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != 3 or min(patch) < 1:
        raise InputError(f"patch_size: expected three positive sizes (z, y, x), got {patch_size}")
    if batch_size < 1:
        raise InputError(f"batch_size: expected >= 1, got {batch_size}")
    dev = torch.device(device) if device is not None else torch.device("cpu")

    size = array.shape[1:]
    short = [max(p - n, 0) for p, n in zip(patch, size, strict=True)]
    before = [s // 2 for s in short]
    if any(short):
        widths = [(0, 0)] + [(b, s - b) for b, s in zip(before, short, strict=True)]
        array = np.pad(array, widths, constant_values=pad_value)
    padded = array.shape[1:]
    starts = list(
        itertools.product(
            *(window_starts(n, p, overlap) for n, p in zip(padded, patch, strict=True))
        )
    )
    weight = torch.from_numpy(
        gaussian_importance_map(patch) if gaussian else np.ones(patch, dtype=np.float32)
    ).to(dev)
    source = torch.from_numpy(array)
    logits: torch.Tensor | None = None
    norm = torch.zeros(padded, dtype=torch.float32, device=dev)
    for first in range(0, len(starts), batch_size):
        chunk = starts[first : first + batch_size]
        regions = [
            tuple(slice(s, s + p) for s, p in zip(start, patch, strict=True)) for start in chunk
        ]
        batch = torch.stack([source[(slice(None), *r)] for r in regions]).to(dev)
        out = predictor(batch)
        if out.dim() != 5 or out.shape[0] != len(chunk) or tuple(out.shape[2:]) != patch:
            raise InputError(
                f"predictor: expected logits ({len(chunk)}, K, {', '.join(map(str, patch))}), "
                f"got shape {tuple(out.shape)}"
            )
        if logits is None:
            logits = torch.zeros((out.shape[1], *padded), dtype=torch.float32, device=dev)
        for b, r in enumerate(regions):
            logits[(slice(None), *r)] += out[b].float() * weight
            norm[r] += weight
    assert logits is not None
    logits /= norm
    crop = tuple(slice(b, b + n) for b, n in zip(before, size, strict=True))
    logits = logits[(slice(None), *crop)]
    labels = logits.argmax(dim=0).cpu().numpy()
    if return_probabilities:
        return labels, torch.softmax(logits, dim=0).cpu().numpy()
    return labels
