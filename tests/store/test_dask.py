"""The Dask path: the same per-case tasks on a dask.distributed LocalCluster give the same store;
a local process pool too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fastseg.io import Volume
from fastseg.store import Store, convert


@pytest.fixture
def dataset(
    make_msd: Callable[..., Path], ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]]
) -> Path:
    return make_msd(ct_cases(4))


@pytest.fixture
def serial(
    dataset: Path, tmp_path: Path, store_files: Callable[[Path], dict[str, bytes]]
) -> dict[str, bytes]:
    dst = tmp_path / "serial.zarr"
    assert convert(dataset, dst, workers=1, progress=False).ok
    return store_files(dst)


def test_dask_local_cluster_gives_the_same_store(
    dataset: Path,
    serial: dict[str, bytes],
    store_files: Callable[[Path], dict[str, bytes]],
    tmp_path: Path,
) -> None:
    distributed = pytest.importorskip("distributed")
    dst = tmp_path / "dask.zarr"
    with (
        distributed.LocalCluster(
            processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        report = convert(dataset, dst, scheduler=client, progress=False)
        assert report.ok and len(report.converted) == 4
        again = convert(dataset, dst, scheduler=cluster.scheduler_address, progress=False)
        assert again.converted == [] and len(again.skipped) == 4
    assert store_files(dst) == serial
    assert Store.open(dst).cases == sorted(f"case_{i:03d}" for i in range(4))


@pytest.mark.slow
def test_process_pool_gives_the_same_store(
    dataset: Path,
    serial: dict[str, bytes],
    store_files: Callable[[Path], dict[str, bytes]],
    tmp_path: Path,
) -> None:
    dst = tmp_path / "pool.zarr"
    report = convert(dataset, dst, workers=2, progress=True)
    assert report.ok and len(report.converted) == 4
    assert store_files(dst) == serial
