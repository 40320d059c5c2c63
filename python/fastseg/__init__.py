"""fastseg: a high-performance engine for deep-learning segmentation of 3D CT and MR images.

Arrays are ``(z, y, x)`` in C order, spacings in millimetres in the same order, batches
``(N, C, D, H, W)``. See DESIGN.md for the conventions every module follows.
"""

from __future__ import annotations

import importlib.metadata

from fastseg._info import info
from fastseg.errors import FastsegError

try:
    __version__ = importlib.metadata.version("fastseg")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0+unknown"

__all__ = ["FastsegError", "__version__", "info"]
