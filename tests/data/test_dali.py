"""DaliPatchLoader (NVIDIA DALI, CPU-only here: ``device_id=None``) against the store's raw
regions, the native loader's regions and a thresholded phantom."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("nvidia.dali", reason="NVIDIA DALI not installed (pip install fastseg[dali])")

from fastseg.data import PatchLoader, WorkerError
from fastseg.data._dali import DaliAugmentation, DaliPatchLoader, make_loader
from fastseg.errors import InputError
from fastseg.io import Volume, write
from fastseg.store import Store

PATCH = (8, 12, 10)
MARGIN = (2, 3, 1)
NONE = DaliAugmentation(flip_p=0, brightness_p=0, contrast_p=0, gamma_p=0, noise_p=0)


def _phantom(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An MR-like image whose label is exactly ``image > 200``: a 100 background and a 300
    ellipsoid, both plus a ramp in z, y and x of at most 60 (so flips change the image)."""
    z, y, x = np.indices(shape)
    c = [(s - 1) / 2 + (seed % 3) for s in shape]
    inside = (
        sum(((a - ci) / (0.35 * s)) ** 2 for a, ci, s in zip((z, y, x), c, shape, strict=True)) < 1
    )
    image = 100 + 200 * inside + z * 7 // shape[0] * 2 + y * 20 // shape[1] + x * 40 // shape[2]
    return image.astype(np.int16), inside.astype(np.uint8)


@pytest.fixture(scope="module")
def phantom_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Three phantom cases (one smaller than the patch in z) in a store."""
    from fastseg.store import convert

    root = tmp_path_factory.mktemp("dali_msd") / "ds"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    shapes = [(12, 20, 16), (6, 18, 21), (10, 15, 14)]
    doc = {"name": "ds", "modality": {"0": "MRI"}, "labels": {"0": "bg", "1": "fg"}}
    (root / "dataset.json").write_text(json.dumps(doc))
    for i, shape in enumerate(shapes):
        image, label = _phantom(shape, i)
        vol = Volume(image, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
        write(vol, root / "imagesTr" / f"p_{i}_0000.nii.gz")
        write(vol.with_array(label), root / "labelsTr" / f"p_{i}.nii.gz")
    dst = tmp_path_factory.mktemp("dali_stores") / "phantom.zarr"
    report = convert(root, dst, workers=1, progress=False, modality="mr")
    assert report.ok, report.failed
    return Store.open(dst)


@pytest.fixture(scope="module")
def plain(phantom_store: Store) -> Iterator[DaliPatchLoader]:
    """No augmentation, a margin cropped by DALI, in-process source (shared: builds are slow)."""
    with DaliPatchLoader(
        phantom_store, patch_size=PATCH, batch_size=4, augmentation=False, margin=MARGIN,
        workers=0, seed=3, oversample_foreground=0.5,
    ) as loader:  # fmt: skip
        yield loader


@pytest.fixture(scope="module")
def augmented(phantom_store: Store) -> Iterator[DaliPatchLoader]:
    """Flips on every axis half the time and no intensity change, same seed as ``plain``."""
    aug = DaliAugmentation(flip_p=0.5, brightness_p=0, contrast_p=0, gamma_p=0, noise_p=0)
    with DaliPatchLoader(
        phantom_store, patch_size=PATCH, batch_size=4, augmentation=aug, margin=MARGIN,
        workers=0, seed=3, oversample_foreground=0.5,
    ) as loader:  # fmt: skip
        yield loader


def _threshold(store: Store, case_id: str) -> float:
    return float(store[case_id].normalize(200, 0))


def test_batch_shapes_and_dtypes(plain: DaliPatchLoader) -> None:
    import torch

    batch = plain.next_batch()
    assert batch.image.shape == (4, 1, *PATCH) and batch.image.dtype == torch.float32
    assert batch.label.shape == (4, *PATCH) and batch.label.dtype == torch.int64
    assert len(batch.cases) == 4 and set(batch.cases) <= set(plain.cases)
    assert set(torch.unique(batch.label).tolist()) <= {0, 1}
    assert set(batch.timings) == {"read_s", "assemble_s", "augment_s", "wait_s", "copy_s"}
    assert batch.timings["read_s"] > 0


def test_identity_equals_native_loader_and_store(
    plain: DaliPatchLoader, phantom_store: Store
) -> None:
    """No augmentation: DALI's centre crop of the region is the native loader's batch k (same
    regions, the sampler's rule) and the store's raw patch."""
    with PatchLoader(
        phantom_store, patch_size=PATCH, batch_size=4, margin=MARGIN, workers=0, seed=3,
        oversample_foreground=0.5,
    ) as native:  # fmt: skip
        for _ in range(3):
            ours = plain.next_batch()  # the fixture is shared: k may not start at 0
            ref = native.next_batch()
            while ref.index < ours.index:
                ref = native.next_batch()
            assert ours.index == ref.index
            assert ours.cases == ref.cases
            np.testing.assert_array_equal(ours.image.numpy(), ref.image.numpy())
            np.testing.assert_array_equal(ours.label.numpy(), ref.label.numpy())
    regions = native._maker.plan(ref.index)[1]
    for i, (case_id, start, _) in enumerate(regions):
        inner = tuple(s + m for s, m in zip(start, MARGIN, strict=True))
        image, label = phantom_store[case_id].read_patch(inner, PATCH)
        np.testing.assert_array_equal(ours.image[i].numpy(), image)
        np.testing.assert_array_equal(ours.label[i].numpy(), label)


def test_flips_keep_image_and_label_together(
    augmented: DaliPatchLoader, phantom_store: Store
) -> None:
    """Each augmented sample is the raw patch flipped along some axes (np.flip on our
    (C, z, y, x)); the same flips apply to the label, which still equals the thresholded image;
    over a few batches every axis is flipped and not flipped at least once."""
    maker = PatchLoader(
        phantom_store, patch_size=PATCH, batch_size=4, margin=MARGIN, workers=0, seed=3,
        oversample_foreground=0.5,
    )._maker  # fmt: skip
    seen: set[tuple[int, bool]] = set()
    for _ in range(4):
        batch = augmented.next_batch()
        for i, (case_id, start, _) in enumerate(maker.plan(batch.index)[1]):
            inner = tuple(s + m for s, m in zip(start, MARGIN, strict=True))
            raw_img, raw_lab = phantom_store[case_id].read_patch(inner, PATCH)
            img, lab = batch.image[i].numpy(), batch.label[i].numpy()
            np.testing.assert_array_equal(lab, img[0] > _threshold(phantom_store, case_id))
            matches = []
            for fz in (False, True):
                for fy in (False, True):
                    for fx in (False, True):
                        axes = [a for a, f in zip((1, 2, 3), (fz, fy, fx), strict=True) if f]
                        ref = np.flip(raw_img, tuple(axes)) if axes else raw_img
                        if np.array_equal(img, ref):
                            matches.append((fz, fy, fx))
            assert len(matches) == 1, f"sample {i}: not one flip of the raw patch: {matches}"
            flags = matches[0]
            axes = [a for a, f in zip((0, 1, 2), flags, strict=True) if f]
            np.testing.assert_array_equal(lab, np.flip(raw_lab, tuple(axes)) if axes else raw_lab)
            seen.update(enumerate(flags))
    assert seen == {(a, f) for a in range(3) for f in (False, True)}


def test_flip_axes_limit_the_flips(phantom_store: Store) -> None:
    """``flip_axes=(2,)`` with ``flip_p=1``: every sample is the raw patch flipped along x only."""
    aug = DaliAugmentation(
        flip_p=1.0, flip_axes=(2,), brightness_p=0, contrast_p=0, gamma_p=0, noise_p=0
    )
    maker = PatchLoader(
        phantom_store, patch_size=PATCH, batch_size=4, margin=MARGIN, workers=0, seed=5,
        oversample_foreground=0.5,
    )._maker  # fmt: skip
    with DaliPatchLoader(
        phantom_store, patch_size=PATCH, batch_size=4, augmentation=aug, margin=MARGIN,
        workers=0, seed=5, oversample_foreground=0.5,
    ) as loader:  # fmt: skip
        batch = loader.next_batch()
    for i, (case_id, start, _) in enumerate(maker.plan(batch.index)[1]):
        inner = tuple(s + m for s, m in zip(start, MARGIN, strict=True))
        raw_img, raw_lab = phantom_store[case_id].read_patch(inner, PATCH)
        np.testing.assert_array_equal(batch.image[i].numpy(), np.flip(raw_img, 3))
        np.testing.assert_array_equal(batch.label[i].numpy(), np.flip(raw_lab, 2))


def _fixed(**steps: Any) -> DaliAugmentation:
    """One intensity step always on with a fixed parameter; everything else off."""
    base: dict[str, Any] = {
        "flip_p": 0,
        "brightness_p": 0,
        "contrast_p": 0,
        "gamma_p": 0,
        "noise_p": 0,
    }
    base.update(steps)
    return DaliAugmentation(**base)


def _contrast(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * 1.5 + mean


def _gamma(x: np.ndarray) -> np.ndarray:
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    span = x.max(axis=(1, 2, 3), keepdims=True) - lo + 1e-7
    return ((x - lo) / span) ** 2.0 * span + lo


@pytest.mark.parametrize(
    ("aug", "reference"),
    [
        (_fixed(brightness_p=1.0, brightness_range=(1.3, 1.3)), lambda x: x * 1.3),
        (_fixed(contrast_p=1.0, contrast_range=(1.5, 1.5)), _contrast),
        (_fixed(gamma_p=1.0, gamma_range=(2.0, 2.0)), _gamma),
    ],
    ids=["brightness", "contrast", "gamma"],
)
def test_intensity_steps_against_numpy(
    phantom_store: Store, plain: DaliPatchLoader, aug: DaliAugmentation, reference: object
) -> None:
    with DaliPatchLoader(
        phantom_store, patch_size=PATCH, batch_size=4, augmentation=aug, margin=MARGIN,
        workers=0, seed=3, oversample_foreground=0.5,
    ) as loader:  # fmt: skip
        batch = loader.next_batch()
    with DaliPatchLoader(
        phantom_store, patch_size=PATCH, batch_size=4, augmentation=False, margin=MARGIN,
        workers=0, seed=3, oversample_foreground=0.5,
    ) as raw_loader:  # fmt: skip
        raw = raw_loader.next_batch()
    for i in range(4):
        expected = reference(raw.image[i].numpy().astype(np.float64))  # type: ignore[operator]
        np.testing.assert_allclose(batch.image[i].numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(batch.label.numpy(), raw.label.numpy())


def test_noise_has_the_asked_spread(phantom_store: Store) -> None:
    kw: dict[str, Any] = {
        "patch_size": PATCH,
        "batch_size": 4,
        "margin": MARGIN,
        "workers": 0,
        "seed": 3,
    }
    with DaliPatchLoader(phantom_store, augmentation=NONE, **kw) as a:
        raw = a.next_batch().image.numpy()
    noisy_aug = _fixed(noise_p=1.0, noise_std=(0.5, 0.5))
    with DaliPatchLoader(phantom_store, augmentation=noisy_aug, **kw) as b:
        noisy = b.next_batch().image.numpy()
    residual = noisy - raw
    assert abs(residual.mean()) < 0.05
    assert 0.45 < residual.std() < 0.55


def test_same_seed_same_batches_any_workers_and_clean_close(phantom_store: Store) -> None:
    """Full default augmentation: two loaders with one seed agree batch by batch, also when one
    reads in a DALI worker process (stopped by close); another seed differs."""
    import psutil

    kw: dict[str, Any] = {"patch_size": PATCH, "batch_size": 3, "margin": MARGIN, "batches": 3}

    def run(seed: int, workers: int) -> list[tuple[np.ndarray, np.ndarray, list[str]]]:
        with DaliPatchLoader(phantom_store, seed=seed, workers=workers, **kw) as loader:
            return [(b.image.numpy(), b.label.numpy(), b.cases) for b in loader]

    a, c = run(7, 0), run(8, 0)
    loader = DaliPatchLoader(phantom_store, seed=7, workers=1, **kw)
    with loader:
        b = [(x.image.numpy(), x.label.numpy(), x.cases) for x in loader]
        pids = loader.worker_pids
        assert len(pids) == 1
    assert loader.worker_pids == []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        proc.wait(timeout=5)  # raises TimeoutExpired if the worker outlives close()
    for (ia, la, ca), (ib, lb, cb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(ia, ib)
        np.testing.assert_array_equal(la, lb)
        assert ca == cb
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=True))


def test_close_is_idempotent_and_final(phantom_store: Store) -> None:
    loader = DaliPatchLoader(phantom_store, patch_size=PATCH, batch_size=2, workers=0)
    with loader:
        assert loader.next_batch().image.shape == (2, 1, *PATCH)
    loader.close()
    with pytest.raises(InputError, match="closed"):
        loader.next_batch()


def test_batches_and_len(phantom_store: Store) -> None:
    with DaliPatchLoader(
        phantom_store, patch_size=PATCH, batch_size=2, workers=0, batches=2
    ) as loader:
        assert len(loader) == 2
        assert [b.index for b in loader] == [0, 1]
        assert [b.index for b in loader] == [2, 3]


def test_make_loader_dispatch(phantom_store: Store) -> None:
    kw: dict[str, Any] = {"patch_size": PATCH, "batch_size": 2, "workers": 0, "batches": 1}
    with make_loader("native", store_or_url=phantom_store, **kw) as native:
        assert isinstance(native, PatchLoader)
    with make_loader("dali", store_or_url=phantom_store, augmentation=False, **kw) as dali:
        assert isinstance(dali, DaliPatchLoader)
        assert next(iter(dali)).label.shape == (2, *PATCH)
    with pytest.raises(InputError, match="loader"):
        make_loader("torchio", store_or_url=phantom_store)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device": "tpu"}, "device"),
        ({"device": "meta"}, "device"),
        ({"augmentation": "heavy"}, "augmentation"),
        ({"augmentation": {"flip_p": 2.0}}, "flip_p"),
        ({"augmentation": {"gamma_range": (0.0, 1.0)}}, "gamma_range"),
        ({"augmentation": {"flip_axes": (0, 3)}}, "flip_axes"),
        ({"augmentation": {"flip_axes": (1, 1)}}, "flip_axes"),
        ({"augmentation": {"bogus": 1}}, "augmentation"),
        ({"batch_size": 0}, "batch_size"),
        ({"patch_size": (8, 8)}, "patch_size"),
        ({"cases": ["nope"]}, "cases"),
        ({"oversample_foreground": 1.5}, "oversample_foreground"),
    ],
)
def test_bad_arguments(phantom_store: Store, kwargs: dict[str, object], match: str) -> None:
    args: dict[str, Any] = {"patch_size": PATCH, "workers": 0}
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        DaliPatchLoader(phantom_store, **args)


def test_failed_read_raises_worker_error(
    phantom_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastseg.store import Case

    with DaliPatchLoader(phantom_store, patch_size=PATCH, batch_size=2, workers=0) as loader:

        def broken(*args: object, **kwargs: object) -> None:
            raise OSError("disk on fire")

        monkeypatch.setattr(Case, "read_patch", broken)
        with pytest.raises(WorkerError, match="disk on fire"):
            loader.next_batch()
        with pytest.raises(InputError, match="closed"):
            loader.next_batch()


@pytest.mark.cuda
def test_cuda_matches_cpu(phantom_store: Store) -> None:
    """On a GPU, the same seed gives the CPU pipeline's batches (flips and crop are exact; the
    intensity steps agree to float rounding)."""
    import torch

    kw: dict[str, Any] = {
        "patch_size": PATCH,
        "batch_size": 4,
        "margin": MARGIN,
        "workers": 0,
        "seed": 5,
    }
    with DaliPatchLoader(phantom_store, device="cuda", **kw) as gpu:
        ours = gpu.next_batch()
    with DaliPatchLoader(phantom_store, device="cpu", **kw) as cpu:
        ref = cpu.next_batch()
    assert ours.image.device.type == "cuda" and ours.label.dtype == torch.int64
    assert ours.cases == ref.cases
    np.testing.assert_array_equal(ours.label.cpu().numpy(), ref.label.numpy())
    np.testing.assert_allclose(ours.image.cpu().numpy(), ref.image.numpy(), rtol=1e-4, atol=1e-4)


def test_ranks_sample_their_shard(phantom_store: Store) -> None:
    kw: dict[str, Any] = {"patch_size": PATCH, "batch_size": 4, "workers": 0, "augmentation": False}
    seen = []
    for rank in (0, 1):
        with DaliPatchLoader(phantom_store, rank=rank, world_size=2, **kw) as loader:
            assert loader.cases == phantom_store.cases[rank::2]
            seen.append({c for _ in range(3) for c in loader.next_batch().cases})
    assert seen[0] <= set(phantom_store.cases[0::2]) and seen[1] <= set(phantom_store.cases[1::2])
