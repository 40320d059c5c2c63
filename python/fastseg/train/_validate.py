"""Validation on whole stored cases: sliding-window prediction with the training patch size on
the stored grid, compared with the stored labels by the metrics engine."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class CasePrediction:
    case_id: str
    labels: np.ndarray  # (z, y, x)
    reference: np.ndarray  # (z, y, x)
    spacing: tuple[float, float, float]
    image: np.ndarray | None = None  # (z, y, x), first channel, for overlays
    probabilities: np.ndarray | None = None  # (K, z, y, x)


@dataclass
class ValidationResult:
    mean_dice: float
    class_dice: dict[int, float]
    rows: list[dict[str, Any]] = field(default_factory=list)


def predict_case(
    model: torch.nn.Module,
    store: Any,
    case_id: str,
    patch_size: Sequence[int],
    overlap: float,
    device: torch.device,
    amp: bool,
    probabilities: bool = False,
    keep_image: bool = False,
    batch_size: int = 1,
) -> CasePrediction:
    """Sliding-window prediction of one stored case (model in eval mode), ``batch_size``
    windows per forward pass."""
    from fastseg.infer import sliding_window_inference

    case = store[case_id]
    image = case.image()
    reference = case.label()
    out = sliding_window_inference(
        model,
        image,
        patch_size,
        overlap,
        batch_size=batch_size,
        pad_value=case.normalized_pad_values,
        device=device,
        amp=amp,
        return_probabilities=probabilities,  # type: ignore[call-overload]
    )
    labels, probs = out if probabilities else (out, None)
    return CasePrediction(
        case_id,
        np.asarray(labels),
        np.asarray(reference),
        tuple(float(s) for s in case.spacing),  # type: ignore[arg-type]
        image[0] if keep_image else None,
        None if probs is None else np.asarray(probs),
    )


def metric_rows(
    predictions: Sequence[CasePrediction], classes: Sequence[int]
) -> list[dict[str, Any]]:
    """One row per case and class with the columns of ``fastseg.metrics.COLUMNS``."""
    from fastseg.metrics import COLUMNS, evaluate

    rows = []
    for p in predictions:
        result = evaluate(p.labels, p.reference, spacing=p.spacing, labels=list(classes))
        for label in classes:
            row = {"case": p.case_id, "label": label, **result[label]}
            rows.append({c: row[c] for c in COLUMNS})
    return rows


def summarize(rows: Sequence[dict[str, Any]], classes: Sequence[int]) -> ValidationResult:
    """Mean Dice per class over cases, and the mean over foreground classes."""
    class_dice = {
        c: float(np.mean([r["dice"] for r in rows if r["label"] == c])) if rows else math.nan
        for c in classes
    }
    mean = float(np.mean(list(class_dice.values()))) if class_dice else math.nan
    return ValidationResult(mean, class_dice, list(rows))


def overlay(image: np.ndarray, labels: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """An RGB ``(3, y, x)`` float image of the middle z slice: grey image, reference in green,
    prediction in red (overlap yellow)."""
    z = image.shape[0] // 2
    if reference.any():
        z = int(np.argmax((reference > 0).sum(axis=(1, 2))))
    sl = image[z].astype(np.float32)
    lo, hi = np.percentile(sl, [1, 99]) if sl.size else (0.0, 1.0)
    grey = np.clip((sl - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    rgb = np.stack([grey, grey, grey]) * 0.7
    rgb[0] += 0.3 * (labels[z] > 0)
    rgb[1] += 0.3 * (reference[z] > 0)
    return np.clip(rgb, 0, 1)
