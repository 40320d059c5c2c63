"""Fixtures for the store tests: small synthetic MSD datasets, a 6-case hippocampus subset,
and a byte-level listing of a store (the suite runs with --import-mode=importlib, so test
modules share helpers through fixtures only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fastseg.io import Volume

LPS = np.array([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])  # columns z->S, y->P, x->L


def ct_like(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like int16 volume (air outside an elliptic body, soft tissue with noise, an organ
    and a bone) and its uint8 label map (1 organ, 2 bone)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    c = [(s - 1) / 2 for s in shape]
    body = ((y - c[1]) / (0.45 * shape[1])) ** 2 + ((x - c[2]) / (0.4 * shape[2])) ** 2 < 1
    organ = ((z - c[0]) / (0.3 * shape[0])) ** 2 + ((y - c[1] + 2) / (0.2 * shape[1])) ** 2 + (
        (x - c[2] - 3) / (0.25 * shape[2])
    ) ** 2 < 1
    bone = ((y - c[1] - 0.25 * shape[1]) ** 2 + (x - c[2]) ** 2) < (0.08 * shape[1]) ** 2
    image = np.full(shape, -1000.0, dtype=np.float32)
    image[body] = 40.0
    image[organ & body] = 90.0
    image[bone & body] = 700.0
    image += rng.normal(0.0, 15.0, shape).astype(np.float32) * body
    label = np.zeros(shape, dtype=np.uint8)
    label[organ & body] = 1
    label[bone & body] = 2
    return np.round(image).astype(np.int16), label


@pytest.fixture
def make_msd(tmp_path: Path, write_msd: Callable[..., Path]) -> Callable[..., Path]:
    """``make_msd(cases, channel="CT", labels={0: "background", ...})`` writes an MSD folder;
    ``cases`` maps case id to ``(image Volume, label Volume)``."""

    def make(
        cases: dict[str, tuple[Volume, Volume]],
        channel: str = "CT",
        labels: dict[int, str] | None = None,
        name: str = "ds",
    ) -> Path:
        return write_msd(tmp_path / name, cases, name=name, modality=channel, labels=labels)

    return make


@pytest.fixture
def ct_cases() -> Callable[..., dict[str, tuple[Volume, Volume]]]:
    """``ct_cases(n, shape=(12, 40, 36), spacing=(3.0, 0.9, 0.9))``: CT-like cases stored in LPS
    orientation with anisotropic spacing (so conversion reorients and resamples)."""

    def make(
        n: int,
        shape: tuple[int, int, int] = (12, 40, 36),
        spacing: tuple[float, float, float] = (3.0, 0.9, 0.9),
    ) -> dict[str, tuple[Volume, Volume]]:
        out = {}
        for i in range(n):
            s = (shape[0] + i % 3, shape[1] - i % 2, shape[2] + i % 4)
            image, label = ct_like(s, seed=i)
            sp = (spacing[0] * (1 + 0.05 * (i % 3)), spacing[1], spacing[2])
            img = Volume(image, sp, (10.0 * i, -5.0, 3.0), LPS)
            out[f"case_{i:03d}"] = (img, img.with_array(label))
        return out

    return make


@pytest.fixture(scope="session")
def hippo6(
    hippocampus_msd: Callable[[Path, int], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The first 6 hippocampus cases (sorted ids) in MSD layout."""
    return hippocampus_msd(tmp_path_factory.mktemp("hippo6"), 6)


@pytest.fixture(scope="session")
def hippo6_store(hippo6: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``hippo6`` converted once with the defaults (in this process)."""
    from fastseg.store import convert

    dst = tmp_path_factory.mktemp("stores") / "hippo6.zarr"
    report = convert(hippo6, dst, workers=1, progress=False)
    assert report.ok, report.failed
    return dst


@pytest.fixture
def store_files() -> Callable[[Path], dict[str, bytes]]:
    """Every object of a local store (relative path -> bytes) except the conversion report."""

    def listing(root: Path) -> dict[str, bytes]:
        out = {}
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and not rel.startswith("conversion_report"):
                out[rel] = p.read_bytes()
        return out

    return listing
