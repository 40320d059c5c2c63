"""Which axes a model may be mirrored along: the planner's rule for ``data.mirror_axes``.

Mirroring is label-preserving only when the labels do not encode a direction. When two classes
keep a fixed order along an axis across the dataset (MSD hippocampus: the anterior class lies
+18 voxels along y and −7 along z of the posterior one in every case), a mirrored patch shows an
anatomy that never occurs, with the two classes in swapped places, and the model spends its
training learning to undo that. nnU-Net mirrors every axis and trains 1,000 epochs; on a CPU
budget of minutes that costs several Dice points, so the planner leaves such axes out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ORDER_FRACTION = 0.95
"""An axis is directional when a pair of classes has the same order along it in at least this
fraction of the cases that contain both..."""
MIN_CASES = 10
"""...and at least this many cases contain both (fewer cannot establish an order)."""
MIN_SHIFT_VOXELS = 1.0
"""...and their median centroid distance along the axis is at least this many voxels."""


def class_centroids(store: Any) -> list[dict[int, np.ndarray]]:
    """Per case of ``store``, each foreground class's centroid ``(z, y, x)`` in stored voxels,
    from the foreground coordinates the store samples per case."""
    out = []
    for case_id in store.cases:
        coordinates = store[case_id].foreground()
        out.append({c: xyz.mean(axis=0) for c, xyz in coordinates.items() if len(xyz)})
    return out


def directional_axes(
    centroids: list[dict[int, np.ndarray]],
) -> dict[int, tuple[int, int, float, float]]:
    """Axes along which some pair of classes keeps its order: ``axis -> (class a, class b,
    fraction of cases where a lies after b, median shift of a from b in voxels)`` (the most
    consistent pair per axis)."""
    classes = sorted({c for case in centroids for c in case})
    found: dict[int, tuple[int, int, float, float]] = {}
    for i, a in enumerate(classes):
        for b in classes[i + 1 :]:
            shifts = np.array([case[a] - case[b] for case in centroids if a in case and b in case])
            if len(shifts) < MIN_CASES:
                continue
            for axis in range(3):
                after = float(np.mean(shifts[:, axis] > 0))
                consistency = max(after, 1.0 - after)
                median = float(np.median(shifts[:, axis]))
                if consistency < ORDER_FRACTION or abs(median) < MIN_SHIFT_VOXELS:
                    continue
                best = found.get(axis)
                if best is None or consistency > max(best[2], 1.0 - best[2]):
                    found[axis] = (a, b, after, median)
    return found


def plan_mirror_axes(store: Any, label_names: dict[int, str]) -> tuple[list[int], str]:
    """The axes to mirror along (``data.mirror_axes``) and the reason, for ``store``."""
    directional = directional_axes(class_centroids(store))
    axes = [a for a in range(3) if a not in directional]
    if not directional:
        return axes, "all axes: no pair of classes keeps a fixed order along any axis"
    names = "zyx"
    reasons = []
    for axis, (a, b, after, median) in sorted(directional.items()):
        share = max(after, 1.0 - after)
        reasons.append(
            f"{names[axis]}: {label_names.get(a, a)} lies {abs(median):.1f} voxels "
            f"{'after' if median > 0 else 'before'} {label_names.get(b, b)} in {share:.0%} of "
            f"the cases"
        )
    return axes, (
        f"mirror {[names[a] for a in axes] or 'no axis'}; not "
        + "; not ".join(reasons)
        + " (a mirrored patch would swap the classes' places)"
    )
