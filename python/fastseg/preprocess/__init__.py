"""Preprocessing: HU windowing, intensity normalisation, cropping, resampling, bias-field
correction and channel registration.

Arrays are ``(z, y, x)``; spacings ``(z, y, x)`` in mm; intensities in Hounsfield units (CT) or
scanner units (MR). The clip/scale step runs in the native OpenMP kernel
(``fastseg._native.window``).
"""

from __future__ import annotations

from fastseg.preprocess._bias_field import N4_DEFAULTS, n4_correct
from fastseg.preprocess._crop import crop, nonzero_box, uncrop
from fastseg.preprocess._intensity import (
    WINDOWS,
    CTNormalization,
    apply_window,
    window_limits,
    zscore,
)
from fastseg.preprocess._register import register, resample_onto
from fastseg.preprocess._resample import (
    ANISOTROPY_THRESHOLD,
    resample_image,
    resample_label,
    resampled_grid,
    resampled_shape,
    separate_axis,
)

__all__ = [
    "ANISOTROPY_THRESHOLD",
    "N4_DEFAULTS",
    "WINDOWS",
    "CTNormalization",
    "apply_window",
    "crop",
    "n4_correct",
    "nonzero_box",
    "register",
    "resample_image",
    "resample_label",
    "resample_onto",
    "resampled_grid",
    "resampled_shape",
    "separate_axis",
    "uncrop",
    "window_limits",
    "zscore",
]
