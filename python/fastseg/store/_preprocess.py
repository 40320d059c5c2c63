"""The training preprocessing of one scan and its inverse, shared by the converter and ``predict``.

Forward (:func:`prepare`): channels (Volumes on one grid) → reorient to RAS → crop to the
non-zero box → N4 bias-field correction (optional, MR) → resample to the target spacing →
cast to the stored dtype; the normalisation parameters are computed on the way (CT: the plan's
dataset-wide window and mean/std; MR: the cropped image's own mean/std). :func:`preprocess`
adds the normalisation, giving the network input ``(C, z, y, x)`` float32 exactly as a store
read returns it. The geometry record (keys ``original``, ``canonical``, ``crop_box``,
``resampling``, ``stored``) is what a store case's attributes hold, so :func:`restore` maps data
on the stored grid back to the source scan's grid and geometry for a new scan and a stored case
alike. Arrays are ``(z, y, x)`` / ``(C, z, y, x)``, spacings mm.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastseg.errors import ImageReadError, InputError
from fastseg.store._chunks import Transform, apply_transform

CANONICAL = "RAS"


@dataclass
class Prepared:
    """One scan on the stored grid: ``image`` ``(C, z, y, x)`` in source units and the stored
    dtype, ``label`` ``(z, y, x)`` (None without one), and the ``record`` (geometry, resampling,
    ``normalization``, ``source_image_dtype``)."""

    image: np.ndarray
    label: np.ndarray | None
    record: dict[str, Any]


def geometry(vol: Any) -> dict[str, Any]:
    """The JSON record of a Volume's grid: shape, spacing, origin, direction, orientation."""
    return {
        "shape": list(vol.shape),
        "spacing": list(vol.spacing),
        "origin": list(vol.origin),
        "direction": vol.direction.tolist(),
        "orientation": vol.orientation,
    }


def _floats(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values]


def canonical(channels: list[Any], label: Any) -> tuple[list[Any], Any]:
    """Channels and label reoriented to RAS."""
    from fastseg.io import reorient

    return [reorient(c, CANONICAL) for c in channels], (
        None if label is None else reorient(label, CANONICAL)
    )


def crop_box(image: np.ndarray, label: np.ndarray | None) -> Any:
    """Box of the non-zero voxels of any channel or the label."""
    from fastseg.preprocess._crop import nonzero_box

    return nonzero_box(image, label) if label is not None else nonzero_box(image)


def _stored_dtype(dtypes: Sequence[np.dtype[Any]], bias_field: bool) -> np.dtype[Any]:
    if bias_field:
        return np.dtype(np.float32)
    dt = np.result_type(*dtypes)
    if dt.kind == "b":
        return np.dtype(np.uint8)
    if dt.kind == "f":
        return np.dtype(np.float32)
    if dt.itemsize > 4 or dt == np.dtype(np.uint32):
        return np.dtype(np.float32)
    return np.dtype(dt)


def _to_dtype(array: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    if dtype.kind in "iu" and array.dtype.kind == "f":
        info = np.iinfo(dtype)
        return np.clip(np.rint(array), info.min, info.max).astype(dtype)
    return np.ascontiguousarray(array.astype(dtype, copy=False))


def prepare(original: list[Any], original_label: Any, pre: Mapping[str, Any]) -> Prepared:
    """Preprocess checked channels (Volumes on one grid, as :func:`load_case` returns them) and
    an optional label Volume with the store plan's ``preprocessing`` section ``pre``."""
    from fastseg.preprocess._bias_field import n4_correct
    from fastseg.preprocess._resample import (
        resample_image,
        resample_label,
        resampled_grid,
        resampled_shape,
        separate_axis,
    )

    modalities = list(pre["modalities"])
    if len(original) != len(modalities):
        raise InputError(
            f"expected {len(modalities)} image channel(s) (the plan's modalities {modalities}), "
            f"got {len(original)}"
        )
    channels, label = canonical(original, original_label)
    canon = channels[0]
    image = np.stack([c.array for c in channels])
    lab = None if label is None else label.array
    box = crop_box(image, lab)
    sl = tuple(slice(lo, hi) for lo, hi in box)
    image = image[(slice(None), *sl)]
    lab = None if lab is None else lab[sl]
    crop_origin = canon.index_to_world(np.array([lo for lo, _ in box], dtype=np.float64))

    bias = pre.get("bias_field")
    source_dtype = np.result_type(*[c.array.dtype for c in original])
    corrected = []
    for c in range(image.shape[0]):
        if bias is not None and modalities[c] == "mr":
            corrected.append(
                n4_correct(
                    image[c],
                    canon.spacing,
                    shrink_factor=int(bias["shrink_factor"]),
                    iterations=bias["iterations"],
                    convergence_threshold=float(bias["convergence_threshold"]),
                )
            )
        else:
            corrected.append(image[c])
    stored_dtype = _stored_dtype(
        [a.dtype for a in corrected], bias is not None and "mr" in modalities
    )

    norms = []
    for c, mod in enumerate(modalities):
        if mod == "ct":
            ct = pre["normalization"][c]
            norms.append({"lo": ct["lo"], "hi": ct["hi"], "mean": ct["mean"], "std": ct["std"]})
        else:
            values = corrected[c].astype(np.float64)
            std = float(values.std())
            norms.append({"lo": None, "hi": None, "mean": float(values.mean()),
                          "std": std if std > 1e-8 else 1.0})  # fmt: skip

    target = pre["target_spacing"]
    crop_shape = image.shape[1:]
    new_shape = resampled_shape(crop_shape, canon.spacing, target)
    separate = separate_axis(canon.spacing, target, pre["resampling"]["anisotropy_threshold"])
    if tuple(new_shape) != tuple(crop_shape):
        stored = np.stack([
            resample_image(a, new_shape, order=pre["resampling"]["image_order"],
                           separate=separate,
                           order_separate=pre["resampling"]["order_separate_axis"])
            for a in corrected
        ])  # fmt: skip
        if lab is not None:
            lab = resample_label(lab, new_shape, separate=separate)
    else:
        stored = np.stack(corrected)
    stored = _to_dtype(stored, stored_dtype)
    stored_spacing, stored_origin = resampled_grid(
        crop_shape, canon.spacing, crop_origin, canon.direction, new_shape
    )
    record = {
        "original": geometry(original[0]),
        "canonical": geometry(canon),
        "crop_box": [[lo, hi] for lo, hi in box],
        "resampling": {
            "shape_before": list(crop_shape),
            "separate_axis": separate,
            "resampled": tuple(new_shape) != tuple(crop_shape),
        },
        "stored": {
            "shape": list(new_shape),
            "spacing": _floats(stored_spacing),
            "origin": _floats(stored_origin),
            "direction": canon.direction.tolist(),
            "image_dtype": str(stored_dtype),
        },
        "normalization": norms,
        "source_image_dtype": str(source_dtype),
    }
    return Prepared(stored, lab, record)


def transforms(normalization: Sequence[Mapping[str, Any]]) -> list[Transform]:
    """Per channel ``(lo, hi, offset, scale)``: normalised = ``(clip(v, lo, hi) - offset) *
    scale`` (``lo``/``hi`` None = no clipping)."""
    out = []
    for p in normalization:
        lo = -np.inf if p.get("lo") is None else float(p["lo"])
        hi = np.inf if p.get("hi") is None else float(p["hi"])
        out.append((lo, hi, float(p["mean"]), 1.0 / float(p["std"])))
    return out


def normalize(image: np.ndarray, normalization: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """``(C, z, y, x)`` source-unit image normalised per channel as store reads do; float32."""
    out = np.empty(image.shape, dtype=np.float32)
    for c, t in enumerate(transforms(normalization)):
        apply_transform(image[c], t, out[c])
    return out


def preprocess(channels: list[Any], pre: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Network input of a new scan: normalised float32 ``(C, z, y, x)`` on the stored grid (equal
    to what the store returns for the same scan converted alone) and its geometry record."""
    prepared = prepare(channels, None, pre)
    return normalize(prepared.image, prepared.record["normalization"]), prepared.record


def _cast(array: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    if dtype.kind in "iub" and array.dtype.kind == "f":
        info = np.iinfo(dtype) if dtype.kind in "iu" else None
        rounded = np.rint(array)
        if info is not None:
            rounded = np.clip(rounded, info.min, info.max)
        return rounded.astype(dtype)
    return np.ascontiguousarray(array.astype(dtype, copy=False))


def restore(
    data: np.ndarray,
    record: Mapping[str, Any],
    *,
    kind: str = "label",
    dtype: Any = None,
    fill: float = 0,
    order: int = 1,
) -> Any:
    """``data`` ``(z, y, x)`` on the stored grid back on the source scan's grid, as a Volume.

    Undoes the resampling (``kind="label"``: per-class linear one-hot and argmax, nearest
    across a coarse axis as at conversion; ``"image"``: spline ``order``), the crop (outside
    = ``fill``) and the reorientation; cast to ``dtype`` (default: ``data``'s).
    """
    from fastseg.io import Volume, reorient
    from fastseg.preprocess._crop import uncrop
    from fastseg.preprocess._resample import resample_image, resample_label

    (z0, z1), (y0, y1), (x0, x1) = record["crop_box"]
    box = ((int(z0), int(z1)), (int(y0), int(y1)), (int(x0), int(x1)))
    crop_shape = tuple(hi - lo for lo, hi in box)
    separate = record["resampling"]["separate_axis"]
    target = np.dtype(dtype) if dtype is not None else data.dtype
    if kind == "label":
        back = resample_label(data, crop_shape, separate=separate)
    elif kind == "image":
        back = resample_image(data, crop_shape, order=order, separate=separate)
    else:
        raise InputError(f"kind: expected 'image' or 'label', got {kind!r}")
    canon = record["canonical"]
    full = uncrop(back, box, canon["shape"], fill=fill)
    vol = Volume(full, canon["spacing"], canon["origin"], canon["direction"])
    original = record["original"]
    array = _cast(reorient(vol, original["orientation"]).array, target)
    if tuple(array.shape) != tuple(original["shape"]):
        raise ImageReadError(
            f"restored shape {array.shape} differs from the recorded original shape "
            f"{tuple(original['shape'])}"
        )
    return Volume(array, original["spacing"], original["origin"], original["direction"])
