"""StorePatchSampler and PatchLoader against NumPy references: foreground oversampling and
centring, border padding, determinism across worker counts, augmentation replay, errors and
shutdown, rank sharding."""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fastseg.augment import Pipeline
from fastseg.data import Batch, PatchLoader, StorePatchSampler, WorkerError
from fastseg.errors import InputError
from fastseg.store import Store


def reference_region(
    case: Any, start: tuple[int, ...], size: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The region cut from the whole case with NumPy: image padded with the normalised pad
    value, label with 0."""
    image, label = case.image(), case.label()
    lo = [max(-s, 0) for s in start]
    hi = [max(s + n - d, 0) for s, n, d in zip(start, size, case.shape, strict=True)]
    pads = [case.normalize(v, c) for c, v in enumerate(case.pad_values)]
    img = np.stack(
        [
            np.pad(image[c], list(zip(lo, hi, strict=True)), constant_values=pads[c])
            for c in range(image.shape[0])
        ]
    )
    lab = np.pad(label, list(zip(lo, hi, strict=True)), constant_values=0)
    sl = tuple(slice(s + a, s + a + n) for s, a, n in zip(start, lo, size, strict=True))
    return img[(slice(None), *sl)], lab[sl]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); it is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sampler_foreground_fraction_and_centring(small_store: Path) -> None:
    store = Store.open(small_store)
    patch = (8, 12, 10)
    sampler = StorePatchSampler(store, patch_size=patch, oversample_foreground=0.5)
    rng = np.random.default_rng(0)
    classes_hit = {1: 0, 2: 0}
    for _ in range(60):
        regions = sampler.draw(4, rng)
        assert len(regions) == 4
        for i, (case_id, start, size) in enumerate(regions):
            assert size == patch
            shape = store[case_id].shape
            lo = [-(max(p - n, 0) // 2) for p, n in zip(patch, shape, strict=True)]
            hi = [
                n + max(p - n, 0) // 2 + max(p - n, 0) % 2 - p
                for p, n in zip(patch, shape, strict=True)
            ]
            assert all(a <= s <= b for a, s, b in zip(lo, start, hi, strict=True))
            if i >= 2:  # the last round(0.5 * 4) = 2 are centred on a stored foreground voxel
                fg = store[case_id].foreground()
                hits = [
                    c
                    for c, vox in fg.items()
                    if (np.clip(vox - np.array(patch) // 2, lo, hi) == start).all(axis=1).any()
                ]
                assert hits, (case_id, start)
                for c in hits:
                    classes_hit[c] += 1
    # classes are drawn uniformly, not by voxel count (class 2 is 8 voxels per case)
    assert classes_hit[2] > 30 and classes_hit[1] > 30


def test_sampler_uniform_without_oversampling_and_rounding(small_store: Path) -> None:
    store = Store.open(small_store)
    sampler = StorePatchSampler(
        store, patch_size=(4, 4, 4), oversample_foreground=0.33, margin=(1, 2, 3)
    )
    assert sampler.forced(2) == 1 and sampler.forced(9) == 3 and sampler.forced(1) == 0
    regions = sampler.draw(3, np.random.default_rng(1))
    assert all(size == (6, 8, 10) for _, _, size in regions)
    again = sampler.draw(3, np.random.default_rng(1))
    assert regions == again
    starts = [sampler.draw(1, np.random.default_rng(s))[0][1] for s in range(40)]
    assert len(set(starts)) > 20  # uniform starts vary


@pytest.mark.parametrize("cache_mb", [0, 64])
def test_padding_matches_numpy_reference(small_store: Path, cache_mb: float) -> None:
    store = Store.open(small_store)
    patch = (16, 30, 21)  # larger than every case along z and y: padded on both sides
    with PatchLoader(
        small_store, patch_size=patch, batch_size=3, workers=0, batches=4, cache_mb=cache_mb
    ) as loader:
        assert loader._maker.cache.enabled == (cache_mb > 0)
        assert loader.spec.label_dtype == "uint8"  # uint8 label maps travel as uint8
        for batch in loader:
            _, regions = loader.plan(batch.index)
            assert batch.image.shape == (3, 1, *patch) and batch.label.shape == (3, *patch)
            assert (
                str(batch.image.dtype) == "torch.float32"
                and str(batch.label.dtype) == "torch.int64"
            )
            for i, (case_id, start, size) in enumerate(regions):
                assert batch.cases[i] == case_id
                img, lab = reference_region(store[case_id], start, size)
                np.testing.assert_array_equal(batch.image[i].numpy(), img)
                np.testing.assert_array_equal(batch.label[i].numpy(), lab)


def test_workers_give_the_same_batches_as_in_process(small_store: Path) -> None:
    kwargs: dict[str, Any] = {
        "patch_size": (8, 16, 12),
        "batch_size": 3,
        "augmentation": "default",
        "seed": 5,
        "batches": 5,
        "prefetch": 3,
    }
    with PatchLoader(small_store, workers=0, **kwargs) as loader:
        ref = [(b.image.clone(), b.label.clone(), b.cases) for b in loader]
    with PatchLoader(small_store, workers=2, **kwargs) as loader:
        got = [(b.image.clone(), b.label.clone(), b.cases, b.index) for b in loader]
        stats = loader.stats()
    assert [g[3] for g in got] == list(range(5))
    for (ri, rl, rc), (gi, gl, gc_, _) in zip(ref, got, strict=True):
        assert rc == gc_
        assert np.array_equal(ri.numpy(), gi.numpy()) and np.array_equal(rl.numpy(), gl.numpy())
    assert stats["batches"] == 5 and stats["workers"] == 2 and stats["batch_size"] == 3
    for key in (
        "read_s_median",
        "assemble_s_mean",
        "augment_s_median",
        "wait_s_mean",
        "copy_s_median",
    ):
        assert stats[key] >= 0.0
    assert stats["batches_per_s"] > 0 and 0.0 <= stats["wait_fraction"] <= 1.0
    # another seed gives other batches
    with PatchLoader(small_store, workers=0, **{**kwargs, "seed": 6}) as loader:
        other = next(iter(loader))
    assert not np.array_equal(other.image.numpy(), ref[0][0].numpy())


def test_lent_batches_stay_intact_while_held_and_after_close(small_store: Path) -> None:
    """CPU batches lend their ring slot's image: a held batch keeps its values while the loader
    runs on (its slot is not refilled), holding more batches than the ring has slots neither
    blocks nor corrupts them (they are then copied), a batch outlives the loader's close, and
    the shared memory is gone from /dev/shm after close even with batches still held."""
    kwargs: dict[str, Any] = {"patch_size": (8, 16, 12), "batch_size": 2, "seed": 3}
    with PatchLoader(small_store, workers=0, batches=12, **kwargs) as loader:
        ref = [(b.image.clone(), b.label.clone()) for b in loader]
    before = set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()
    loader = PatchLoader(small_store, workers=2, prefetch=4, **kwargs)
    held = [loader.next_batch() for _ in range(9)]  # more than the ring's 4 slots
    view = held[0].image[:, 0]  # a view keeps the slot lent after the batch object is dropped
    del held[0]
    for _ in range(3):
        loader.next_batch()
    loader.close()
    gc.collect()
    for k, batch in enumerate(held, start=1):
        assert np.array_equal(batch.image.numpy(), ref[k][0].numpy()), k
        assert np.array_equal(batch.label.numpy(), ref[k][1].numpy()), k
    assert np.array_equal(view.numpy(), ref[0][0][:, 0].numpy())
    if before:
        assert set(os.listdir("/dev/shm")) <= before  # unlinked although views are alive


@pytest.mark.parametrize("cache_mb", [0, 64])
@pytest.mark.parametrize(
    ("spatial", "patch"),
    [
        ([{"name": "affine", "p_rotation": 1.0, "p_scale": 1.0}, {"name": "flip"}], (8, 12, 12)),
        ([{"name": "affine", "p_rotation": 0.5, "p_scale": 0.0}, {"name": "flip"}], (8, 12, 12)),
        # flips only: the loader cuts and flips instead of resampling
        ([{"name": "flip"}], (8, 12, 12)),
        ([{"name": "flip", "p_axis": 0.7}], (16, 30, 21)),  # padded on both sides
    ],
)
def test_augmentation_replays_the_pipeline(
    small_store: Path, spatial: list[dict[str, Any]], patch: tuple[int, int, int], cache_mb: int
) -> None:
    store = Store.open(small_store)
    config = [*spatial, {"name": "gamma", "p": 1.0}, {"name": "noise", "p": 1.0}, {"name": "blur"}]
    with PatchLoader(
        small_store,
        patch_size=patch,
        batch_size=3,
        augmentation=config,
        workers=0,
        batches=4,
        cache_mb=cache_mb,
    ) as loader:
        assert loader._maker.cache.enabled == (cache_mb > 0)
        # patch // 8 around the patch for an affine step, nothing for flips alone
        assert loader.spec.margin == ((1, 1, 1) if len(spatial) > 1 else (0, 0, 0))
        pipeline = Pipeline(config, patch_size=patch)
        resampled = []
        inner = loader._maker.pipeline.apply
        loader._maker.pipeline.apply = lambda *a, **k: resampled.append(1) or inner(*a, **k)
        for batch in loader:
            seed, regions = loader.plan(batch.index)
            params = pipeline.draw(seed, (3, 1, *regions[0][2]))
            for i, (case_id, start, size) in enumerate(regions):
                image, label = store[case_id].read_patch(start, size)
                img, lab = pipeline.apply(image, label, params[i], spacing=store[case_id].spacing)
                np.testing.assert_array_equal(batch.image[i].numpy(), img)
                np.testing.assert_array_equal(batch.label[i].numpy(), lab)
                assert set(np.unique(batch.label[i].numpy())) <= {0, 1, 2}
    # samples drawn without rotation/scaling skip the resampling; the others do not
    assert (
        len(resampled)
        == {"1.0": 12, "0.5": len(resampled), "-": 0}[str(spatial[0].get("p_rotation", "-"))]
    )
    assert len(spatial) == 1 or 0 < len(resampled) <= 12


def test_identity_augmentation_returns_the_raw_patch(small_store: Path) -> None:
    store = Store.open(small_store)
    with PatchLoader(
        small_store,
        patch_size=(6, 10, 8),
        batch_size=2,
        augmentation=[],
        margin=(2, 3, 1),
        workers=0,
    ) as loader:
        batch = loader.next_batch()
        _, regions = loader.plan(0)
    for i, (case_id, start, size) in enumerate(regions):
        assert size == (10, 16, 10)
        inner = (start[0] + 2, start[1] + 3, start[2] + 1)
        image, label = store[case_id].read_patch(inner, (6, 10, 8))
        np.testing.assert_array_equal(batch.image[i].numpy(), image)
        np.testing.assert_array_equal(batch.label[i].numpy(), label)


def test_break_close_and_garbage_collection_leave_no_workers(small_store: Path) -> None:
    loader = PatchLoader(small_store, patch_size=(8, 8, 8), batch_size=2, workers=2, prefetch=2)
    with loader:
        for k, batch in enumerate(loader):
            assert isinstance(batch, Batch)
            if k == 2:
                break
        pids = loader.worker_pids
        assert len(pids) == 2 and all(alive(p) for p in pids)
    assert loader.worker_pids == [] and not any(alive(p) for p in pids)
    assert not [p for p in mp.active_children() if p.name.startswith("fastseg-loader")]
    loader.close()  # idempotent

    loader = PatchLoader(small_store, patch_size=(8, 8, 8), batch_size=2, workers=2)
    next(iter(loader))
    pids = loader.worker_pids
    del loader
    gc.collect()
    assert not any(alive(p) for p in pids)


def test_worker_error_names_the_case_and_carries_the_traceback(
    small_store: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.zarr"
    shutil.copytree(small_store, broken)
    victim = "case_002"
    for chunk in (broken / "cases" / victim / "image").rglob("*"):
        if chunk.is_file() and chunk.name != "zarr.json":
            chunk.write_bytes(b"not a compressed chunk")
    kwargs: dict[str, Any] = {"cases": [victim], "patch_size": (4, 4, 4), "batch_size": 2}
    with PatchLoader(broken, workers=2, **kwargs) as loader:
        with pytest.raises(WorkerError, match=f"(?s){victim}.*worker traceback"):
            next(iter(loader))
        assert loader.worker_pids == []
    with PatchLoader(broken, workers=0, **kwargs) as loader:
        with pytest.raises(WorkerError, match=victim):
            next(iter(loader))


def test_rank_sharding(small_store: Path) -> None:
    def first(rank: int, world: int) -> PatchLoader:
        return PatchLoader(
            small_store, patch_size=(4, 4, 4), workers=0, rank=rank, world_size=world
        )

    l0, l1 = first(0, 2), first(1, 2)
    assert set(l0.cases).isdisjoint(l1.cases)
    assert sorted(l0.cases + l1.cases) == Store.open(small_store).cases
    assert l0.plan(0)[0] != l1.plan(0)[0]  # different seed streams
    assert {c for c, _, _ in l1.plan(3)[1]} <= set(l1.cases)
    assert first(3, 8).cases == Store.open(small_store).cases  # fewer cases than ranks: all


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"patch_size": (4, 4)}, "patch_size"),
        ({"patch_size": (4, 0, 4)}, "patch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"workers": -1}, "workers"),
        ({"prefetch": 0}, "prefetch"),
        ({"seed": -3}, "seed"),
        ({"rank": 2, "world_size": 2}, "rank"),
        ({"world_size": 0}, "world_size"),
        ({"batches": 0}, "batches"),
        ({"augment_device": "tpu"}, "augment_device"),
        ({"augment_device": "cuda", "device": "cpu"}, "augment_device"),
        ({"augmentation": "strong"}, "augmentation"),
        ({"augmentation": [{"name": "spin"}]}, "spin"),
        ({"oversample_foreground": 1.5}, "oversample_foreground"),
        ({"margin": (1, -1, 0)}, "margin"),
        ({"cases": ["nope"]}, "cases"),
        ({"cases": []}, "cases"),
        ({"device": "nonsense"}, "device"),
        ({"pin_memory": "yes"}, "pin_memory"),
        ({"cache_mb": -1}, "cache_mb"),
        pytest.param(
            {"pin_memory": True},
            "pin_memory",
            marks=pytest.mark.skipif(
                torch.cuda.is_available(), reason="pinning works where there is CUDA"
            ),
        ),
        pytest.param(
            {"device": "cuda"},
            "device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is there"),
        ),
    ],
)
def test_bad_arguments_name_the_argument(
    small_store: Path, kwargs: dict[str, Any], name: str
) -> None:
    with pytest.raises(InputError, match=name):
        PatchLoader(small_store, **{"patch_size": (4, 4, 4), **kwargs})


@pytest.mark.cuda
def test_cuda_batches_match_the_cpu_ones(small_store: Path) -> None:
    kwargs: dict[str, Any] = {"patch_size": (8, 16, 12), "batch_size": 3, "seed": 2, "batches": 3}
    with PatchLoader(small_store, workers=0, **kwargs) as loader:
        ref = [(b.image, b.label) for b in loader]
    with PatchLoader(small_store, workers=2, device="cuda", **kwargs) as loader:
        for (image, label), batch in zip(ref, loader, strict=True):
            assert batch.image.is_cuda and batch.label.is_cuda
            assert torch.equal(batch.image.cpu(), image) and torch.equal(batch.label.cpu(), label)
    with PatchLoader(
        small_store,
        workers=2,
        device="cuda",
        augmentation="default",
        augment_device="cuda",
        **kwargs,
    ) as loader:
        for batch in loader:
            assert batch.image.shape == (3, 1, 8, 16, 12) and batch.label.shape == (3, 8, 16, 12)
            assert set(torch.unique(batch.label).tolist()) <= {0, 1, 2}
            assert torch.isfinite(batch.image).all()


@pytest.mark.realdata
def test_hippocampus_batches(hippo_store: Path) -> None:
    with PatchLoader(
        hippo_store,
        patch_size=(40, 56, 40),
        batch_size=9,
        augmentation="default",
        workers=2,
        batches=3,
    ) as loader:
        for batch in loader:
            assert batch.image.shape == (9, 1, 40, 56, 40)
            assert set(np.unique(batch.label.numpy())) <= {0, 1, 2}
            assert np.isfinite(batch.image.numpy()).all()
            assert (batch.label[-3:].reshape(3, -1) > 0).any(axis=1).all()  # 3 forced to foreground


def test_ctrl_c_stops_the_consumer_and_its_workers(small_store: Path) -> None:
    import signal
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from fastseg.data import PatchLoader\n"
        f"loader = PatchLoader({str(small_store)!r}, patch_size=(8, 8, 8), workers=2)\n"
        "for k, batch in enumerate(loader):\n"
        "    if k == 1:\n"
        "        print(*loader.worker_pids, flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # pragma: no cover - a hang: fail below, leave nothing behind
            proc.kill()
            proc.communicate()
    assert "KeyboardInterrupt" in err
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids)


def test_producer_draws_the_gpu_augmentation_parameters(small_store: Path) -> None:
    """With the augmentation on the GPU, the producer (a worker) draws its parameters, so the
    training process only launches kernels: the same draw as Pipeline.draw of the batch seed,
    for the region-sized batch the GPU will augment; raw regions written; CPU mode: None."""
    import dataclasses

    from fastseg.data._produce import BatchMaker

    config = [{"name": "affine", "p_rotation": 0.5}, {"name": "gamma", "p": 0.5}]
    with PatchLoader(
        small_store, patch_size=(8, 12, 12), batch_size=3, augmentation=config, workers=0
    ) as loader:
        cpu_spec = loader.spec
    spec = dataclasses.replace(cpu_spec, augment_here=False)
    maker = BatchMaker(spec)
    image = np.empty(spec.image_shape, np.float32)
    label = np.empty(spec.label_shape, spec.label_dtype)
    pipeline = Pipeline(config, patch_size=(8, 12, 12))
    store = Store.open(small_store)
    for k in range(3):
        cases, _, params = maker.make(k, image, label)
        seed, regions = maker.plan(k)
        assert cases == [case_id for case_id, _, _ in regions]
        assert params is not None and image.shape[2:] == spec.region_size
        expected = pipeline.draw(seed, spec.image_shape)
        assert [p.to_dict() for p in params] == [p.to_dict() for p in expected]
        for i, (case_id, start, size) in enumerate(regions):
            raw, raw_label = store[case_id].read_patch(start, size)
            np.testing.assert_array_equal(image[i], raw)
            np.testing.assert_array_equal(label[i], raw_label)
    cpu_image = np.empty(cpu_spec.image_shape, np.float32)
    cpu_label = np.empty(cpu_spec.label_shape, cpu_spec.label_dtype)
    assert BatchMaker(cpu_spec).make(0, cpu_image, cpu_label)[2] is None
