"""Connected-component clean-up per class (cc3d); removed voxels become background (0)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, cast

import numpy as np

from fastseg.errors import InputError

_CONNECTIVITY = (6, 18, 26)


def check_labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """``labels`` as a ``(z, y, x)`` integer (or bool) array, else :class:`InputError`."""
    array = np.asarray(labels)
    if array.ndim != 3:
        raise InputError(f"{name}: expected a (z, y, x) label map, got shape {array.shape}")
    if array.dtype.kind not in "iub":
        raise InputError(f"{name}: expected integer labels, got dtype {array.dtype}")
    return array


def check_connectivity(connectivity: int) -> int:
    if connectivity not in _CONNECTIVITY:
        raise InputError(f"connectivity: expected one of {_CONNECTIVITY}, got {connectivity}")
    return connectivity


def _check(labels: np.ndarray, connectivity: int) -> np.ndarray:
    array = check_labels(labels)
    check_connectivity(connectivity)
    return array


def present_classes(array: np.ndarray, classes: Iterable[int] | None) -> list[int]:
    """The non-zero classes present in ``array`` (of ``classes`` when given), ascending."""
    present = [int(c) for c in np.unique(array) if c != 0]
    if classes is None:
        return present
    return sorted({int(c) for c in classes if int(c) != 0 and int(c) in present})


def _components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """Component ids ``(z, y, x)`` (0 outside ``mask``) and the voxel count of each id."""
    import cc3d

    if sum(n > 1 for n in mask.shape) <= 1:
        # On a line every connectivity is face connectivity; cc3d 4.1 fails on 1-d shapes with 26.
        connectivity = 6
    ids = cc3d.connected_components(mask, connectivity=cast(Literal[6, 18, 26], connectivity))
    counts = np.bincount(ids.ravel())
    return ids, counts


def keep_largest_component(
    labels: np.ndarray, classes: Iterable[int] | None = None, connectivity: int = 26
) -> np.ndarray:
    """Keep only the largest connected component of each class (all non-zero classes if None).

    Ties keep the component whose first voxel comes first in C order. Returns a new array.
    """
    array = _check(labels, connectivity)
    out = array.copy()
    for c in present_classes(array, classes):
        ids, counts = _components(array == c, connectivity)
        if counts.size <= 2:
            continue
        largest = int(np.argmax(counts[1:])) + 1
        out[(ids != largest) & (array == c)] = 0
    return out


def remove_small_components(
    labels: np.ndarray,
    min_volume_mm3: float | Mapping[int, float],
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    classes: Iterable[int] | None = None,
    connectivity: int = 26,
) -> np.ndarray:
    """Set components smaller than ``min_volume_mm3`` to background, per class.

    ``spacing`` is ``(z, y, x)`` in mm, so a voxel has volume ``sz * sy * sx`` mm³; a component
    of ``n`` voxels is kept when ``n * voxel volume >= min_volume_mm3``. A mapping gives the
    threshold per class (classes not in it are left alone). Returns a new array.
    """
    array = _check(labels, connectivity)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise InputError(
            f"spacing: expected three positive spacings (z, y, x) in mm, got {spacing}"
        )
    if isinstance(min_volume_mm3, Mapping):
        thresholds = {int(c): float(v) for c, v in min_volume_mm3.items()}
        if classes is None:
            classes = thresholds
    else:
        thresholds = {c: float(min_volume_mm3) for c in present_classes(array, classes)}
    limits = min_volume_mm3.values() if isinstance(min_volume_mm3, Mapping) else [min_volume_mm3]
    if any(not float(v) >= 0 for v in limits):
        raise InputError(f"min_volume_mm3: expected non-negative volumes, got {min_volume_mm3}")
    voxel = spacing[0] * spacing[1] * spacing[2]
    out = array.copy()
    for c in present_classes(array, classes):
        if c not in thresholds:
            continue
        ids, counts = _components(array == c, connectivity)
        small = counts * voxel < thresholds[c]
        small[0] = False
        out[small[ids]] = 0
    return out
