"""Medical image I/O: one :class:`Volume` type (array ``(z, y, x)`` + RAS+ geometry in mm),
readers/writers for NIfTI, MHA/NRRD and DICOM series, exact reorientation, pair checks."""

from __future__ import annotations

from fastseg.io._dicom import DicomSeries, dicom_series
from fastseg.io._dispatch import read, write
from fastseg.io._labels import label_map
from fastseg.io._orientation import axcodes, reorient
from fastseg.io._pairs import check_pair
from fastseg.io._volume import Volume

__all__ = [
    "DicomSeries",
    "Volume",
    "axcodes",
    "check_pair",
    "dicom_series",
    "label_map",
    "read",
    "reorient",
    "write",
]
