"""Label maps from any reader: integer arrays ``(z, y, x)``, whatever dtype the file stored."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastseg.errors import InputError


def is_volume(x: Any) -> bool:
    """Duck-typed ``fastseg.io.Volume``: has ``.array`` and ``.spacing``."""
    return hasattr(x, "array") and hasattr(x, "spacing") and not isinstance(x, np.ndarray)


def label_map(x: Any, name: str) -> np.ndarray:
    """A (z, y, x) integer label map from an array or Volume (bool → uint8, integer-valued float →
    int64); not necessarily contiguous. ``name`` is used in error messages."""
    arr = np.asarray(x.array if is_volume(x) else x)
    if arr.ndim != 3:
        raise InputError(f"{name}: expected a 3-d (z, y, x) label map, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind == "b":
        return arr.view(np.uint8)
    if kind in "iu":
        if arr.dtype == np.uint64:
            if arr.size and int(arr.max()) > np.iinfo(np.int64).max:
                raise InputError(
                    f"{name}: label values above {np.iinfo(np.int64).max} are not supported"
                )
            return arr.astype(np.int64)
        return arr
    if kind == "f":
        if not np.all(np.isfinite(arr)):
            raise InputError(f"{name}: expected a label map, got non-finite values (NaN or inf)")
        if not np.array_equal(arr, np.round(arr)):
            bad = arr[arr != np.round(arr)].ravel()[:3].tolist()
            raise InputError(
                f"{name}: expected an integer-valued label map, got a {arr.dtype} array with "
                f"non-integer values such as {bad} (threshold or round it first)"
            )
        limit = float(np.iinfo(np.int64).max)
        if arr.size and float(np.abs(arr).max()) >= limit:
            raise InputError(f"{name}: label values must fit in int64")
        return arr.astype(np.int64)
    raise InputError(f"{name}: expected an integer, bool or float label map, got dtype {arr.dtype}")
