"""Post-processing plans: per-class threshold and clean-up, chosen on validation data.

A plan is a JSON-serialisable dict::

    {"format": "fastseg-postprocessing", "version": 1, "metric": "dice",
     "connectivity": 26,
     "classes": {"1": {"threshold": null, "fill_holes": null, "keep_largest": true,
                       "min_volume_mm3": 0.0, "score_before": 0.81, "score_after": 0.84}}}

Applied in this order, class by class: ``threshold`` (probability maps only, see
:func:`labels_from_probabilities`), ``fill_holes`` (``null``, ``"2d"`` or ``"3d"``),
``keep_largest`` (keep the largest connected component), ``min_volume_mm3`` (remove components
smaller than that). Classes not in the plan are left as they are.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastseg.errors import InputError
from fastseg.postprocess._components import (
    check_connectivity,
    check_labels,
    keep_largest_component,
    remove_small_components,
)
from fastseg.postprocess._holes import check_hole_mode, fill_holes

PLAN_FORMAT = "fastseg-postprocessing"
PLAN_VERSION = 1


def default_class_plan() -> dict[str, Any]:
    """The class entry that changes nothing."""
    return {"threshold": None, "fill_holes": None, "keep_largest": False, "min_volume_mm3": 0.0}


def check_probabilities(probabilities: Any, name: str = "probabilities") -> np.ndarray:
    array = np.asarray(probabilities)
    if array.ndim != 4 or array.shape[0] < 2:
        raise InputError(
            f"{name}: expected class probabilities (K >= 2, z, y, x), got shape {array.shape}"
        )
    if array.dtype.kind != "f":
        raise InputError(f"{name}: expected floating-point probabilities, got dtype {array.dtype}")
    return array


def labels_from_probabilities(
    probabilities: np.ndarray, thresholds: Mapping[int, float | None] | None = None
) -> np.ndarray:
    """Label map ``(z, y, x)`` from class probabilities ``(K, z, y, x)`` with per-class thresholds.

    Each voxel's candidate is its most probable foreground class ``c`` (first on ties); it gets
    ``c`` when ``p_c >= thresholds[c]``, or, for classes without a threshold (None or absent),
    when ``p_c > p_0`` (background). With no thresholds this is exactly ``argmax`` over classes.
    The dtype is the smallest unsigned one that holds ``K - 1``.
    """
    probs = check_probabilities(probabilities)
    classes = probs.shape[0]
    dtype = np.uint8 if classes <= 256 else np.uint16 if classes <= 65536 else np.uint32
    foreground = probs[1:]
    best = np.argmax(foreground, axis=0)
    best_p = np.take_along_axis(foreground, best[None], axis=0)[0]
    candidate = (best + 1).astype(dtype)
    keep = best_p > probs[0]
    for c, t in (thresholds or {}).items():
        if t is None:
            continue
        c = int(c)
        if not 1 <= c < classes:
            raise InputError(f"thresholds: class {c} is not a foreground class of {classes}")
        if not 0.0 <= float(t) <= 1.0:
            raise InputError(f"thresholds: class {c}: expected a probability, got {t}")
        mine = candidate == c
        keep[mine] = best_p[mine] >= float(t)
    return np.where(keep, candidate, 0).astype(dtype)


def check_plan(plan: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """The plan's class entries keyed by int, validated; :class:`InputError` names what is wrong."""
    if not isinstance(plan, Mapping) or plan.get("format") != PLAN_FORMAT:
        raise InputError(f"plan: expected a dict with format {PLAN_FORMAT!r}")
    if plan.get("version") != PLAN_VERSION:
        raise InputError(
            f"plan: unsupported version {plan.get('version')!r}, expected {PLAN_VERSION}"
        )
    check_connectivity(int(plan.get("connectivity", 26)))
    entries = plan.get("classes")
    if not isinstance(entries, Mapping):
        raise InputError("plan: expected 'classes' to map class -> settings")
    out: dict[int, dict[str, Any]] = {}
    for key, entry in entries.items():
        try:
            c = int(key)
        except ValueError:
            raise InputError(f"plan: class {key!r} is not an integer") from None
        merged = {**default_class_plan(), **dict(entry)}
        if merged["fill_holes"] is not None:
            check_hole_mode(merged["fill_holes"])
        volume = float(merged["min_volume_mm3"])
        if not volume >= 0:
            raise InputError(f"plan: class {c}: min_volume_mm3 must be >= 0, got {volume}")
        t = merged["threshold"]
        if t is not None and not 0.0 <= float(t) <= 1.0:
            raise InputError(f"plan: class {c}: threshold must be in [0, 1], got {t}")
        out[c] = merged
    return out


def apply_postprocessing(
    prediction: Any, plan: Mapping[str, Any], spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> np.ndarray:
    """Apply ``plan`` to a label map ``(z, y, x)`` or class probabilities ``(K, z, y, x)``
    (thresholds are used only for probabilities). ``spacing`` ``(z, y, x)`` mm. Returns labels."""
    entries = check_plan(plan)
    connectivity = int(plan.get("connectivity", 26))
    array = np.asarray(prediction)
    if array.ndim == 4:
        labels = labels_from_probabilities(array, {c: e["threshold"] for c, e in entries.items()})
    else:
        labels = check_labels(array, "prediction").copy()
    for c in sorted(entries):
        if entries[c]["fill_holes"] is not None:
            labels = fill_holes(labels, [c], entries[c]["fill_holes"])
    largest = [c for c, e in entries.items() if e["keep_largest"]]
    if largest:
        labels = keep_largest_component(labels, largest, connectivity)
    small = {c: float(e["min_volume_mm3"]) for c, e in entries.items() if e["min_volume_mm3"] > 0}
    if small:
        labels = remove_small_components(labels, small, spacing, connectivity=connectivity)
    return labels


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, np.generic):
        return _json_value(value.item())
    return value


def save_plan(plan: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``plan`` as JSON (atomically); non-finite scores become ``null``."""
    from fastseg._atomic import write_text_atomic

    check_plan(plan)
    return write_text_atomic(path, json.dumps(_json_value(dict(plan)), indent=2) + "\n")


def load_plan(path: str | Path) -> dict[str, Any]:
    """Read and validate a plan written by :func:`save_plan`."""
    path = Path(path)
    try:
        plan = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read a post-processing plan ({exc})") from None
    try:
        check_plan(plan)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    return dict(plan)
