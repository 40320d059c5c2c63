"""N4 bias-field correction of MR images (SimpleITK's N4BiasFieldCorrectionImageFilter)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastseg.errors import InputError

N4_DEFAULTS: dict[str, Any] = {
    "shrink_factor": 4,
    "iterations": [50, 50, 50, 50],
    "convergence_threshold": 0.001,
    "mask": "otsu",
}
"""Parameters :func:`n4_correct` uses unless told otherwise (recorded with converted data)."""


def n4_correct(
    image: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    mask: np.ndarray | None = None,
    shrink_factor: int = 4,
    iterations: Sequence[int] = (50, 50, 50, 50),
    convergence_threshold: float = 0.001,
) -> np.ndarray:
    """Divide an MR image ``(z, y, x)`` by its N4-estimated bias field; float32, same shape.

    The field is fitted on a copy shrunk by ``shrink_factor`` (speed) inside ``mask`` (default:
    an Otsu threshold of the image) and evaluated at full resolution. ``spacing`` is (z, y, x) mm.
    Intensities must be positive where the mask is: N4 works on the log image.
    """
    import SimpleITK as sitk

    arr = np.asarray(image)
    if arr.ndim != 3:
        raise InputError(f"image: expected (z, y, x), got shape {arr.shape}")
    if shrink_factor < 1 or not iterations or min(iterations) < 1:
        raise InputError(
            f"n4_correct: shrink_factor must be >= 1 and iterations positive, got "
            f"{shrink_factor}, {list(iterations)}"
        )
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing([float(s) for s in reversed(tuple(spacing))])
    if mask is None:
        mask_img = sitk.OtsuThreshold(img, 0, 1, 200)
    else:
        m = np.asarray(mask)
        if m.shape != arr.shape:
            raise InputError(f"mask: expected shape {arr.shape}, got {m.shape}")
        mask_img = sitk.GetImageFromArray((m != 0).astype(np.uint8))
        mask_img.CopyInformation(img)
    if not np.any(sitk.GetArrayViewFromImage(mask_img)):
        return arr.astype(np.float32)
    small = img
    small_mask = mask_img
    if shrink_factor > 1:
        small = sitk.Shrink(img, [shrink_factor] * 3)
        small_mask = sitk.Shrink(mask_img, [shrink_factor] * 3)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(i) for i in iterations])
    corrector.SetConvergenceThreshold(float(convergence_threshold))
    corrector.Execute(small, small_mask)
    log_field = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(img))
    out: np.ndarray = (arr.astype(np.float32) / np.exp(log_field)).astype(np.float32)
    return out
