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

    The field is fitted on a copy shrunk by ``shrink_factor`` (speed; less along an axis too
    short to keep 2 voxels) inside ``mask`` (default: an Otsu threshold of the image) and
    evaluated at full resolution. ``spacing`` is (z, y, x) mm. An axis of one voxel (a single
    slice) is left out: the field is then fitted in 2D. Intensities must be positive where the
    mask is: N4 works on the log image.
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
    m = None
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != arr.shape:
            raise InputError(f"mask: expected shape {arr.shape}, got {m.shape}")
    kept = [axis for axis in range(3) if arr.shape[axis] > 1]
    if len(kept) < 2:
        raise InputError(
            f"image: N4 needs at least 2 voxels along 2 axes, got shape {arr.shape} (z, y, x)"
        )
    fit_shape = tuple(arr.shape[axis] for axis in kept)
    img = sitk.GetImageFromArray(arr.reshape(fit_shape).astype(np.float32))
    img.SetSpacing([float(tuple(spacing)[axis]) for axis in reversed(kept)])
    if m is None:
        mask_img = sitk.OtsuThreshold(img, 0, 1, 200)
    else:
        mask_img = sitk.GetImageFromArray((m != 0).reshape(fit_shape).astype(np.uint8))
        mask_img.CopyInformation(img)
    if not np.any(sitk.GetArrayViewFromImage(mask_img)):
        return arr.astype(np.float32)
    factors = [max(1, min(shrink_factor, n // 2)) for n in reversed(fit_shape)]
    small = img
    small_mask = mask_img
    if max(factors) > 1:
        small = sitk.Shrink(img, factors)
        small_mask = sitk.Shrink(mask_img, factors)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations([int(i) for i in iterations])
    corrector.SetConvergenceThreshold(float(convergence_threshold))
    corrector.Execute(small, small_mask)
    log_field = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(img)).reshape(arr.shape)
    out: np.ndarray = (arr.astype(np.float32) / np.exp(log_field)).astype(np.float32)
    return out
