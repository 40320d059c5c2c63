"""Turn what users pass (arrays, Volumes, options) into what the native metrics take."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from fastseg.errors import GeometryMismatchError, InputError
from fastseg.io._labels import is_volume

HD95_CONVENTIONS = ("max_directed", "pooled")
_GEOMETRY_ATOL = 1e-3


def common_dtype(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both maps C-contiguous in one integer dtype that holds the values of either."""
    dtype = np.result_type(pred.dtype, ref.dtype).newbyteorder("=")
    if dtype.kind not in "iu" or dtype == np.uint64:
        dtype = np.dtype(np.int64)
    return np.ascontiguousarray(pred, dtype=dtype), np.ascontiguousarray(ref, dtype=dtype)


def spacing3(value: Any, name: str = "spacing") -> tuple[float, float, float]:
    """Spacing (z, y, x) in mm: three finite numbers > 0."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected 3 numbers (z, y, x) in mm, got {value!r}") from None
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(f"{name}: expected 3 finite numbers > 0 (z, y, x) in mm, got {value!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def pair_geometry(
    pred: Any, ref: Any, spacing: Any, pred_name: str = "pred", ref_name: str = "ref"
) -> tuple[float, float, float]:
    """The spacing to use for a pair, checking that Volumes share one grid.

    Spacing comes from the Volume(s) when given; an explicit ``spacing`` must then agree. Arrays
    alone use ``spacing`` or 1 mm.
    """
    volumes = [(n, v) for n, v in ((pred_name, pred), (ref_name, ref)) if is_volume(v)]
    if len(volumes) == 2:
        a, b = pred, ref
        problems = []
        if np.shape(a.array) != np.shape(b.array):
            problems.append(f"shape {np.shape(a.array)} vs {np.shape(b.array)}")
        if not np.allclose(a.spacing, b.spacing, rtol=0, atol=_GEOMETRY_ATOL):
            problems.append(f"spacing {tuple(a.spacing)} vs {tuple(b.spacing)} mm")
        for attr in ("origin", "direction"):
            va, vb = getattr(a, attr, None), getattr(b, attr, None)
            if (
                va is not None
                and vb is not None
                and not np.allclose(va, vb, rtol=0, atol=_GEOMETRY_ATOL)
            ):
                problems.append(f"{attr} {np.asarray(va).tolist()} vs {np.asarray(vb).tolist()}")
        if problems:
            raise GeometryMismatchError(
                f"{pred_name} and {ref_name} do not share a grid: " + "; ".join(problems)
            )
    if volumes:
        vol_spacing = spacing3(volumes[0][1].spacing, f"{volumes[0][0]}.spacing")
        if spacing is not None:
            given = spacing3(spacing)
            if not np.allclose(given, vol_spacing, rtol=0, atol=_GEOMETRY_ATOL):
                raise InputError(
                    f"spacing: {given} mm disagrees with {volumes[0][0]}.spacing {vol_spacing} mm; "
                    "leave spacing=None to use the Volume's"
                )
        return vol_spacing
    return (1.0, 1.0, 1.0) if spacing is None else spacing3(spacing)


def check_shapes(pred: np.ndarray, ref: np.ndarray, pred_name: str, ref_name: str) -> None:
    if pred.shape != ref.shape:
        raise GeometryMismatchError(
            f"{ref_name}: expected shape {pred.shape} (as {pred_name}), got {ref.shape}"
        )


def label_list(labels: Iterable[Any] | None) -> list[int] | None:
    """Requested labels as distinct non-zero ints in the order given, or None for all."""
    if labels is None:
        return None
    if isinstance(labels, (str, bytes)):
        raise InputError(f"labels: expected integers, got {labels!r}")
    if isinstance(labels, (int, np.integer)):
        labels = [labels]
    if not isinstance(labels, Iterable):
        raise InputError(f"labels: expected an iterable of integers, got {labels!r}")
    out: list[int] = []
    for value in np.atleast_1d(np.asarray(list(labels), dtype=object)).tolist():
        if isinstance(value, (bool, np.bool_)) or not float(value).is_integer():
            raise InputError(f"labels: expected integers, got {value!r}")
        label = int(value)
        if label == 0:
            raise InputError("labels: 0 is the background and has no metrics; pass non-zero labels")
        if label not in out:
            out.append(label)
    return out


def hd95_convention(value: str) -> str:
    if value not in HD95_CONVENTIONS:
        raise InputError(f"hd95: expected 'max_directed' or 'pooled', got {value!r}")
    return value


def tolerance(value: float | None) -> float:
    """NSD tolerance in mm; None → NaN (no nsd)."""
    if value is None:
        return math.nan
    try:
        tol = float(value)
    except (TypeError, ValueError):
        raise InputError(f"nsd_tolerance: expected a number of mm or None, got {value!r}") from None
    if not math.isfinite(tol) or tol < 0:
        raise InputError(f"nsd_tolerance: expected a finite number >= 0 mm, got {value!r}")
    return tol
