"""Crop to the non-zero region and undo it; boxes are half-open ``((z0, z1), (y0, y1), (x0, x1))``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastseg.errors import InputError

Box = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def nonzero_box(*arrays: np.ndarray) -> Box:
    """Smallest box holding every non-zero voxel of any of ``arrays``.

    Each array is ``(z, y, x)`` or ``(C, z, y, x)`` (any channel counts); all share the spatial
    shape. When nothing is non-zero the box is the whole array (nnU-Net's rule: nothing is cut).
    """
    if not arrays:
        raise InputError("nonzero_box: expected at least one array")
    shape = np.shape(arrays[0])[-3:]
    mask = np.zeros(shape, dtype=bool)
    for i, array in enumerate(arrays):
        a = np.asarray(array)
        if a.ndim not in (3, 4) or a.shape[-3:] != shape:
            raise InputError(
                f"nonzero_box: array {i} has shape {a.shape}, expected (z, y, x) or (C, z, y, x) "
                f"with spatial shape {shape}"
            )
        nz = a != 0
        mask |= nz.any(axis=0) if a.ndim == 4 else nz
    box = []
    for axis in range(3):
        others = tuple(k for k in range(3) if k != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        if hits.size == 0:
            return full_box(shape)
        box.append((int(hits[0]), int(hits[-1]) + 1))
    return (box[0], box[1], box[2])


def full_box(shape: Sequence[int]) -> Box:
    """The box covering an array of spatial ``shape`` ``(z, y, x)``."""
    s = tuple(int(v) for v in shape[-3:])
    return ((0, s[0]), (0, s[1]), (0, s[2]))


def _check_box(box: Box, shape: Sequence[int]) -> None:
    if len(box) != 3 or any(
        not (0 <= lo < hi <= n) for (lo, hi), n in zip(box, shape[-3:], strict=True)
    ):
        raise InputError(f"box: {box} is not a non-empty box inside spatial shape {tuple(shape)}")


def crop(array: np.ndarray, box: Box) -> np.ndarray:
    """The part of ``array`` (``(z, y, x)`` or ``(C, z, y, x)``) inside ``box`` (a view)."""
    a = np.asarray(array)
    _check_box(box, a.shape)
    index: tuple[Any, ...] = (Ellipsis, *(slice(lo, hi) for lo, hi in box))
    return a[index]


def uncrop(array: np.ndarray, box: Box, shape: Sequence[int], fill: float = 0) -> np.ndarray:
    """Place ``array`` (the cropped part) back into a new array of spatial ``shape`` filled with
    ``fill``; leading (channel) axes are kept."""
    a = np.asarray(array)
    spatial_shape = tuple(int(v) for v in shape[-3:])
    _check_box(box, spatial_shape)
    expected = tuple(hi - lo for lo, hi in box)
    if a.shape[-3:] != expected:
        raise InputError(
            f"uncrop: array has spatial shape {a.shape[-3:]}, box {box} needs {expected}"
        )
    out = np.full(a.shape[:-3] + spatial_shape, fill, dtype=a.dtype)
    index: tuple[Any, ...] = (Ellipsis, *(slice(lo, hi) for lo, hi in box))
    out[index] = a
    return out
