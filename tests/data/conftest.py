"""Fixtures for the loader tests: a small synthetic store (converted once per session) and a
6-case hippocampus store (the suite runs with --import-mode=importlib, so helpers are fixtures;
the MSD writers are tests/conftest.py's)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fastseg.io import Volume

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
def small_store(tmp_path_factory: pytest.TempPathFactory, write_msd: Callable[..., Path]) -> Path:
    """Five synthetic 1 mm RAS cases (shapes ``SHAPES``, smaller than typical patches in some
    axes) converted to a store."""
    from fastseg.store import convert

    cases = {}
    for i, shape in enumerate(SHAPES):
        image, label = _case(shape, i)
        vol = Volume(image, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
        cases[f"case_{i:03d}"] = (vol, vol.with_array(label))
    root = write_msd(tmp_path_factory.mktemp("msd") / "ds", cases)
    dst = tmp_path_factory.mktemp("stores") / "small.zarr"
    report = convert(root, dst, workers=1, progress=False)
    assert report.ok, report.failed
    return dst


@pytest.fixture(scope="session")
def hippo_store(
    hippocampus_msd: Callable[[Path, int], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The first 6 hippocampus cases (sorted ids) converted to a store."""
    from fastseg.store import convert

    root = hippocampus_msd(tmp_path_factory.mktemp("hippo6"), 6)
    dst = tmp_path_factory.mktemp("stores") / "hippo6.zarr"
    report = convert(root, dst, workers=1, progress=False)
    assert report.ok, report.failed
    return dst
