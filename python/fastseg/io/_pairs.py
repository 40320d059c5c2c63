"""Refuse image/label pairs that do not share a grid."""

from __future__ import annotations

import os

from fastseg.errors import GeometryMismatchError, InputError
from fastseg.io._volume import Volume


def check_pair(
    image: Volume,
    label: Volume,
    image_path: str | os.PathLike[str] | None = None,
    label_path: str | os.PathLike[str] | None = None,
    atol: float = 1e-3,
) -> None:
    """Raise :class:`GeometryMismatchError` unless ``image`` and ``label`` have the same shape
    ``(z, y, x)`` and spacing, origin (mm) and direction equal within ``atol``.

    The message names both files (or "image"/"label") and each difference.
    """
    for name, vol in (("image", image), ("label", label)):
        if not isinstance(vol, Volume):
            raise InputError(f"{name}: expected a fastseg.io.Volume, got {type(vol).__name__}")
    diff = image.geometry_difference(label, atol)
    if diff is not None:
        a = str(image_path) if image_path is not None else "image"
        b = str(label_path) if label_path is not None else "label"
        raise GeometryMismatchError(f"{a} and {b} do not share a grid: {diff} (tolerance {atol})")
