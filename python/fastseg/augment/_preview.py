"""A PNG grid that shows what a pipeline does to one image and its label."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastseg.augment._pipeline import Pipeline
from fastseg.errors import InputError

_COLOURS = [
    (0.90, 0.10, 0.10),
    (0.10, 0.70, 0.20),
    (0.15, 0.35, 0.95),
    (0.95, 0.75, 0.10),
    (0.80, 0.20, 0.85),
    (0.10, 0.80, 0.85),
    (0.95, 0.50, 0.10),
    (0.55, 0.85, 0.20),
]


def _overlay(
    ax: Any, plane: np.ndarray, lab: np.ndarray | None, lo: float, hi: float, aspect: float
) -> None:
    """Grey image with the label drawn over it, one fixed colour per label value."""
    ax.imshow(
        plane, cmap="gray", vmin=lo, vmax=hi, aspect=aspect, interpolation="nearest", origin="lower"
    )
    if lab is not None and lab.any():
        rgba = np.zeros((*lab.shape, 4))
        for v in np.unique(lab[lab != 0]):
            rgba[lab == v] = (*_COLOURS[(int(v) - 1) % len(_COLOURS)], 0.45)
        ax.imshow(rgba, aspect=aspect, interpolation="nearest", origin="lower")
    ax.set_xticks([])
    ax.set_yticks([])


def save_preview(
    image: np.ndarray,
    label: np.ndarray | None,
    pipeline: Pipeline,
    path: str | os.PathLike[str],
    *,
    n: int = 4,
    seed: int = 0,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> Path:
    """Write a PNG: rows axial / coronal / sagittal through the centre, columns the input and
    ``n`` augmented draws (seed ``seed``, samples 0..n-1), the label overlaid in colours.

    image: (z, y, x) or (C, z, y, x) (channel 0 is shown); label: (z, y, x) or None; spacing (z, y, x)
    mm sets the aspect ratio. Returns the path written (atomically: temporary name, then rename).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    img = np.asarray(image)
    if img.ndim == 3:
        img = img[None]
    if img.ndim != 4:
        raise InputError(f"image: expected (z, y, x) or (C, z, y, x), got shape {img.shape}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"n: expected a positive integer, got {n!r}")
    lab = None if label is None else np.asarray(label)
    batch = np.broadcast_to(img, (n, *img.shape)).astype(np.float32)
    lbatch = None if lab is None else np.ascontiguousarray(np.broadcast_to(lab, (n, *lab.shape)))
    out, out_lab = pipeline(batch, lbatch, seed=seed, spacing=spacing)
    columns = [(img[0], lab, "input")] + [
        (out[k, 0], None if out_lab is None else out_lab[k], f"draw {k}") for k in range(n)
    ]
    lo, hi = (float(v) for v in np.percentile(img[0], [0.5, 99.5])) if img[0].size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    sz, sy, sx = (float(v) for v in spacing)
    fig = Figure(figsize=(2.6 * len(columns), 7.8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, len(columns), squeeze=False)
    for col, (vol, lv, title) in enumerate(columns):
        cz, cy, cx = (s // 2 for s in vol.shape)
        planes = [
            (vol[cz], None if lv is None else lv[cz], sy / sx, "axial"),
            (vol[:, cy, :], None if lv is None else lv[:, cy, :], sz / sx, "coronal"),
            (vol[:, :, cx], None if lv is None else lv[:, :, cx], sz / sy, "sagittal"),
        ]
        for row, (plane, lplane, aspect, name) in enumerate(planes):
            _overlay(axes[row][col], plane, lplane, lo, hi, aspect)
            if row == 0:
                axes[row][col].set_title(title, fontsize=10)
            if col == 0:
                axes[row][col].set_ylabel(name, fontsize=10)
    fig.suptitle(f"fastseg augment preview (seed {seed})", fontsize=11)
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target
