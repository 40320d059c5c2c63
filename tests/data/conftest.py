"""Fixtures for the loader tests: a small synthetic store (converted once per session) and a
6-case hippocampus store (the suite runs with --import-mode=importlib, so helpers are fixtures)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fastseg.io import Volume, write

SHAPES = [(10, 24, 20), (14, 20, 22), (12, 26, 18), (9, 22, 24), (13, 18, 20)]


def _case(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like int16 image (body with noise, an organ, a small bone) and labels 1 (organ),
    2 (bone, a few voxels only: class sampling must not follow voxel counts)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    c = [(s - 1) / 2 for s in shape]
    organ = ((z - c[0]) / (0.3 * shape[0])) ** 2 + ((y - c[1]) / (0.3 * shape[1])) ** 2 + (
        (x - c[2] - 2) / (0.3 * shape[2])
    ) ** 2 < 1
    image = rng.normal(40.0, 15.0, shape).astype(np.float32)
    image[organ] += 60.0
    label = np.zeros(shape, dtype=np.uint8)
    label[organ] = 1
    label[1:3, 2:4, 3:5] = 2
    image[label == 2] = 700.0
    return np.round(image).astype(np.int16), label


@pytest.fixture(scope="session")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five synthetic 1 mm RAS cases (shapes ``SHAPES``, smaller than typical patches in some
    axes) converted to a store."""
    from fastseg.store import convert

    root = tmp_path_factory.mktemp("msd") / "ds"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    doc = {
        "name": "ds",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "organ", "2": "bone"},
        "numTraining": len(SHAPES),
    }
    (root / "dataset.json").write_text(json.dumps(doc))
    for i, shape in enumerate(SHAPES):
        image, label = _case(shape, i)
        vol = Volume(image, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
        write(vol, root / "imagesTr" / f"case_{i:03d}_0000.nii.gz")
        write(vol.with_array(label), root / "labelsTr" / f"case_{i:03d}.nii.gz")
    dst = tmp_path_factory.mktemp("stores") / "small.zarr"
    report = convert(root, dst, workers=1, progress=False)
    assert report.ok, report.failed
    return dst


@pytest.fixture(scope="session")
def hippo_store(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 6 hippocampus cases (sorted ids) converted to a store."""
    from fastseg.store import convert

    src = shared_data / "hippocampus"
    root = tmp_path_factory.mktemp("hippo6")
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    names = sorted(p.name for p in (src / "imagesTr").glob("*.nii.gz"))[:6]
    for name in names:
        shutil.copy(src / "imagesTr" / name, root / "imagesTr" / name)
        shutil.copy(src / "labelsTr" / name, root / "labelsTr" / name)
    doc = json.loads((src / "dataset.json").read_text())
    doc["training"] = [{"image": f"./imagesTr/{n}", "label": f"./labelsTr/{n}"} for n in names]
    (root / "dataset.json").write_text(json.dumps(doc))
    dst = tmp_path_factory.mktemp("stores") / "hippo6.zarr"
    report = convert(root, dst, workers=1, progress=False)
    assert report.ok, report.failed
    return dst
