"""DICOM series (a folder of single-frame slices) through pydicom; read only.

Slices are grouped by SeriesInstanceUID and ordered by ImagePositionPatient projected on the
slice normal (row cosine x column cosine), never by file name. The slice spacing comes from
those positions. RescaleSlope/RescaleIntercept are applied, so CT comes out in Hounsfield
units. No patient-identifying attribute and no UID is copied into ``Volume.meta`` or into an
error message; :func:`dicom_series` returns the UIDs to a caller who asks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fastseg.errors import ImageReadError, InputError
from fastseg.io._volume import Volume

_LPS = np.array([-1.0, -1.0, 1.0])
_ORIENT_TOL = 1e-4
_INT16 = np.iinfo(np.int16)


@dataclass
class _Slice:
    path: Path
    ds: Any
    position: npt.NDArray[np.float64]
    along: float


def _files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _load(paths: Iterable[Path]) -> tuple[list[tuple[Path, Any]], int]:
    """Datasets of the DICOM files among ``paths`` (others skipped) and how many were DICOM."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    found = []
    n_dicom = 0
    for path in paths:
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError):
            continue
        n_dicom += 1
        if "PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            found.append((path, ds))
    return found, n_dicom


def read_dicom_series(
    folder: Path, series_uid: str | None = None, spacing_tolerance: float | None = None
) -> Volume:
    """Read the DICOM series in ``folder`` (searched recursively; hidden files skipped).

    Several series → :class:`InputError` describing them by number, modality and size (no UID),
    unless ``series_uid`` picks one (:func:`dicom_series` lists the UIDs).
    ``spacing_tolerance`` (mm): how far a slice gap may differ from the median gap
    (default max(0.01 mm, 1 % of the median)).
    """
    files = _files(folder)
    if not files:
        raise ImageReadError(f"{folder}: folder is empty (no files to read as a DICOM series)")
    return read_dicom_files(files, folder, series_uid, spacing_tolerance)


def read_dicom_files(
    files: Sequence[Path],
    where: Path,
    series_uid: str | None = None,
    spacing_tolerance: float | None = None,
) -> Volume:
    """Read one series from the given DICOM files; ``where`` names the source in errors."""
    found, n_dicom = _load(files)
    if n_dicom == 0:
        raise ImageReadError(f"{where}: no DICOM file found among {len(files)} file(s)")
    if not found:
        raise ImageReadError(
            f"{where}: {n_dicom} DICOM file(s) but none holds pixel data (no image slices)"
        )
    series = _group(found)
    if series_uid is not None:
        if series_uid not in series:
            raise InputError(
                f"{where}: series_uid={series_uid!r} not found among {len(series)} series "
                f"({_describe(series)}); fastseg.io.dicom_series(folder) lists their UIDs"
            )
        chosen = series[series_uid]
    elif len(series) > 1:
        raise InputError(
            f"{where}: holds {len(series)} DICOM series ({_describe(series)}) and fastseg reads "
            "one: with fastseg.io.read pass series_uid= (fastseg.io.dicom_series(folder) lists "
            "the UIDs); for fastseg convert keep one series per folder"
        )
    else:
        chosen = next(iter(series.values()))
    return _assemble(chosen, where, spacing_tolerance)


@dataclass(frozen=True)
class DicomSeries:
    """One series of a DICOM folder, as listed by :func:`dicom_series`. ``uid`` is the
    SeriesInstanceUID ("" when absent); ``shape``: (rows, columns) of its first slice."""

    uid: str
    modality: str
    n_slices: int
    shape: tuple[int, int]
    description: str


def dicom_series(folder: str | os.PathLike[str]) -> list[DicomSeries]:
    """The image series in ``folder`` (searched recursively, hidden files skipped), in the order
    of their first file's path — the order of "series 1, series 2..." in fastseg's errors.
    Pass a ``uid`` to ``fastseg.io.read(folder, series_uid=...)``. Nothing is printed or
    logged: the UIDs and descriptions are returned to the caller only."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageReadError(f"{root}: not a folder (expected a folder of DICOM files)")
    found, _ = _load(_files(root))
    out = []
    for uid, items in _group(found).items():
        ds = items[0][1]
        out.append(
            DicomSeries(
                uid,
                str(ds.get("Modality", "")),
                len(items),
                _size(ds),
                str(ds.get("SeriesDescription", "")).strip(),
            )
        )
    return out


def _group(found: list[tuple[Path, Any]]) -> dict[str, list[tuple[Path, Any]]]:
    """Datasets by SeriesInstanceUID, in the order of each series' first file."""
    series: dict[str, list[tuple[Path, Any]]] = {}
    for path, ds in found:
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((path, ds))
    return series


def _size(ds: Any) -> tuple[int, int]:
    try:
        return int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    except (TypeError, ValueError):
        return 0, 0


def _describe(series: dict[str, list[tuple[Path, Any]]]) -> str:
    """The series by number, modality, slice count and size: no UID, description or date
    (they may identify the patient or the study)."""
    parts = []
    for k, items in enumerate(series.values(), 1):
        rows, cols = _size(items[0][1])
        modality = str(items[0][1].get("Modality", "")).strip() or "unknown modality"
        parts.append(f"series {k}: {modality}, {len(items)} slice(s) {rows}x{cols}")
    return "; ".join(parts)


def _floats(ds: Any, keyword: str, n: int, path: Path) -> npt.NDArray[np.float64]:
    value = ds.get(keyword)
    if value is None:
        raise ImageReadError(f"{path}: missing {keyword}; cannot place the slice in space")
    try:
        arr = np.array([float(v) for v in (value if n > 1 else [value])], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ImageReadError(f"{path}: {keyword} is not numeric: {value!r}") from exc
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise ImageReadError(f"{path}: {keyword} should hold {n} finite numbers, got {value!r}")
    return arr


def _assemble(items: list[tuple[Path, Any]], where: Path, tolerance: float | None) -> Volume:
    for path, ds in items:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            raise ImageReadError(
                f"{path}: multi-frame DICOM object ({frames} frames, "
                f"{getattr(ds.get('SOPClassUID'), 'name', 'unknown SOP class')}) is not supported; "
                "fastseg reads series of single-frame slices"
            )
        if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
            raise ImageReadError(f"{path}: colour DICOM images are not supported")

    first_path, first = items[0]
    iop = _floats(first, "ImageOrientationPatient", 6, first_path)
    row, col = iop[:3], iop[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3:
        raise ImageReadError(
            f"{first_path}: ImageOrientationPatient is not two unit vectors: {iop}"
        )
    row = row / np.linalg.norm(row)
    col = col / np.linalg.norm(col)
    normal = np.cross(row, col)
    pixel_spacing = _floats(first, "PixelSpacing", 2, first_path)
    shape2d = (int(first.Rows), int(first.Columns))

    slices = []
    for path, ds in items:
        if not np.allclose(_floats(ds, "ImageOrientationPatient", 6, path), iop, atol=_ORIENT_TOL):
            raise ImageReadError(
                f"{where}: slices have different ImageOrientationPatient "
                f"({first_path.name}: {iop.tolist()} vs {path.name}: "
                f"{_floats(ds, 'ImageOrientationPatient', 6, path).tolist()})"
            )
        if (int(ds.Rows), int(ds.Columns)) != shape2d:
            raise ImageReadError(
                f"{where}: slices differ in size ({first_path.name}: {shape2d} vs {path.name}: "
                f"{(int(ds.Rows), int(ds.Columns))})"
            )
        if not np.allclose(_floats(ds, "PixelSpacing", 2, path), pixel_spacing, atol=1e-4):
            raise ImageReadError(f"{where}: slices differ in PixelSpacing ({path.name})")
        pos = _floats(ds, "ImagePositionPatient", 3, path)
        slices.append(_Slice(path, ds, pos, float(pos @ normal)))
    slices.sort(key=lambda s: s.along)

    if len(slices) > 1:
        along = np.array([s.along for s in slices])
        gaps = np.diff(along)
        dup = np.flatnonzero(gaps < 1e-3)
        if dup.size:
            a, b = slices[dup[0]], slices[dup[0] + 1]
            raise ImageReadError(
                f"{where}: {dup.size + 1} or more slices share a position along the normal "
                f"({a.path.name} and {b.path.name} at {a.along:.3f} mm); several acquisitions "
                "(echoes, time points) in one series are not supported"
            )
        dz = float(np.median(gaps))
        tol = tolerance if tolerance is not None else max(0.01, 0.01 * dz)
        if np.any(np.abs(gaps - dz) > tol):
            shown = ", ".join(f"{g:.4g}" for g in gaps[:50])
            raise ImageReadError(
                f"{where}: inconsistent slice spacing along the normal (median {dz:.4g} mm, "
                f"tolerance {tol:.3g} mm); gaps between sorted slices: [{shown}"
                f"{', ...' if gaps.size > 50 else ''}] mm — missing or extra slices?"
            )
        step = (slices[-1].position - slices[0].position) / (len(slices) - 1)
        inplane = step - (step @ normal) * normal
        if np.linalg.norm(inplane) > max(0.01, 0.01 * dz):
            raise ImageReadError(
                f"{where}: slice positions drift within the slice plane by "
                f"{np.linalg.norm(inplane):.3g} mm per slice (gantry tilt / sheared stack); "
                "not supported without resampling"
            )
        spacing_source = "ImagePositionPatient"
    else:
        dz, spacing_source = _single_slice_spacing(first)

    array, rescale = _pixels(slices)
    direction = np.stack([normal, col, row], axis=1) * _LPS[:, None]
    origin = slices[0].position * _LPS
    meta: dict[str, Any] = {
        "format": "dicom",
        "modality": str(first.get("Modality", "")),
        "n_slices": len(slices),
        "slice_spacing_source": spacing_source,
        **rescale,
    }
    try:
        return Volume(
            array, (dz, float(pixel_spacing[0]), float(pixel_spacing[1])), origin, direction, meta
        )
    except InputError as exc:
        raise ImageReadError(f"{where}: invalid DICOM geometry: {exc}") from exc


def _single_slice_spacing(ds: Any) -> tuple[float, str]:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = ds.get(keyword)
        try:
            dz = float(value) if value not in (None, "") else 0.0
        except (TypeError, ValueError):
            dz = 0.0
        if np.isfinite(dz) and dz > 0:
            return dz, keyword
    return 1.0, "default"


def _pixels(slices: list[_Slice]) -> tuple[np.ndarray, dict[str, Any]]:
    raw = []
    slopes, intercepts = [], []
    for s in slices:
        try:
            px = s.ds.pixel_array
        except Exception as exc:
            syntax = getattr(getattr(s.ds, "file_meta", None), "TransferSyntaxUID", None)
            name = getattr(syntax, "name", str(syntax))
            raise ImageReadError(
                f"{s.path}: cannot decode pixel data (transfer syntax {name}): {exc}. "
                "Compressed syntaxes need a decoder package such as pylibjpeg"
            ) from exc
        raw.append(px)
        slopes.append(float(s.ds.get("RescaleSlope", 1.0) or 1.0))
        intercepts.append(float(s.ds.get("RescaleIntercept", 0.0) or 0.0))
    stack = np.stack(raw)
    if all(m == 1.0 for m in slopes) and all(b == 0.0 for b in intercepts):
        array = stack
    else:
        values = stack.astype(np.float64) * np.array(slopes)[:, None, None]
        values += np.array(intercepts)[:, None, None]
        integral = bool(np.all(values == np.round(values)))
        if integral and _INT16.min <= values.min() and values.max() <= _INT16.max:
            array = values.astype(np.int16)
        else:
            array = values.astype(np.float32)
    uniform = len(set(slopes)) == 1 and len(set(intercepts)) == 1
    rescale: dict[str, Any] = (
        {"rescale_slope": slopes[0], "rescale_intercept": intercepts[0]}
        if uniform
        else {"rescale_slope": "per-slice", "rescale_intercept": "per-slice"}
    )
    return np.ascontiguousarray(array), rescale
