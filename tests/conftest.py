"""Shared fixtures: the real data in ../shared/data, MSD-layout dataset writers, CUDA
availability, hypothesis profile (the suite runs with --import-mode=importlib, so per-folder
conftests use these helpers through fixtures)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

# Busy-waiting OpenMP threads (torch's and _core's) slow each other down on a shared 2-core
# machine; set before torch or _core load libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from fastseg.io import Volume

settings.register_profile(
    "fastseg", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fastseg"))

SHARED_DATA = Path(
    os.environ.get("FASTSEG_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real MR, CT and DICOM); tests that use it skip when it is absent."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (set FASTSEG_SHARED_DATA)")
    return SHARED_DATA


def _write_msd(
    root: Path,
    cases: dict[str, tuple[Volume, Volume]],
    name: str = "ds",
    modality: str = "CT",
    labels: dict[int, str] | None = None,
) -> Path:
    from fastseg.io import write

    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    labels = labels or {0: "background", 1: "organ", 2: "bone"}
    doc = {
        "name": name,
        "modality": {"0": modality},
        "labels": {str(k): v for k, v in labels.items()},
        "numTraining": len(cases),
    }
    (root / "dataset.json").write_text(json.dumps(doc))
    for case_id, (image, label) in cases.items():
        write(image, root / "imagesTr" / f"{case_id}_0000.nii.gz")
        write(label, root / "labelsTr" / f"{case_id}.nii.gz")
    return root


@pytest.fixture(scope="session")
def write_msd() -> Callable[..., Path]:
    """``write_msd(root, cases, name="ds", modality="CT", labels={0: "background", 1: "organ",
    2: "bone"})`` writes a one-channel MSD folder at ``root`` (``dataset.json``,
    ``imagesTr/<id>_0000.nii.gz``, ``labelsTr/<id>.nii.gz``) and returns ``root``; ``cases`` maps
    case id to ``(image Volume, label Volume)``."""
    return _write_msd


@pytest.fixture(scope="session")
def hippocampus_msd(shared_data: Path) -> Callable[[Path, int], Path]:
    """``hippocampus_msd(root, n)`` copies the first ``n`` hippocampus cases (sorted ids) into an
    MSD folder at ``root`` (its ``dataset.json`` lists just them) and returns ``root``."""
    src = shared_data / "hippocampus"

    def copy(root: Path, n: int) -> Path:
        (root / "imagesTr").mkdir(parents=True)
        (root / "labelsTr").mkdir()
        names = sorted(p.name for p in (src / "imagesTr").glob("*.nii.gz"))[:n]
        for name in names:
            shutil.copy(src / "imagesTr" / name, root / "imagesTr" / name)
            shutil.copy(src / "labelsTr" / name, root / "labelsTr" / name)
        doc = json.loads((src / "dataset.json").read_text())
        doc["training"] = [
            {"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"} for name in names
        ]
        doc["numTraining"] = len(names)
        (root / "dataset.json").write_text(json.dumps(doc))
        return root

    return copy


def _identifying_dicom_strings(folder: Path) -> set[str]:
    import pydicom

    found = set()
    for path in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in ("SeriesInstanceUID", "StudyInstanceUID", "SOPInstanceUID"):
            found.add(str(ds.get(keyword, "")))
        for keyword in ("SeriesDescription", "StudyDescription", "StudyDate", "SeriesDate"):
            found.add(str(ds.get(keyword, "")).strip())
    return {s for s in found if len(s) >= 4}


@pytest.fixture(scope="session")
def identifying_dicom_strings() -> Callable[[Path], set[str]]:
    """``identifying_dicom_strings(folder)``: the UIDs, descriptions and dates (4+ characters)
    of every ``.dcm`` file below ``folder``, which nothing fastseg writes may contain."""
    return _identifying_dicom_strings


def cuda_available() -> bool:
    """A CUDA build of _core and a visible GPU (through torch)."""
    from fastseg import _native

    if _native.core.cuda is None or _native.core.cuda.device_count() == 0:
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if cuda_available():
        return
    skip = pytest.mark.skip(
        reason="no CUDA GPU visible (CUDA tests run in benchmarks/gpu_check.sh)"
    )
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
