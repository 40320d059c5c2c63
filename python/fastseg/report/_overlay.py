"""Grey-level slices with coloured label overlays, as 8-bit RGB (no matplotlib needed)."""

from __future__ import annotations

import numpy as np

from fastseg.errors import InputError
from fastseg.report._window import apply_window, resolve_window

PALETTE: tuple[tuple[int, int, int], ...] = (
    (214, 39, 40),
    (44, 160, 44),
    (31, 119, 180),
    (255, 127, 14),
    (148, 103, 189),
    (23, 190, 207),
    (227, 119, 194),
    (188, 189, 34),
    (140, 86, 75),
    (255, 152, 150),
    (152, 223, 138),
    (174, 199, 232),
    (255, 187, 120),
    (197, 176, 213),
    (158, 218, 229),
    (247, 182, 210),
    (219, 219, 141),
    (196, 156, 148),
)
"""Fixed qualitative label colours (RGB); label ``l > 0`` gets ``PALETTE[(l - 1) % 18]``."""


def label_color(label: int) -> tuple[int, int, int]:
    """The RGB colour of a label value (> 0)."""
    return PALETTE[(int(label) - 1) % len(PALETTE)]


def check_labels(label: np.ndarray, name: str) -> np.ndarray:
    """``label`` as int64, rejecting negative or non-integer values."""
    if label.dtype == np.bool_ or np.issubdtype(label.dtype, np.integer):
        out = label.astype(np.int64, copy=False)
    elif np.issubdtype(label.dtype, np.floating):
        if not np.all(np.isfinite(label)) or np.any(label != np.round(label)):
            raise InputError(f"{name} must hold integer label values, got non-integer floats")
        out = label.astype(np.int64)
    else:
        raise InputError(f"{name} must be an integer label map, got dtype {label.dtype}")
    if out.size and out.min() < 0:
        raise InputError(f"{name} has negative label values (min {out.min()})")
    return out


def overlay_rgb(
    slice2d: np.ndarray,
    label2d: np.ndarray | None = None,
    window: object = None,
    alpha: float = 0.4,
) -> np.ndarray:
    """Window a 2-d slice to grey and blend label colours over it.

    Parameters
    ----------
    slice2d : intensities, shape (rows, cols) (e.g. HU).
    label2d : integer labels of the same shape, 0 = background (not coloured).
    window : None (1st-99th percentile of ``slice2d``), ``"lung"``, ``"soft"``, ``"bone"``,
        ``"W,L"`` or ``(width, level)``.
    alpha : opacity of the label colours in [0, 1].

    Returns
    -------
    uint8 array (rows, cols, 3): grey ``g`` where the label is 0, and
    ``round((1 - alpha) g + alpha c)`` with the label's colour ``c`` elsewhere.
    """
    image = np.asarray(slice2d)
    if image.ndim != 2:
        raise InputError(f"slice2d must be 2-d (rows, cols), got shape {image.shape}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"alpha must be in [0, 1], got {alpha!r}")
    width, level = resolve_window(window, image)
    grey = apply_window(image, width, level)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    if label2d is None:
        return rgb
    labels = np.asarray(label2d)
    if labels.shape != image.shape:
        raise InputError(
            f"label2d has shape {labels.shape}, but slice2d has shape {image.shape}; they must match"
        )
    labels = check_labels(labels, "label2d")
    present = np.unique(labels)
    present = present[present > 0]
    if present.size == 0:
        return rgb
    colours = np.array([label_color(v) for v in present], dtype=np.float64)
    where = labels > 0
    colour = colours[np.searchsorted(present, labels[where])]
    blended = (1.0 - alpha) * grey[where][:, None].astype(np.float64) + alpha * colour
    rgb[where] = np.rint(blended).astype(np.uint8)
    return rgb
