"""Real label maps (../shared/data): a 42-label CT segmentation and MSD hippocampus labels,
compared with a perturbed copy, against MedPy and the brute-force references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from metrics_reference import avd, medpy_assd, medpy_hd, medpy_hd95
from scipy import ndimage

from fastseg.metrics import evaluate, evaluate_batch

pytestmark = pytest.mark.realdata


def perturb(labels: np.ndarray, seed: int) -> np.ndarray:
    """Shift the map by one voxel along x and drop a random tenth of the boundary voxels."""
    rng = np.random.default_rng(seed)
    out = np.roll(labels, 1, axis=2)
    edge = out != ndimage.grey_erosion(out, size=(1, 3, 3))
    out[edge & (rng.random(out.shape) < 0.1)] = 0
    return out


def crop_pair(a: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cropped to their joint bounding box plus one voxel (clipped to the array): the
    same surfaces and distances, computed faster by the references."""
    idx = np.argwhere(a | m)
    lo = np.maximum(idx.min(axis=0) - 1, 0)
    hi = idx.max(axis=0) + 2
    box = tuple(slice(int(b), int(e)) for b, e in zip(lo, hi, strict=True))
    return a[box], m[box]


def test_multi_label_ct_segmentation_matches_medpy(shared_data: Path) -> None:
    from fastseg.io import Volume, read

    ref = read(shared_data / "ct" / "abdomen_ct_silver_seg.nii.gz")
    pred = Volume(
        perturb(np.asarray(ref.array).astype(np.int16), 0), ref.spacing, ref.origin, ref.direction
    )
    sp = tuple(ref.spacing)
    result = evaluate(pred, ref, hd95="pooled")
    labels = sorted((set(np.unique(pred.array)) | set(np.unique(ref.array))) - {0})
    assert sorted(result) == labels and len(labels) > 20
    for label, row in result.items():
        a, m = pred.array == label, ref.array == label
        if not (a.any() and m.any()):
            assert row["empty"] in ("pred", "ref")
            continue
        a, m = crop_pair(a, m)
        assert row["hd"] == pytest.approx(medpy_hd(a, m, sp), rel=1e-9)
        assert row["hd95"] == pytest.approx(medpy_hd95(a, m, sp), rel=1e-9)
        assert row["assd"] == pytest.approx(medpy_assd(a, m, sp), rel=1e-9)
        assert row["avd"] == pytest.approx(avd(a, m, sp), rel=1e-9)


def test_hippocampus_batch_matches_single_evaluations(shared_data: Path) -> None:
    from fastseg.io import read

    files = sorted((shared_data / "hippocampus" / "labelsTr").glob("*.nii.gz"))[:6]
    assert files
    refs = [read(f) for f in files]
    pairs = {
        f.name: (perturb(np.asarray(v.array), i), v)
        for i, (f, v) in enumerate(zip(files, refs, strict=True))
    }
    rows = evaluate_batch(pairs)
    for row in rows:
        pred, ref = pairs[str(row["case"])]
        single = evaluate(pred, ref, labels=[int(row["label"])])[int(row["label"])]
        assert {k: v for k, v in row.items() if k not in ("case", "label")} == single
        a, m = pred == row["label"], ref.array == row["label"]
        assert row["hd"] == pytest.approx(medpy_hd(a, m, ref.spacing), rel=1e-9)
    assert {row["label"] for row in rows} == {1, 2}
