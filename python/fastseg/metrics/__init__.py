"""Segmentation metrics per label: Dice, Jaccard, volume similarity, Hausdorff (HD, HD95),
average surface distance (ASSD), average Hausdorff distance (AVD) and normalised surface Dice
(NSD), computed exactly by the native core on ``(z, y, x)`` label maps with spacing in mm."""

from __future__ import annotations

from fastseg.metrics._batch import COLUMNS, evaluate_batch
from fastseg.metrics._evaluate import METRICS, evaluate
from fastseg.metrics._folders import (
    evaluate_folders,
    format_summary,
    match_folders,
    rows_to_csv,
    summarize,
)

__all__ = [
    "COLUMNS",
    "METRICS",
    "evaluate",
    "evaluate_batch",
    "evaluate_folders",
    "format_summary",
    "match_folders",
    "rows_to_csv",
    "summarize",
]
