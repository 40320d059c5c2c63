"""Per-case work of the converter: load and check, fingerprint, preprocess, write.

Both task functions take only picklable arguments (a :class:`CaseSource`, plain dicts and the
store URL) and return plain dicts, so they run the same in-process, in a process pool or on a
Dask cluster. Bad input becomes ``{"ok": False, "error": ...}``, never an exception.
"""

from __future__ import annotations

import math
import os
import traceback
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fastseg.errors import FastsegError, InputError
from fastseg.store import _schema as sc
from fastseg.store._preprocess import _stored_dtype as _stored_dtype
from fastseg.store._preprocess import _to_dtype as _to_dtype
from fastseg.store._preprocess import canonical, crop_box, prepare
from fastseg.store._sources import CaseSource, relative, sha256_of


def _seed(case_id: str) -> int:
    return zlib.crc32(case_id.encode())


def load_case(
    src: CaseSource, label_values: Sequence[int] | None, alignment: str = "world"
) -> tuple[list[Any], Any, dict[str, Any]]:
    """Read and check a case: channels (Volumes on one grid), label Volume or None, and notes.

    Channels not on the first channel's grid are resampled onto it (linear): by world position
    (``alignment="world"``) or after a ``"rigid"``/``"affine"`` mutual-information registration.

    Raises ImageReadError (unreadable), GeometryMismatchError (image/label grids differ),
    InputError (NaN/inf intensities, non-integer labels, classes not in ``label_values``).
    """
    from fastseg.io import check_pair, read

    notes: dict[str, Any] = {}
    channels = []
    for path, index in src.images:
        vol = read(path) if index is None else read(path, channel=index)
        if vol.array.dtype.kind not in "biuf":
            raise InputError(f"{path}: expected a numeric image, got dtype {vol.array.dtype}")
        if vol.array.dtype.kind == "f" and not np.all(np.isfinite(vol.array)):
            bad = int(np.count_nonzero(~np.isfinite(vol.array)))
            raise InputError(f"{path}: image has {bad} NaN/inf voxels")
        channels.append(vol)
    first = channels[0]
    for k in range(1, len(channels)):
        if not channels[k].same_geometry(first):
            from fastseg.preprocess._register import register, resample_onto

            if alignment == "world":
                channels[k] = resample_onto(channels[k], first)
            else:
                channels[k] = register(channels[k], first, kind=alignment)
            notes.setdefault("channels_resampled_onto_channel_0", []).append(k)
    modality = str(first.meta.get("modality", "")).upper()
    if modality:
        notes["dicom_modality"] = modality
    label = None
    if src.label is not None:
        label = read(src.label)
        check_pair(first, label, src.images[0][0], src.label)
        arr = label.array
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                raise InputError(f"{src.label}: label map has non-integer values")
            arr = arr.astype(np.int64)
        elif arr.dtype.kind == "b":
            arr = arr.astype(np.uint8)
        if arr.size and int(arr.min()) < 0:
            raise InputError(f"{src.label}: label map has negative values ({int(arr.min())})")
        present = _present(arr)
        if label_values is not None:
            extra = sorted(set(present) - set(label_values))
            if extra:
                raise InputError(
                    f"{src.label}: label classes {extra} are not in dataset.json labels "
                    f"{sorted(label_values)}"
                )
        notes["label_dtype"] = str(label.array.dtype)
        label = label.with_array(arr)
    return channels, label, notes


def _sample_rows(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    if k >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=k, replace=False))


def _run(task: Callable[[], dict[str, Any]], case_id: str) -> dict[str, Any]:
    try:
        result = task()
    except (FastsegError, OSError, ValueError, MemoryError) as exc:
        return {"case_id": case_id, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:  # a bug, reported per case so the other cases still convert
        tb = traceback.format_exc(limit=3)
        return {"case_id": case_id, "ok": False, "error": f"{type(exc).__name__}: {exc}\n{tb}"}
    result.update(case_id=case_id, ok=True)
    return result


def fingerprint_task(
    src: CaseSource, label_values: list[int] | None, alignment: str = "world"
) -> dict[str, Any]:
    """What the dataset fingerprint needs from one case (nnU-Net's fingerprint extraction):
    RAS spacing, shape after cropping, sampled foreground intensities per channel."""

    def work() -> dict[str, Any]:
        channels, label, notes = load_case(src, label_values, alignment)
        channels, label = canonical(channels, label)
        image = np.stack([c.array for c in channels])
        lab = None if label is None else label.array
        box = crop_box(image, lab)
        sl = tuple(slice(lo, hi) for lo, hi in box)
        cropped = image[(slice(None), *sl)]
        mask = (lab[sl] > 0) if lab is not None else np.ones(cropped.shape[1:], dtype=bool)
        if not mask.any():
            mask = np.ones(cropped.shape[1:], dtype=bool)
        rng = np.random.default_rng(_seed(src.case_id))
        values = cropped[:, mask]
        rows = _sample_rows(values.shape[1], sc.INTENSITY_SAMPLES, rng)
        classes = [] if lab is None else [c for c in _present(lab) if c != 0]
        return {
            "spacing": list(channels[0].spacing),
            "shape": [hi - lo for lo, hi in box],
            "samples": values[:, rows].astype(np.float64),
            "classes": classes,
            "dicom_modality": notes.get("dicom_modality"),
        }

    return _run(work, src.case_id)


def _label_dtype(max_class: int) -> np.dtype[Any]:
    if max_class < 1 << 8:
        return np.dtype(np.uint8)
    if max_class < 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.int32)


def _present(label: np.ndarray) -> list[int]:
    """Sorted distinct values of a non-negative integer label map (no sort of the voxels)."""
    if label.size == 0:
        return []
    top = int(label.max())
    if top < 16:
        return [v for v in range(top + 1) if (label == v).any()]
    if top < 1 << 20:
        seen = np.zeros(top + 1, dtype=bool)
        seen[label.ravel()] = True
        return [int(v) for v in np.flatnonzero(seen)]
    return [int(v) for v in np.unique(label)]


def _foreground_rows(
    label: np.ndarray, case_id: str
) -> tuple[np.ndarray, dict[str, int], dict[str, int]]:
    """Per class, up to 10,000 voxel indices (or 1% of the class when more), sorted;
    rows ``(class, z, y, x)``. Deterministic: the generator is seeded by the case id."""
    rng = np.random.default_rng(_seed(case_id) + 1)
    parts = []
    sampled: dict[str, int] = {}
    voxels: dict[str, int] = {}
    present = [c for c in _present(label) if c != 0]
    if len(present) <= 8:  # one pass per class beats sorting the foreground
        groups = [(c, np.flatnonzero(label == c)) for c in present]
    else:
        flat = np.flatnonzero(label)
        classes = label.ravel()[flat]
        order = np.argsort(classes, kind="stable")
        flat, classes = flat[order], classes[order]
        bounds = np.flatnonzero(np.diff(classes)) + 1
        groups = [
            (int(part[0]), idx)
            for part, idx in zip(np.split(classes, bounds), np.split(flat, bounds), strict=True)
        ]
    for c, members in groups:
        n = members.size
        k = max(min(sc.FOREGROUND_SAMPLES, n), math.ceil(n * sc.FOREGROUND_MIN_FRACTION))
        chosen = members[_sample_rows(n, k, rng)]
        rows = np.column_stack(np.unravel_index(chosen, label.shape))
        parts.append(np.column_stack([np.full(rows.shape[0], c, dtype=np.int64), rows]))
        sampled[str(c)] = int(rows.shape[0])
        voxels[str(c)] = int(n)
    if not parts:
        return np.zeros((0, 4), dtype=np.uint16), sampled, voxels
    rows = np.concatenate(parts)
    small = rows.max() < 1 << 16
    return rows.astype(np.uint16 if small else np.int32), sampled, voxels


def convert_task(src: CaseSource, plan: dict[str, Any], url: str) -> dict[str, Any]:
    """Preprocess one case with the dataset ``plan`` and write it to the store at ``url``."""
    return _run(lambda: _convert(src, plan, url), src.case_id)


def _convert(src: CaseSource, plan: dict[str, Any], url: str) -> dict[str, Any]:
    pre = plan["preprocessing"]
    original, original_label, notes = load_case(
        src, plan.get("label_values"), pre["channel_alignment"]
    )
    prepared = prepare(original, original_label, pre)
    stored, lab, record = prepared.image, prepared.label, prepared.record
    pad = [float(stored[c].min()) for c in range(stored.shape[0])]
    codes, codebook = _codebook(stored) if stored.dtype.kind == "f" else (None, None)

    fg_rows = np.zeros((0, 4), dtype=np.uint16)
    sampled: dict[str, int] = {}
    voxels: dict[str, int] = {}
    label_store = None
    if lab is not None:
        label_store = lab.astype(_label_dtype(int(lab.max()) if lab.size else 0))
        fg_rows, sampled, voxels = _foreground_rows(label_store, src.case_id)

    sources = []
    for path in src.files():
        sources.append({"path": relative(path, src.root), "sha256": sha256_of(path)})
    attrs: dict[str, Any] = {
        "schema_version": sc.SCHEMA_VERSION,
        "case_id": src.case_id,
        "channels": int(stored.shape[0]),
        "has_label": label_store is not None,
        "source": {
            "files": sources,
            "image_dtype": record["source_image_dtype"],
            "label_dtype": notes.get("label_dtype"),
            "channel_files": [{"path": relative(p, src.root), "volume": i} for p, i in src.images],
        },
        "original": record["original"],
        "canonical": record["canonical"],
        "crop_box": record["crop_box"],
        "resampling": record["resampling"],
        "stored": {
            **record["stored"],
            "coding": "none" if codebook is None else "codebook",
            "codebook_sizes": None if codebook is None else [int(n) for n in codebook[1]],
        },
        "normalization": record["normalization"],
        "pad_value": pad,
        "foreground": {"sampled": sampled, "voxels": voxels},
        "notes": {k: v for k, v in notes.items() if k != "label_dtype"},
        "complete": True,
    }
    image_out = stored if codes is None else codes
    table = None if codebook is None else codebook[0]
    _write_case(url, src.case_id, image_out, label_store, fg_rows, attrs, plan["storage"], table)
    return {"source_bytes": int(sum(_size(p) for p in src.files()))}


def _size(path: str) -> int:
    """Bytes of a file, or of every file below a folder (a DICOM series, nested or not)."""
    if os.path.isdir(path):
        return sum(
            os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(path)
            for name in names
        )
    return os.path.getsize(path)


def _codebook(
    image: np.ndarray,
) -> tuple[np.ndarray | None, tuple[np.ndarray, list[int]] | None]:
    """Lossless coding of a float image whose channels hold few distinct values (quantised
    scans stored as float, as many MR images are): uint8/uint16 codes into per-channel sorted
    tables of the distinct values. (None, None) when a channel has more than 65536 values."""
    books = []
    for channel in image:
        flat = channel.ravel()
        if flat.size > 1 << 20 and np.unique(flat[:: flat.size >> 20]).size > 1 << 16:
            return None, None
        values = np.unique(flat)
        if values.size > 1 << 16:
            return None, None
        books.append(values)
    width = max(len(b) for b in books)
    codes = np.empty(image.shape, dtype=np.uint8 if width <= 1 << 8 else np.uint16)
    table = np.zeros((image.shape[0], width), dtype=np.float32)
    for c, values in enumerate(books):
        codes[c] = np.searchsorted(values, image[c])
        table[c, : len(values)] = values
    return codes, (table, [len(b) for b in books])


def _write_case(
    url: str,
    case_id: str,
    image: np.ndarray,
    label: np.ndarray | None,
    fg_rows: np.ndarray,
    attrs: dict[str, Any],
    storage: dict[str, Any],
    codebook: np.ndarray | None = None,
) -> None:
    """Write a case so that it becomes visible only at the end: stale data under the case's
    prefix is removed, arrays are written, and the group metadata with ``complete: true`` is the
    last object stored (one atomic object write on local disk and on object stores)."""
    import zarr

    from fastseg.store._backend import backend_for

    options = sc.StorageOptions.from_dict(storage)
    backend = backend_for(url)
    prefix = f"{sc.CASES}/{case_id}"
    backend.delete_prefix(prefix)
    store = backend.zarr_store()
    group = zarr.create_group(store, path=prefix, attributes={sc.ATTRS_KEY: {"complete": False}})
    chunks = options.chunk_shape(image.shape[1:])
    arr = group.create_array(
        sc.IMAGE,
        shape=image.shape,
        chunks=(1, *chunks),
        dtype=image.dtype,
        compressors=options.codec(),
        fill_value=0,
    )
    arr[...] = image
    if label is not None:
        larr = group.create_array(
            sc.LABEL,
            shape=label.shape,
            chunks=chunks,
            dtype=label.dtype,
            compressors=options.label_codec(),
            fill_value=0,
        )
        larr[...] = label
    columns = np.ascontiguousarray(fg_rows.T)  # (4, N): sorted columns compress ~5x better
    farr = group.create_array(
        sc.FOREGROUND,
        shape=columns.shape,
        chunks=(4, max(1, columns.shape[1])),
        dtype=columns.dtype,
        compressors=options.codec(),
        fill_value=0,
    )
    if columns.shape[1]:
        farr[...] = columns
    if codebook is not None:
        carr = group.create_array(
            sc.CODEBOOK,
            shape=codebook.shape,
            chunks=codebook.shape,
            dtype=np.float32,
            compressors=options.codec(),
            fill_value=0,
        )
        carr[...] = codebook
    group.attrs.put({sc.ATTRS_KEY: _jsonable(attrs)})


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
