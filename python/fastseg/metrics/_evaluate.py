"""evaluate(): every metric of DESIGN.md for every label of one prediction/reference pair."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from fastseg import _native
from fastseg.io._labels import label_map
from fastseg.metrics import _inputs

METRICS = ("dice", "jaccard", "hd", "hd95", "avd", "assd", "vs", "nsd")
LabelRow = dict[str, float | int | str]


def empty_side(pred_voxels: int, ref_voxels: int) -> str:
    """``""``, ``"pred"``, ``"ref"`` or ``"both"``: which masks of a label are empty."""
    if pred_voxels == 0 and ref_voxels == 0:
        return "both"
    if pred_voxels == 0:
        return "pred"
    if ref_voxels == 0:
        return "ref"
    return ""


def rows_from_native(result: dict[str, np.ndarray]) -> dict[int, LabelRow]:
    out: dict[int, LabelRow] = {}
    for k, label in enumerate(result["label"].tolist()):
        row: LabelRow = {name: float(result[name][k]) for name in METRICS}
        pv, rv = int(result["pred_voxels"][k]), int(result["ref_voxels"][k])
        row["pred_voxels"] = pv
        row["ref_voxels"] = rv
        row["empty"] = empty_side(pv, rv)
        out[int(label)] = row
    return out


def prepare_pair(
    pred: Any, ref: Any, spacing: Any, pred_name: str = "pred", ref_name: str = "ref"
) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Validated C-contiguous label maps of one dtype and the spacing (z, y, x) mm of a pair."""
    sp = _inputs.pair_geometry(pred, ref, spacing, pred_name, ref_name)
    p = label_map(pred, pred_name)
    r = label_map(ref, ref_name)
    _inputs.check_shapes(p, r, pred_name, ref_name)
    p, r = _inputs.common_dtype(p, r)
    return p, r, sp


def evaluate(
    pred: Any,
    ref: Any,
    spacing: Any = None,
    labels: Iterable[int] | None = None,
    hd95: str = "max_directed",
    nsd_tolerance: float | None = 1.0,
) -> dict[int, LabelRow]:
    """Compare a predicted label map with a reference, label by label.

    Parameters
    ----------
    pred, ref : array ``(z, y, x)`` or ``fastseg.io.Volume``
        Integer label maps (0 = background); bool masks and integer-valued float arrays are
        accepted. Volumes must share one grid and give the spacing.
    spacing : (z, y, x) voxel size in mm for arrays; default 1 mm.
    labels : labels to report; None = every non-zero label present in either map. A requested
        label absent from both maps is reported with ``empty="both"``.
    hd95 : ``"max_directed"`` (default, MONAI's: max of the two directed 95th percentiles) or
        ``"pooled"`` (MedPy's: 95th percentile of both directed distance sets together).
    nsd_tolerance : tolerance in mm of the normalised surface Dice; None leaves nsd out (NaN).

    Returns
    -------
    ``{label: {"dice", "jaccard", "hd", "hd95", "avd", "assd", "vs", "nsd": float,
    "pred_voxels", "ref_voxels": int, "empty": "" | "pred" | "ref" | "both"}}``, distances in mm.
    Definitions are those of DESIGN.md: surface distances use the voxels of a mask with a
    6-neighbour outside it (the array edge counts as outside), assd is the mean of the two
    directed mean surface distances (MedPy 0.4's ``assd``; MedPy >= 0.5 pools the two distance
    sets first, which weights the larger surface more, so its value differs slightly), avd is
    Taha & Hanbury's average Hausdorff distance over all voxels, nsd is DeepMind
    surface-distance's. Both masks empty:
    dice = jaccard = vs = nsd = 1 and distances 0; one empty: dice = nsd = 0, distances inf.
    """
    p, r, sp = prepare_pair(pred, ref, spacing)
    result = _native.label_metrics(
        p,
        r,
        sp,
        _inputs.label_list(labels),
        _inputs.hd95_convention(hd95),
        _inputs.tolerance(nsd_tolerance),
    )
    return rows_from_native(result)
