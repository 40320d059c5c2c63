"""Shared fixtures: the real data in ../shared/data, CUDA availability, hypothesis profile."""

from __future__ import annotations

import os
from pathlib import Path

# Busy-waiting OpenMP threads (torch's and _core's) slow each other down on a shared 2-core
# machine; set before torch or _core load libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
from hypothesis import HealthCheck, settings

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
