"""Intensity windows: CT presets in Hounsfield units, automatic percentiles, and mapping to 8 bits."""

from __future__ import annotations

import math

import numpy as np

from fastseg.errors import InputError

WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (1500.0, -600.0),
    "soft": (400.0, 40.0),
    "bone": (1800.0, 400.0),
}
"""CT display windows as ``(width, level)`` in Hounsfield units."""

_AUTO_SAMPLE = 2_000_000


def auto_window(image: np.ndarray) -> tuple[float, float]:
    """``(width, level)`` spanning the 1st to 99th percentile of the finite values of ``image``
    (of a regular subsample of about two million voxels when larger); the full range when
    those percentiles coincide."""
    step = max(1, math.ceil((image.size / _AUTO_SAMPLE) ** (1.0 / max(image.ndim, 1))))
    sample = np.asarray(image[(slice(None, None, step),) * image.ndim], dtype=np.float64)
    values = sample[np.isfinite(sample)]
    if values.size == 0:
        return 1.0, 0.5
    low, high = (float(v) for v in np.percentile(values, [1.0, 99.0]))
    if high <= low:
        low, high = float(values.min()), float(values.max())
    if high <= low:
        return 1.0, low
    return high - low, (high + low) / 2.0


def resolve_window(window: object, image: np.ndarray, name: str = "window") -> tuple[float, float]:
    """``(width, level)`` from None (automatic), a preset name, ``"W,L"`` or a ``(W, L)`` pair."""
    if window is None:
        return auto_window(image)
    if isinstance(window, str):
        key = window.strip().lower()
        if key in WINDOW_PRESETS:
            return WINDOW_PRESETS[key]
        try:
            width, level = (float(part) for part in key.split(","))
        except ValueError:
            raise InputError(
                f"{name} {window!r} is neither a preset {sorted(WINDOW_PRESETS)} nor 'width,level'"
            ) from None
    else:
        try:
            width, level = (float(v) for v in window)  # type: ignore[attr-defined]
        except (TypeError, ValueError):
            raise InputError(
                f"{name} must be None, a preset {sorted(WINDOW_PRESETS)}, 'width,level' or a "
                f"(width, level) pair, got {window!r}"
            ) from None
    if not (math.isfinite(width) and math.isfinite(level) and width > 0):
        raise InputError(f"{name} needs a finite width > 0 and a finite level, got {window!r}")
    return width, level


def apply_window(values: np.ndarray, width: float, level: float) -> np.ndarray:
    """Map ``level - width/2`` to 0 and ``level + width/2`` to 255, linearly, clipped; NaN to 0."""
    scaled = (np.asarray(values, dtype=np.float64) - (level - width / 2.0)) / width
    scaled = np.nan_to_num(np.clip(scaled, 0.0, 1.0), nan=0.0)
    return np.rint(scaled * 255.0).astype(np.uint8)
