"""MetaImage (``.mha``/``.mhd``) and NRRD (``.nrrd``/``.nhdr``) through SimpleITK.

SimpleITK's NumPy view is already ``(z, y, x)``; its world is LPS, so the x and y rows of
origin and direction are negated to get RAS+.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fastseg._atomic import atomic_folder_files, atomic_path
from fastseg.errors import FastsegError, ImageReadError, InputError
from fastseg.io._volume import Volume

_LPS = np.diag([-1.0, -1.0, 1.0])
_SIDECAR_SUFFIXES = (".mhd", ".nhdr")


def read_itk(path: Path, channel: int | None = None) -> Volume:
    """Read a 2-d/3-d scalar image (``channel=`` picks a component of a vector image)."""
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except Exception as exc:
        raise ImageReadError(
            f"{path}: cannot read with SimpleITK ({str(exc).strip()[:300]})"
        ) from exc
    dim = img.GetDimension()
    if dim not in (2, 3):
        raise ImageReadError(f"{path}: expected a 3-d image, got {dim} dimensions")
    ncomp = img.GetNumberOfComponentsPerPixel()
    array = sitk.GetArrayFromImage(img)
    if ncomp > 1:
        if channel is None:
            raise InputError(
                f"{path}: an image with {ncomp} components per voxel (vector or RGB) where "
                f"one is expected; read one with fastseg.io.read(path, channel=k), k in "
                f"0..{ncomp - 1}, or give each component its own 3-D file (<case>_0000, "
                "<case>_0001... for fastseg convert). A label map must have one component"
            )
        if not 0 <= channel < ncomp:
            raise InputError(f"{path}: channel={channel} out of range 0..{ncomp - 1}")
        array = array[..., channel]
    spacing = np.array(img.GetSpacing(), dtype=np.float64)
    origin = np.array(img.GetOrigin(), dtype=np.float64)
    direction = np.array(img.GetDirection(), dtype=np.float64).reshape(dim, dim)
    if dim == 2:
        array = array[None]
        spacing = np.append(spacing, 1.0)
        origin = np.append(origin, 0.0)
        d3 = np.eye(3)
        d3[:2, :2] = direction
        direction = d3
    ras_direction = _LPS @ direction[:, ::-1]
    try:
        return Volume(
            np.ascontiguousarray(array),
            tuple(spacing[::-1]),
            tuple(_LPS @ origin),
            ras_direction,
            meta={"format": "itk"},
        )
    except InputError as exc:
        raise ImageReadError(f"{path}: invalid geometry: {exc}") from exc


def to_sitk(volume: Volume) -> Any:
    """A SimpleITK image (LPS world, index order x, y, z) on the Volume's grid; bool as uint8."""
    import SimpleITK as sitk

    array = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    try:
        img = sitk.GetImageFromArray(np.ascontiguousarray(array))
    except Exception as exc:
        raise InputError(f"SimpleITK cannot store dtype {array.dtype} ({exc})") from exc
    img.SetSpacing(tuple(float(s) for s in volume.spacing[::-1]))
    img.SetOrigin(tuple(float(v) for v in _LPS @ np.asarray(volume.origin)))
    img.SetDirection(tuple(float(v) for v in (_LPS @ volume.direction)[:, ::-1].ravel()))
    return img


def write_itk(volume: Volume, path: Path) -> None:
    """Write with compression; bool is stored as uint8."""
    import SimpleITK as sitk

    try:
        img = to_sitk(volume)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from exc
    suffix = path.suffix.lower()
    ctx = (
        atomic_folder_files(path) if suffix in _SIDECAR_SUFFIXES else atomic_path(path, path.suffix)
    )
    with ctx as tmp:
        try:
            sitk.WriteImage(img, str(tmp), useCompression=True)
        except Exception as exc:
            raise FastsegError(
                f"{path}: SimpleITK could not write ({str(exc).strip()[:300]})"
            ) from exc
