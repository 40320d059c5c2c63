"""Store schema: layout, attribute names, version, and the chunk/codec defaults.

Layout of a store (a Zarr v3 hierarchy)::

    <root>/zarr.json                 group; attributes["fastseg"] = dataset attributes
    <root>/cases/<case>/zarr.json    group; attributes["fastseg"] = case attributes, written last
    <root>/cases/<case>/image        (C, z, y, x) source intensities on the stored grid
    <root>/cases/<case>/label        (z, y, x) uint8/uint16 classes (absent for unlabelled cases)
    <root>/cases/<case>/foreground   (4, N) uint16/int32 columns (class, z, y, x): sampled voxels
    <root>/cases/<case>/codebook     (C, K) float32, only when ``image`` holds codes: the
                                     distinct values of a float image (lossless)
    <root>/conversion_report/zarr.json  group; attributes["fastseg_conversion_report"]

A case is complete (visible to readers) only when its group attributes say ``complete: true``;
that metadata document is the last object a conversion writes for the case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fastseg.errors import InputError

SCHEMA_VERSION = 1
"""Version of the layout and attributes below; readers refuse stores with a newer one."""

ATTRS_KEY = "fastseg"
CASES = "cases"
REPORT = "conversion_report"
REPORT_KEY = "fastseg_conversion_report"
IMAGE = "image"
LABEL = "label"
FOREGROUND = "foreground"
CODEBOOK = "codebook"

FOREGROUND_SAMPLES = 10000
"""Foreground voxels sampled per class and case (nnU-Net's number) ..."""
FOREGROUND_MIN_FRACTION = 0.01
"""... or this fraction of the class' voxels when that is more."""
INTENSITY_SAMPLES = 10000
"""Foreground intensities sampled per case and channel for the dataset fingerprint."""

_CNAMES = ("lz4", "lz4hc", "zstd", "zlib", "blosclz")
_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def check_case_id(case_id: str) -> str:
    """Case ids are file-name-safe: letters, digits, ``_ . -``, not starting with ``.``/``_``."""
    if not isinstance(case_id, str) or not _CASE_ID.match(case_id) or case_id.endswith("."):
        raise InputError(
            f"case id {case_id!r}: expected letters, digits, '_', '.', '-' (starting with a "
            "letter or digit)"
        )
    return case_id


@dataclass(frozen=True)
class StorageOptions:
    """Chunking and compression of the stored arrays.

    ``chunks`` is the spatial chunk shape ``(z, y, x)`` (clamped to each case's shape; image
    chunks hold one channel); ``cname``/``clevel``/``shuffle`` configure the Blosc codec of the
    image (and the small foreground/codebook arrays), ``label_cname``/``label_clevel`` the one
    of the label maps (uint8/uint16, byte shuffle). Defaults chosen from the measurements in
    ``benchmarks/bench_store.py``.
    """

    chunks: tuple[int, int, int] = (64, 64, 64)
    cname: str = "zstd"
    clevel: int = 5
    shuffle: str = "shuffle"
    label_cname: str = "lz4hc"
    label_clevel: int = 9

    def __post_init__(self) -> None:
        if len(self.chunks) != 3 or any(int(c) < 1 for c in self.chunks):
            raise InputError(f"chunks: expected 3 positive sizes (z, y, x), got {self.chunks!r}")
        object.__setattr__(self, "chunks", tuple(int(c) for c in self.chunks))
        for name in ("cname", "label_cname"):
            if getattr(self, name) not in _CNAMES:
                raise InputError(
                    f"{name}: expected a Blosc compressor {_CNAMES}, got {getattr(self, name)!r}"
                )
        for name in ("clevel", "label_clevel"):
            if not 0 <= int(getattr(self, name)) <= 9:
                raise InputError(f"{name}: expected 0..9, got {getattr(self, name)}")
        if self.shuffle not in ("noshuffle", "shuffle", "bitshuffle"):
            raise InputError(
                f"shuffle: expected 'noshuffle', 'shuffle' or 'bitshuffle', got {self.shuffle!r}"
            )

    def chunk_shape(self, shape: Sequence[int]) -> tuple[int, int, int]:
        """Spatial chunk shape for an array of spatial ``shape`` (never larger than it)."""
        return (
            max(1, min(self.chunks[0], int(shape[0]))),
            max(1, min(self.chunks[1], int(shape[1]))),
            max(1, min(self.chunks[2], int(shape[2]))),
        )

    def codec(self) -> Any:
        """The zarr v3 Blosc codec of images."""
        from zarr.codecs import BloscCodec

        cname: Any = self.cname
        shuffle: Any = self.shuffle
        return BloscCodec(cname=cname, clevel=int(self.clevel), shuffle=shuffle)

    def label_codec(self) -> Any:
        """The zarr v3 Blosc codec of label maps."""
        from zarr.codecs import BloscCodec

        cname: Any = self.label_cname
        return BloscCodec(cname=cname, clevel=int(self.label_clevel), shuffle="shuffle")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["chunks"] = list(self.chunks)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StorageOptions:
        return cls(
            chunks=tuple(data["chunks"]),
            cname=str(data["cname"]),
            clevel=int(data["clevel"]),
            shuffle=str(data["shuffle"]),
            label_cname=str(data.get("label_cname", data["cname"])),
            label_clevel=int(data.get("label_clevel", data["clevel"])),
        )


def check_schema(attrs: Mapping[str, Any], where: str) -> None:
    """Refuse documents that are not fastseg stores or come from a newer schema."""
    version = attrs.get("schema_version")
    if not isinstance(version, int):
        raise InputError(f"{where}: not a fastseg store (no fastseg schema_version attribute)")
    if version > SCHEMA_VERSION:
        raise InputError(
            f"{where}: store schema version {version} is newer than this fastseg reads "
            f"({SCHEMA_VERSION}); upgrade fastseg"
        )
