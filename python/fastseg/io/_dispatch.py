"""``read`` and ``write``: pick the format from the path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastseg.errors import ImageReadError, InputError
from fastseg.io._volume import Volume

_NIFTI = (".nii", ".nii.gz")
_ITK = (".mha", ".mhd", ".nrrd", ".nhdr")
_DICOM = (".dcm", ".dicom", ".ima")
_OPTIONS = {
    "nifti": {"channel"},
    "itk": {"channel"},
    "dicom": {"series_uid", "spacing_tolerance"},
}


def _check_options(path: Path, kind: str, opts: dict[str, Any]) -> None:
    unknown = sorted(set(opts) - _OPTIONS[kind])
    if unknown:
        raise InputError(
            f"{path}: read() option(s) {', '.join(unknown)} do not apply to {kind} input; "
            f"accepted: {', '.join(sorted(_OPTIONS[kind]))}"
        )


def _kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(_NIFTI):
        return "nifti"
    if name.endswith(_ITK):
        return "itk"
    if name.endswith(_DICOM):
        return "dicom"
    return None


def has_dicom_preamble(path: Path) -> bool:
    """Whether ``path`` is a DICOM Part 10 file (b"DICM" after the 128-byte preamble)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def read(path: str | os.PathLike[str], **opts: Any) -> Volume:
    """Read an image as stored (no resampling) into a :class:`Volume` with ``(z, y, x)`` array.

    Formats: NIfTI ``.nii``/``.nii.gz`` (nibabel); ``.mha``/``.mhd``/``.nrrd``/``.nhdr``
    (SimpleITK); a folder holding a DICOM series, or a single DICOM file (pydicom).

    Options: ``channel=`` picks one volume of a 4-d NIfTI or multi-component ITK image;
    for DICOM folders ``series_uid=`` picks a series and ``spacing_tolerance=`` (mm) bounds
    how far slice gaps may differ.
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: no such file or folder")
    if p.is_dir():
        from fastseg.io._dicom import read_dicom_series

        _check_options(p, "dicom", opts)

        return read_dicom_series(p, **opts)
    kind = _kind(p)
    if kind is None and has_dicom_preamble(p):
        kind = "dicom"
    if kind is not None:
        _check_options(p, kind, opts)
    if kind == "nifti":
        from fastseg.io._nifti import read_nifti

        return read_nifti(p, **opts)
    if kind == "itk":
        from fastseg.io._itk import read_itk

        return read_itk(p, **opts)
    if kind == "dicom":
        from fastseg.io._dicom import read_dicom_files

        return read_dicom_files([p], p, **opts)
    raise ImageReadError(
        f"{p}: unknown image format (extension {''.join(p.suffixes) or 'none'}); expected "
        f"{', '.join(_NIFTI + _ITK)}, a DICOM file or a folder holding a DICOM series"
    )


def write(volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write ``volume`` to ``path`` atomically (temporary name in the same folder, then rename).

    Formats by extension: ``.nii``/``.nii.gz`` (qform and sform set, dtype kept),
    ``.mha``/``.mhd``/``.nrrd``/``.nhdr`` (compressed). Returns the path written.
    """
    if not isinstance(volume, Volume):
        raise InputError(f"volume: expected a fastseg.io.Volume, got {type(volume).__name__}")
    p = Path(path)
    kind = _kind(p)
    if kind == "nifti":
        from fastseg.io._nifti import write_nifti

        write_nifti(volume, p)
    elif kind == "itk":
        from fastseg.io._itk import write_itk

        write_itk(volume, p)
    else:
        raise InputError(
            f"{p}: cannot write this format (extension {''.join(p.suffixes) or 'none'}); "
            f"expected one of {', '.join(_NIFTI + _ITK)}"
        )
    return p
