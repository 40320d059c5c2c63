"""Fixtures for the trainer tests: a tiny synthetic store (converted once per session), a tiny
training configuration, and a few hippocampus cases in MSD layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fastseg.io import Volume


def blob_case(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An MR-like float image with two bright ellipsoids (labels 1 and 2) in noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    c = [(s - 1) / 2 for s in shape]
    r1 = ((z - c[0]) / (0.35 * shape[0])) ** 2 + ((y - c[1] + 3) / 5) ** 2 + ((x - c[2]) / 4) ** 2
    r2 = ((z - c[0]) / (0.3 * shape[0])) ** 2 + ((y - c[1] - 5) / 3) ** 2 + ((x - c[2]) / 3) ** 2
    label = np.zeros(shape, dtype=np.uint8)
    label[r1 < 1] = 1
    label[r2 < 1] = 2
    image = 100.0 + 200.0 * (label == 1) + 400.0 * (label == 2) + rng.normal(0, 20, shape)
    return image.astype(np.float32), label


def blob_cases(
    n: int, shape: tuple[int, int, int] = (10, 24, 20)
) -> dict[str, tuple[Volume, Volume]]:
    """``n`` :func:`blob_case` cases (1 mm, shapes about ``shape``) as ``{id: (image, label)}``
    Volumes."""
    cases = {}
    for i in range(n):
        s = (shape[0] + i % 2, shape[1], shape[2] + i % 3)
        image, label = blob_case(s, seed=i)
        vol = Volume(image, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
        cases[f"blob_{i:03d}"] = (vol, vol.with_array(label))
    return cases


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory, write_msd: Callable[..., Path]) -> Path:
    """5 synthetic cases (about 10 x 24 x 20 voxels, 1 mm, labels 1 and 2) as a store."""
    from fastseg.store import convert

    src = write_msd(
        tmp_path_factory.mktemp("blobs_msd"),
        blob_cases(5),
        name="blobs",
        modality="MRI",
        labels={0: "background", 1: "big", 2: "small"},
    )
    dst = tmp_path_factory.mktemp("stores") / "blobs.zarr"
    report = convert(src, dst, workers=1, progress=False)
    assert report.ok, report.failed
    return dst


TINY: dict[str, Any] = {
    "model.widths": [4, 8],
    "model.deep_supervision": True,
    "data.patch_size": [8, 16, 16],
    "data.batch_size": 2,
    "data.workers": 0,
    "data.augmentation": "none",
    "optim.warmup_iterations": 3,
    "schedule.time_budget_s": None,
    "schedule.max_iterations": 12,
    "schedule.validate_every": 6,
    "training.device": "cpu",
    "training.log_every_s": 0,
}


@pytest.fixture(scope="session")
def tiny_overrides() -> Callable[..., dict[str, Any]]:
    """``tiny_overrides(**changes)``: dotted-key overrides for a seconds-long CPU run
    (``optim__learning_rate=...`` style keyword names, ``__`` for the dot)."""

    def make(**changes: Any) -> dict[str, Any]:
        return {**TINY, **{k.replace("__", "."): v for k, v in changes.items()}}

    return make


@pytest.fixture(scope="session")
def hippo_msd(
    hippocampus_msd: Callable[[Path, int], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The first 10 hippocampus cases (sorted ids) in MSD layout."""
    return hippocampus_msd(tmp_path_factory.mktemp("hippo10"), 10)
