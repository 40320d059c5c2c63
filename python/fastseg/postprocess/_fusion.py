"""Label fusion: several segmentations of one scan → one label map, through SimpleITK's filters.

``"vote"``: majority voting (``LabelVotingImageFilter``); background counts as a label, and a
voxel whose most frequent label is shared by several labels gets ``undecided``.

``"staple"``: STAPLE per label (``STAPLEImageFilter``, Warfield et al. 2004): for each non-zero
label, the binary masks ``seg == label`` give a probability that the voxel belongs to the label
(with each rater's sensitivity and specificity estimated by EM, the prior the mean fraction of
the volume that the raters give the label); a voxel takes the label of highest probability when
that probability is at least ``threshold``, else background.

``"staple_multilabel"``: Rohlfing's multi-label STAPLE (``MultiLabelSTAPLEImageFilter``), one EM
over all labels with a confusion matrix per rater; ties get ``undecided``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np

from fastseg.errors import GeometryMismatchError, InputError
from fastseg.postprocess._components import check_labels

FusionMethod = Literal["vote", "staple", "staple_multilabel"]
FUSION_METHODS = ("vote", "staple", "staple_multilabel")


def _load(segmentations: Sequence[Any]) -> tuple[list[np.ndarray], Any]:
    """Arrays of the inputs (paths are read) and the first Volume (None for plain arrays)."""
    from fastseg.io import Volume, check_pair, read

    items = [read(s) if isinstance(s, (str, os.PathLike)) else s for s in segmentations]
    names = [
        str(s) if isinstance(s, (str, os.PathLike)) else f"segmentation {i}"
        for i, s in enumerate(segmentations)
    ]
    volumes = [x for x in items if isinstance(x, Volume)]
    if volumes and len(volumes) != len(items):
        raise InputError("segmentations: expected all Volumes (or paths) or all arrays, got a mix")
    for item, name in zip(items[1:], names[1:], strict=True):
        if volumes:
            check_pair(items[0], item, names[0], name)
    arrays = [
        check_labels(x.array if isinstance(x, Volume) else x, name)
        for x, name in zip(items, names, strict=True)
    ]
    for array, name in zip(arrays[1:], names[1:], strict=True):
        if array.shape != arrays[0].shape:
            raise GeometryMismatchError(
                f"{names[0]} and {name} do not share a grid: shapes {arrays[0].shape} and {array.shape}"
            )
    return arrays, (volumes[0] if volumes else None)


def _to_itk(arrays: Iterable[np.ndarray], dtype: type[np.unsignedinteger]) -> list[Any]:
    import SimpleITK as sitk

    return [sitk.GetImageFromArray(np.ascontiguousarray(a, dtype=dtype)) for a in arrays]


def staple_probabilities(
    masks: Sequence[np.ndarray], confidence_weight: float = 1.0, max_iterations: int | None = None
) -> np.ndarray:
    """STAPLE's probability ``(z, y, x)`` float64 that each voxel is foreground, from binary masks
    ``(z, y, x)`` of several raters (SimpleITK ``STAPLEImageFilter``, foreground value 1)."""
    import SimpleITK as sitk

    f = sitk.STAPLEImageFilter()
    f.SetForegroundValue(1.0)
    f.SetConfidenceWeight(float(confidence_weight))
    if max_iterations is not None:
        f.SetMaximumIterations(int(max_iterations))
    images = _to_itk([np.asarray(m) != 0 for m in masks], np.uint8)
    return sitk.GetArrayFromImage(f.Execute(images))


def fuse(
    segmentations: Sequence[Any],
    method: FusionMethod = "vote",
    *,
    undecided: int = 0,
    threshold: float = 0.5,
    labels: Iterable[int] | None = None,
) -> Any:
    """Fuse label maps ``(z, y, x)`` of one scan into one (see the module docstring).

    ``segmentations``: at least two arrays, ``fastseg.io.Volume`` s or paths; Volumes (and files)
    must share one grid (``fastseg.io.check_pair``), arrays one shape. ``method``: ``"vote"``,
    ``"staple"`` (per label) or ``"staple_multilabel"``. ``undecided``: label of voting ties.
    ``threshold``: minimum STAPLE probability to assign a label (``"staple"``). ``labels``: the
    labels STAPLE considers (default every non-zero label present). Returns an array of the
    smallest unsigned dtype holding the labels, or a Volume with the first input's geometry.
    """
    if method not in FUSION_METHODS:
        raise InputError(f"method: expected one of {FUSION_METHODS}, got {method!r}")
    if len(segmentations) < 2:
        raise InputError(f"segmentations: expected at least two, got {len(segmentations)}")
    arrays, volume = _load(segmentations)
    lowest = min(int(a.min()) for a in arrays) if arrays[0].size else 0
    if lowest < 0 or undecided < 0:
        raise InputError(f"labels must be non-negative, got {min(lowest, undecided)}")
    highest = max([int(a.max()) for a in arrays if a.size] + [undecided, 0])
    dtype = np.uint8 if highest <= 255 else np.uint16 if highest <= 65535 else np.uint32

    if arrays[0].size == 0:
        fused = np.zeros(arrays[0].shape, dtype)
    elif method == "vote":
        import SimpleITK as sitk

        f = sitk.LabelVotingImageFilter()
        f.SetLabelForUndecidedPixels(int(undecided))
        fused = sitk.GetArrayFromImage(f.Execute(_to_itk(arrays, dtype)))
    elif method == "staple_multilabel":
        import SimpleITK as sitk

        multi = sitk.MultiLabelSTAPLEImageFilter()
        multi.SetLabelForUndecidedPixels(int(undecided))
        fused = sitk.GetArrayFromImage(multi.Execute(_to_itk(arrays, dtype)))
    else:
        if not 0.0 <= threshold <= 1.0:
            raise InputError(f"threshold: expected a probability in [0, 1], got {threshold}")
        present = sorted({int(v) for a in arrays for v in np.unique(a)} - {0})
        chosen = present if labels is None else sorted({int(c) for c in labels} - {0})
        fused = np.zeros(arrays[0].shape, dtype)
        best = np.full(arrays[0].shape, -1.0)
        for c in chosen:
            if c not in present:
                continue
            prob = staple_probabilities([a == c for a in arrays])
            take = (prob >= threshold) & (prob > best)
            fused[take] = c
            best = np.maximum(best, prob)
    fused = np.asarray(fused, dtype=dtype)
    return volume.with_array(fused) if volume is not None else fused
