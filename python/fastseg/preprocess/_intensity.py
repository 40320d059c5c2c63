"""HU windowing and intensity normalisation over the native clip/scale kernel."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from fastseg import _native
from fastseg.errors import InputError

WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (1500.0, -600.0),
    "soft": (400.0, 40.0),
    "bone": (1800.0, 400.0),
}
"""Named CT display windows as ``(width, level)`` in HU."""


def window_limits(window: str | Sequence[float]) -> tuple[float, float]:
    """``(lo, hi)`` in HU of a named window (``"lung"``, ``"soft"``, ``"bone"``) or ``(width, level)``."""
    if isinstance(window, str):
        if window not in WINDOWS:
            raise InputError(f"window: unknown name {window!r}, expected one of {sorted(WINDOWS)}")
        width, level = WINDOWS[window]
    else:
        if len(window) != 2:
            raise InputError(f"window: expected a name or (width, level), got {window!r}")
        width, level = float(window[0]), float(window[1])
    if not (math.isfinite(width) and math.isfinite(level)) or width <= 0:
        raise InputError(
            f"window: width must be positive and finite, got width={width}, level={level}"
        )
    return level - width / 2, level + width / 2


def apply_window(image: np.ndarray, window: str | Sequence[float] = "soft") -> np.ndarray:
    """Clip ``image`` (HU) to a window and scale it to ``[0, 1]``; float32, same shape."""
    lo, hi = window_limits(window)
    out: np.ndarray = _native.window(image, lo, hi, lo, 1.0 / (hi - lo))
    return out


def zscore(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``(image - mean) / std`` with mean and std over ``mask`` (all voxels if None); float32.

    A constant image (std 0) is only shifted. An empty mask is an InputError.
    """
    values = np.asarray(image)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != values.shape:
            raise InputError(f"mask: expected shape {values.shape}, got {mask.shape}")
        values = values[mask]
    if values.size == 0:
        raise InputError("zscore: no voxels to compute mean and std from (empty image or mask)")
    mean = float(np.mean(values, dtype=np.float64))
    std = float(np.std(values, dtype=np.float64))
    scale = 1.0 / std if std > 0 else 1.0
    out: np.ndarray = _native.window(image, -math.inf, math.inf, mean, scale)
    return out


@dataclass(frozen=True)
class CTNormalization:
    """nnU-Net's CT scheme: clip to foreground percentiles, then z-score with foreground statistics.

    ``lo``/``hi`` are the clip limits (HU), ``mean``/``std`` the statistics of the clipped foreground
    voxels of the training set. Calling it maps an image ``(z, y, x)`` to float32 in one native pass:
    ``(clip(image, lo, hi) - mean) / std``.
    """

    lo: float
    hi: float
    mean: float
    std: float

    def __post_init__(self) -> None:
        if not self.lo <= self.hi:
            raise InputError(f"CTNormalization: expected lo <= hi, got lo={self.lo}, hi={self.hi}")
        if not self.std > 0:
            raise InputError(f"CTNormalization: std must be positive, got {self.std}")

    @classmethod
    def fit(
        cls,
        images: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        percentiles: tuple[float, float] = (0.5, 99.5),
    ) -> CTNormalization:
        """Statistics from the voxels with a non-zero label over all ``images`` (HU)."""
        if len(images) != len(labels) or not images:
            raise InputError(
                f"CTNormalization.fit: expected equally many images and labels (>0), "
                f"got {len(images)} and {len(labels)}"
            )
        chunks = []
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            if np.shape(image) != np.shape(label):
                raise InputError(
                    f"CTNormalization.fit: image {i} has shape {np.shape(image)}, "
                    f"its label {np.shape(label)}"
                )
            chunks.append(np.asarray(image)[np.asarray(label) > 0].astype(np.float64))
        values = np.concatenate(chunks)
        if values.size == 0:
            raise InputError("CTNormalization.fit: the labels have no foreground voxels")
        lo, hi = (float(v) for v in np.percentile(values, percentiles))
        clipped = np.clip(values, lo, hi)
        std = float(clipped.std())
        return cls(lo=lo, hi=hi, mean=float(clipped.mean()), std=std if std > 0 else 1.0)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        out: np.ndarray = _native.window(image, self.lo, self.hi, self.mean, 1.0 / self.std)
        return out

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CTNormalization:
        try:
            return cls(**{k: float(data[k]) for k in ("lo", "hi", "mean", "std")})
        except KeyError as exc:
            raise InputError(f"CTNormalization.from_dict: missing key {exc}") from exc
