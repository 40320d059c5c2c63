"""NIfTI-1/2 (``.nii``, ``.nii.gz``) through nibabel, converted to and from ``(z, y, x)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fastseg._atomic import atomic_path
from fastseg.errors import ImageReadError, InputError
from fastseg.io._volume import Volume

# nibabel's voxel order is (i, j, k) = (x, y, z); ours is (z, y, x).
_REVERSE = [2, 1, 0, 3]


def read_nifti(path: Path, channel: int | None = None) -> Volume:
    """Read a NIfTI file. Stored dtype is kept unless scl_slope/scl_inter are set (then the
    scaled values are returned, as float). 4-D files need ``channel=`` (index along t)."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise ImageReadError(
                f"{path}: not a NIfTI image (nibabel read it as {type(img).__name__})"
            )
        shape = img.shape
        if len(shape) == 4 and shape[3] == 1:
            shape = shape[:3]
        if len(shape) == 4:
            if channel is None:
                raise InputError(_four_d_message(path, shape[3]))
            if not 0 <= channel < shape[3]:
                raise InputError(f"{path}: channel={channel} out of range 0..{shape[3] - 1}")
            data = np.asanyarray(img.dataobj[..., channel])
        elif len(shape) in (2, 3):
            data = np.asanyarray(img.dataobj).reshape(shape + (1,) * (3 - len(shape)))
        else:
            raise ImageReadError(f"{path}: expected a 3-d NIfTI image, got shape {img.shape}")
        affine = np.asarray(img.affine, dtype=np.float64)
    except (ImageReadError, InputError):
        raise
    except Exception as exc:
        raise ImageReadError(
            f"{path}: cannot read as NIfTI ({type(exc).__name__}: {exc}); "
            "the file may be truncated or not a NIfTI image"
        ) from exc
    array = np.ascontiguousarray(np.asarray(data).transpose(2, 1, 0))
    ours = affine[:, _REVERSE]
    try:
        return Volume.from_affine(array, ours, meta={"format": "nifti"})
    except InputError as exc:
        raise ImageReadError(f"{path}: invalid NIfTI geometry: {exc}") from exc


def _four_d_message(path: Path, n: int) -> str:
    """Why a 4-D file was not read, for Python and command-line users alike."""
    return (
        f"{path}: a 4-D image with {n} volumes (channels or time points) where one 3-D volume "
        f"is expected; read one with fastseg.io.read(path, channel=k), k in 0..{n - 1}, or "
        f"give each channel its own 3-D file (<case>_0000, <case>_0001... in MSD/nnU-Net "
        f"layout); fastseg convert also reads a 4-D image volume by volume when its "
        f"dataset.json names {n} channels. A label map must be 3-D"
    )


def write_nifti(volume: Volume, path: Path) -> None:
    """Write with qform and sform (code 1, scanner) set and the array dtype preserved
    (bool is stored as uint8, float16 as float32)."""
    import nibabel as nib

    array = volume.array
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    affine = volume.affine[:, _REVERSE]
    try:
        img = nib.Nifti1Image(array.transpose(2, 1, 0), affine, dtype=array.dtype)
    except Exception as exc:
        raise InputError(f"{path}: cannot store dtype {array.dtype} in NIfTI ({exc})") from exc
    _save(img, affine, path, "sec")


def write_nifti_channels(channels: np.ndarray, affine: np.ndarray, path: Path) -> None:
    """Write ``channels`` ``(K, z, y, x)`` as a 4D NIfTI image ``(x, y, z, K)`` (channel k the
    4th index) with ``affine`` (the voxel-to-RAS+ mm matrix of ``(z, y, x)`` indices) as qform and
    sform; float16 is stored as float32."""
    import nibabel as nib

    array = channels.astype(np.float32) if channels.dtype == np.float16 else channels
    if array.ndim != 4:
        raise InputError(f"{path}: expected channels (K, z, y, x), got shape {array.shape}")
    xyz = affine[:, _REVERSE]
    img = nib.Nifti1Image(array.transpose(3, 2, 1, 0), xyz, dtype=array.dtype)
    _save(img, xyz, path, "unknown")


def _save(img: Any, affine: np.ndarray, path: Path, time_unit: str) -> None:
    """Set qform and sform (code 1, scanner) and the units (mm), then write atomically."""
    import nibabel as nib

    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", time_unit)
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    with atomic_path(path, suffix) as tmp:
        nib.save(img, str(tmp))
