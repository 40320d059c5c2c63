"""Hole filling per class: background enclosed by a class becomes that class.

A hole of class ``c`` is a connected region of non-``c`` voxels that does not reach the array's
border (``scipy.ndimage.binary_fill_holes`` of ``labels == c``; regions connect through faces:
6-connectivity in 3D, 4-connectivity within a slice in 2D). Only the background (0) voxels of a
hole are set to ``c``; voxels of other classes inside it are kept. Classes are filled in
ascending order, each computed on the input map, and a voxel enclosed by several classes takes the
first. ``mode="2d"`` fills each axial (z) slice on its own, which also closes holes that open
through the slices above or below (common for tubular structures and thick-slice scans).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
from scipy import ndimage

from fastseg.errors import InputError
from fastseg.postprocess._components import check_labels, present_classes

HoleMode = Literal["2d", "3d"]
HOLE_MODES = ("2d", "3d")

_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def check_hole_mode(mode: object) -> HoleMode:
    if mode not in HOLE_MODES:
        raise InputError(f"fill_holes mode: expected one of {HOLE_MODES}, got {mode!r}")
    return mode  # type: ignore[return-value]


def _holes(mask: np.ndarray, mode: HoleMode) -> np.ndarray:
    """Voxels of ``~mask`` not connected to the border, computed in ``mask``'s bounding box."""
    import cc3d

    holes = np.zeros(mask.shape, dtype=bool)
    nonzero = np.nonzero(mask)
    if nonzero[0].size == 0:
        return holes
    lo = [int(a.min()) for a in nonzero]
    hi = [int(a.max()) + 1 for a in nonzero]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    # A one-voxel margin of background around the box joins everything outside into one region.
    margin = ((1, 1), (1, 1), (1, 1)) if mode == "3d" else ((0, 0), (1, 1), (1, 1))
    background = np.pad(~mask[box], margin, constant_values=True)
    if mode == "3d":
        ids = cc3d.connected_components(background, connectivity=6)
        inside = background & (ids != ids[0, 0, 0])
        inside = inside[1:-1, 1:-1, 1:-1]
    else:
        ids, _ = ndimage.label(background, structure=_IN_PLANE)
        outside = ids[:, 0, 0]
        inside = background & (ids != outside[:, None, None])
        inside = inside[:, 1:-1, 1:-1]
    holes[box] = inside
    return holes


def fill_holes(
    labels: np.ndarray, classes: Iterable[int] | None = None, mode: HoleMode = "3d"
) -> np.ndarray:
    """Set background voxels enclosed by a class to that class (see the module docstring).

    ``labels`` is a ``(z, y, x)`` integer map; ``classes`` the classes to fill (default all
    non-zero present); ``mode`` ``"3d"`` or ``"2d"`` (per axial slice). Returns a new array.
    """
    array = check_labels(labels)
    check_hole_mode(mode)
    out = array.copy()
    for c in present_classes(array, classes):
        holes = _holes(array == c, mode)
        out[holes & (out == 0)] = c
    return out
