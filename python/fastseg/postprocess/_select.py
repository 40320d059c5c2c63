"""Choose per class the threshold and clean-up that maximise a metric on validation cases.

As nnU-Net does it: start from the raw predictions (argmax), then in stages — threshold
(probability maps only), hole filling, keep-largest-component, small-component removal — try
each option class by class on every validation case, and keep an option only when it improves the
class's mean metric over the cases. Each stage starts from the choices of the previous ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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
from fastseg.postprocess._plan import (
    PLAN_FORMAT,
    PLAN_VERSION,
    check_probabilities,
    default_class_plan,
)

#: Metrics a plan can optimise, and whether higher is better.
HIGHER_IS_BETTER = {
    "dice": True,
    "jaccard": True,
    "vs": True,
    "nsd": True,
    "hd": False,
    "hd95": False,
    "assd": False,
    "avd": False,
}
DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MIN_VOLUME_FRACTIONS = (0.05, 0.1, 0.25, 0.5)


@dataclass
class _Case:
    labels: np.ndarray
    reference: np.ndarray
    spacing: tuple[float, float, float]
    best: np.ndarray | None = None  # most probable foreground class, per voxel
    best_p: np.ndarray | None = None  # its probability


def _overlap_metric(metric: str, pred: np.ndarray, ref: np.ndarray) -> float:
    a, m = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    if a + m == 0:
        return 1.0
    both = int(np.count_nonzero(pred & ref))
    if metric == "dice":
        return 2.0 * both / (a + m)
    if metric == "jaccard":
        return both / (a + m - both)
    return 1.0 - abs(a - m) / (a + m)


def _scorer(metric: str, nsd_tolerance: float) -> Callable[[_Case, np.ndarray, int], float]:
    if metric in ("dice", "jaccard", "vs"):
        # Same definitions as fastseg.metrics.evaluate, from voxel counts alone.
        return lambda case, labels, c: _overlap_metric(metric, labels == c, case.reference == c)

    from fastseg.metrics import evaluate

    def score(case: _Case, labels: np.ndarray, c: int) -> float:
        row = evaluate(
            labels,
            case.reference,
            spacing=case.spacing,
            labels=[c],
            nsd_tolerance=nsd_tolerance if metric == "nsd" else None,
        )
        return float(row[c][metric])

    return score


def _key(value: float, higher: bool) -> float:
    if math.isnan(value):
        return -math.inf
    return value if higher else -value


def _spacings(spacing: Any, n: int) -> list[tuple[float, float, float] | None]:
    if spacing is None:
        return [None] * n
    values = np.asarray(spacing, dtype=np.float64)
    if values.shape == (3,):
        values = np.broadcast_to(values, (n, 3))
    if values.shape != (n, 3) or not np.all(values > 0):
        raise InputError(
            f"spacing: expected (z, y, x) in mm, or one triple per case ({n}), got {spacing!r}"
        )
    return [(float(s[0]), float(s[1]), float(s[2])) for s in values]


def _cases(predictions: Sequence[Any], references: Sequence[Any], spacing: Any) -> list[_Case]:
    from fastseg.io import Volume, check_pair

    if len(predictions) != len(references) or not predictions:
        raise InputError(
            f"predictions and references: expected the same non-zero number of cases, got "
            f"{len(predictions)} and {len(references)}"
        )
    spacings = _spacings(spacing, len(predictions))
    cases = []
    for i, (pred, ref, sp) in enumerate(zip(predictions, references, spacings, strict=True)):
        if isinstance(pred, Volume) and isinstance(ref, Volume):
            check_pair(pred, ref, f"prediction {i}", f"reference {i}")
        if sp is None:
            volume = next((x for x in (pred, ref) if isinstance(x, Volume)), None)
            s = volume.spacing if volume is not None else (1.0, 1.0, 1.0)
            sp = (float(s[0]), float(s[1]), float(s[2]))
        pred_array = pred.array if isinstance(pred, Volume) else np.asarray(pred)
        ref_array = check_labels(ref.array if isinstance(ref, Volume) else ref, f"reference {i}")
        if pred_array.ndim == 4:
            probs = check_probabilities(pred_array, f"prediction {i}")
            foreground = probs[1:]
            best = np.argmax(foreground, axis=0) + 1
            best_p = np.take_along_axis(foreground, (best - 1)[None], axis=0)[0]
            labels = np.where(best_p > probs[0], best, 0)
            case = _Case(labels, ref_array, sp, best, best_p)
        else:
            case = _Case(check_labels(pred_array, f"prediction {i}"), ref_array, sp)
        if case.labels.shape != ref_array.shape:
            raise InputError(
                f"prediction {i} and reference {i}: shapes differ, "
                f"{case.labels.shape} and {ref_array.shape}"
            )
        cases.append(case)
    return cases


def select_postprocessing(
    predictions: Sequence[Any],
    references: Sequence[Any],
    spacing: Any = None,
    *,
    metric: str = "dice",
    classes: Iterable[int] | None = None,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    hole_modes: Sequence[str] = ("2d", "3d"),
    keep_largest: bool = True,
    min_volumes_mm3: Sequence[float] | None = None,
    connectivity: int = 26,
    nsd_tolerance: float = 1.0,
) -> dict[str, Any]:
    """A post-processing plan (see ``fastseg.postprocess._plan``) chosen on validation cases.

    Parameters
    ----------
    predictions : per case, a label map ``(z, y, x)``, class probabilities ``(K, z, y, x)``
        (softmax output; enables threshold selection) or a ``fastseg.io.Volume`` of labels.
    references : per case, the reference label map ``(z, y, x)`` or Volume.
    spacing : ``(z, y, x)`` mm for every case, or one triple per case (default: from the
        Volumes, else 1 mm).
    metric : the per-class metric to maximise (``dice``, ``jaccard``, ``vs``, ``nsd``) or
        minimise (``hd``, ``hd95``, ``assd``, ``avd``), averaged over cases; overlap metrics are
        computed from voxel counts, the others with ``fastseg.metrics.evaluate``.
    classes : classes to consider (default every non-zero class in the references or
        predictions).
    thresholds : candidate probability thresholds (probability predictions only).
    hole_modes : hole-filling modes to try (``"2d"``, ``"3d"``; empty to skip).
    keep_largest : whether to try keeping the largest component.
    min_volumes_mm3 : candidate minimum component volumes; default, per class, 5, 10, 25 and
        50 % of the class's smallest volume in the references.
    connectivity : 6, 18 or 26, for the component steps.
    """
    if metric not in HIGHER_IS_BETTER:
        raise InputError(f"metric: expected one of {sorted(HIGHER_IS_BETTER)}, got {metric!r}")
    check_connectivity(connectivity)
    modes = [check_hole_mode(m) for m in hole_modes]
    for t in thresholds:
        if not 0.0 <= float(t) <= 1.0:
            raise InputError(f"thresholds: expected probabilities in [0, 1], got {t}")
    if min_volumes_mm3 is not None and any(not float(v) > 0 for v in min_volumes_mm3):
        raise InputError(f"min_volumes_mm3: expected positive volumes, got {min_volumes_mm3}")
    cases = _cases(predictions, references, spacing)
    higher = HIGHER_IS_BETTER[metric]
    score = _scorer(metric, nsd_tolerance)
    if classes is None:
        found: set[int] = set()
        for case in cases:
            found |= {int(v) for v in np.unique(case.reference)}
            found |= {int(v) for v in np.unique(case.labels)}
        chosen = sorted(found - {0})
    else:
        chosen = sorted({int(c) for c in classes} - {0})

    def mean_score(c: int, maps: Sequence[np.ndarray]) -> float:
        return float(np.mean([score(case, m, c) for case, m in zip(cases, maps, strict=True)]))

    def choose(
        c: int, options: Sequence[Any], apply: Callable[[_Case, np.ndarray, Any], np.ndarray]
    ) -> tuple[Any, float]:
        """The first option (the no-op) unless another one scores better."""
        current = [case.labels for case in cases]
        best_option, best_score = options[0], mean_score(c, current)
        for option in options[1:]:
            value = mean_score(
                c, [apply(case, m, option) for case, m in zip(cases, current, strict=True)]
            )
            if _key(value, higher) > _key(best_score, higher) + 1e-12:
                best_option, best_score = option, value
        return best_option, best_score

    plan_classes = {c: default_class_plan() for c in chosen}
    for c in chosen:
        plan_classes[c]["score_before"] = mean_score(c, [case.labels for case in cases])

    def stage(
        key: str,
        options_for: Callable[[int], Sequence[Any]],
        apply: Callable[[_Case, np.ndarray, Any], np.ndarray],
    ) -> None:
        def bound(c: int) -> Callable[[_Case, np.ndarray, Any], np.ndarray]:
            return lambda case, m, option: apply(case, m, (c, option))

        picks = {}
        for c in chosen:
            options = options_for(c)
            if len(options) > 1:
                picks[c], _ = choose(c, options, bound(c))
                plan_classes[c][key] = picks[c]
        for case in cases:
            for c, option in picks.items():
                if option != options_for(c)[0]:
                    case.labels = apply(case, case.labels, (c, option))

    if all(case.best is not None for case in cases) and thresholds:
        stage("threshold", lambda c: [None, *sorted({float(t) for t in thresholds})], _threshold)
    stage("fill_holes", lambda c: [None, *modes], lambda case, m, co: _fill(m, co))
    if keep_largest:
        stage(
            "keep_largest",
            lambda c: [False, True],
            lambda case, m, co: keep_largest_component(m, [co[0]], connectivity) if co[1] else m,
        )
    volumes = {c: _volume_candidates(c, cases, min_volumes_mm3) for c in chosen}
    stage(
        "min_volume_mm3",
        lambda c: [0.0, *volumes[c]],
        lambda case, m, co: (
            remove_small_components(m, {co[0]: co[1]}, case.spacing, connectivity=connectivity)
            if co[1] > 0
            else m
        ),
    )
    for c in chosen:
        plan_classes[c]["score_after"] = mean_score(c, [case.labels for case in cases])
    return {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "metric": metric,
        "higher_is_better": higher,
        "connectivity": connectivity,
        "cases": len(cases),
        "classes": {str(c): plan_classes[c] for c in chosen},
    }


def _threshold(case: _Case, labels: np.ndarray, choice: tuple[int, float | None]) -> np.ndarray:
    c, t = choice
    assert case.best is not None and case.best_p is not None
    mine = case.best == c
    out = labels.copy()
    if t is None:
        return out
    out[mine] = np.where(case.best_p[mine] >= t, c, 0)
    return out


def _fill(labels: np.ndarray, choice: tuple[int, str | None]) -> np.ndarray:
    c, mode = choice
    return labels if mode is None else fill_holes(labels, [c], mode)  # type: ignore[arg-type]


def _volume_candidates(
    c: int, cases: Sequence[_Case], given: Sequence[float] | None
) -> list[float]:
    if given is not None:
        return sorted({float(v) for v in given})
    sizes = [
        int(np.count_nonzero(case.reference == c)) * float(np.prod(case.spacing)) for case in cases
    ]
    present = [s for s in sizes if s > 0]
    if not present:
        return []
    return [f * min(present) for f in MIN_VOLUME_FRACTIONS]
