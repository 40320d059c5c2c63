"""Preprocessing: HU windowing and intensity normalisation.

Arrays are ``(z, y, x)``; intensities in Hounsfield units (CT) or scanner units (MR). The clip/scale
step runs in the native OpenMP kernel (``fastseg._native.window``).
"""

from __future__ import annotations

from fastseg.preprocess._intensity import (
    WINDOWS,
    CTNormalization,
    apply_window,
    window_limits,
    zscore,
)

__all__ = ["WINDOWS", "CTNormalization", "apply_window", "window_limits", "zscore"]
