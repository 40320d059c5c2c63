"""Training-batch throughput: fastseg's PatchLoader vs MONAI (CacheDataset +
RandCropByPosNegLabeld + RandAffined + intensity transforms, torch DataLoader) and an
nnU-Net-style batchgenerators pipeline (nnU-Net's DataLoader3D sampling + SpatialTransform +
intensity transforms + mirroring, MultiThreadedAugmenter), in one process, on the same data.

Settings (pick with --setting, default both):

- ``hippo``: the real hippocampus MR data (../shared/data/hippocampus, all 208 cases by default,
  converted once to a store under --cache), nnU-Net's 3d_fullres plan for it: patch
  40x56x40 (z, y, x), batch 9.
- ``ct``: CT-like synthetic volumes (4 cases of 176x224x224 at 1 mm: body, organs, bone, noise),
  patch 128x128x128, batch 2 (a typical CT plan).

Every loader uses the same number of worker processes (--workers, default 2), one thread each
(OMP_NUM_THREADS=1), one third of each batch centred on foreground, and the same augmentation
set with nnU-Net's probabilities: rotation ±30° (p 0.2) and scaling 0.7-1.4 (p 0.2), Gaussian
noise (p 0.1), blur (p 0.2), brightness (p 0.15), contrast (p 0.15), low resolution (p 0.25),
gamma (p 0.3 and inverted p 0.1), mirroring on each axis (p 0.5). The image is resampled with
trilinear interpolation in fastseg (its default) and MONAI, and cubic in batchgenerators
(nnU-Net's order 3); fastseg is also run with cubic interpolation, and ratios are printed for
both fastseg variants. Labels nearest (batchgenerators: nnU-Net's order 1 on the label map). fastseg and batchgenerators read a region patch // 8 larger per side and crop
the patch after the spatial transform; MONAI crops the patch first and rotates it in place (as
its tutorials do). The peers get the data already in RAM (MONAI's cache, with the foreground and
background indices precomputed; nnU-Net-style arrays). fastseg reads from its store; each of its
workers keeps whole decoded cases in RAM when the shard fits ``cache_mb`` (default 256 MiB per
worker; both settings here fit, so it reads each case from the store once, at start-up — as
MONAI's CacheDataset does). Like the peers, none of them resamples a sample whose draw has no
rotation or scaling (fastseg and batchgenerators cut the patch, MONAI's RandAffined is skipped). Batches land as CPU torch tensors in the main process, which
does nothing else. Each loader is warmed up (workers started, first batches discarded), then
at least --batches (fastseg) or --peer-batches, and at least --min-seconds, are timed; printed:
median seconds between batches, batches/s, and fastseg's ratio to each peer (issue #6 asks for
>= 10x).

fastseg (trilinear) and MONAI are timed back to back in each of --rounds rounds; the table shows
the median round and every round's ratio is printed (the machine's speed drifts).

Usage: python benchmarks/bench_loader.py [--setting hippo|ct|both] [--workers 2] [--rounds 3]
       [--batches 60] [--peer-batches 12] [--min-seconds 6] [--cases 208]
       [--cache /tmp/fastseg_bench_loader]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import math
import shutil
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FASTSEG_SHARED_DATA", ROOT.parent / "shared" / "data"))
SETTINGS = {
    "hippo": {"patch": (40, 56, 40), "batch": 9},
    "ct": {"patch": (128, 128, 128), "batch": 2},
}
OVERSAMPLE = 1 / 3
ROTATION = 30.0  # degrees, each axis
SCALE = (0.7, 1.4)


def fastseg_config() -> list[dict[str, Any]]:
    """nnU-Net's augmentation as fastseg steps (default_config without the elastic step)."""
    return [
        {"name": "affine", "rotation": (-ROTATION, ROTATION), "scale": SCALE},
        {"name": "noise"},
        {"name": "blur"},
        {"name": "brightness"},
        {"name": "contrast"},
        {"name": "lowres"},
        {"name": "gamma", "invert": True, "p": 0.1},
        {"name": "gamma"},
        {"name": "flip"},
    ]


# -- data -------------------------------------------------------------------------------------
def _complete(dst: Path, n: int) -> bool:
    if not (dst / "zarr.json").is_file():
        return False
    from fastseg.store import Store

    return len(Store.open(dst)) >= n


def hippo_store(cache: Path, n_cases: int) -> Path:
    """The first ``n_cases`` hippocampus cases (sorted ids) as a store (converted once)."""
    from fastseg.store import convert

    src = SHARED / "hippocampus"
    names = sorted(p.name for p in (src / "imagesTr").glob("*.nii.gz"))[:n_cases]
    dst = cache / f"hippo{len(names)}.zarr"
    if _complete(dst, len(names)):
        return dst
    msd = cache / f"hippo{len(names)}_msd"
    shutil.rmtree(msd, ignore_errors=True)
    (msd / "imagesTr").mkdir(parents=True)
    (msd / "labelsTr").mkdir()
    for name in names:
        os.symlink(src / "imagesTr" / name, msd / "imagesTr" / name)
        os.symlink(src / "labelsTr" / name, msd / "labelsTr" / name)
    doc = json.loads((src / "dataset.json").read_text())
    doc["training"] = [{"image": f"./imagesTr/{n}", "label": f"./labelsTr/{n}"} for n in names]
    (msd / "dataset.json").write_text(json.dumps(doc))
    report = convert(msd, dst, workers=2, progress=False)
    if not report.ok:
        raise SystemExit(f"conversion failed: {report.failed}")
    return dst


def ct_store(cache: Path, n_cases: int = 4, shape: tuple[int, int, int] = (176, 224, 224)) -> Path:
    """CT-like synthetic cases (int16 HU; labels 1 liver-like organ, 2 kidney-like organs,
    3 bone) as a store (converted once)."""
    from fastseg.io import Volume, write
    from fastseg.store import convert

    dst = cache / "ct.zarr"
    if _complete(dst, n_cases):
        return dst
    msd = cache / "ct_msd"
    shutil.rmtree(msd, ignore_errors=True)
    (msd / "imagesTr").mkdir(parents=True)
    (msd / "labelsTr").mkdir()
    doc = {
        "name": "ct",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "liver", "2": "kidney", "3": "bone"},
        "numTraining": n_cases,
    }
    (msd / "dataset.json").write_text(json.dumps(doc))
    z, y, x = np.indices(shape, dtype=np.float32)
    c = [(s - 1) / 2 for s in shape]
    for i in range(n_cases):
        rng = np.random.default_rng(i)
        body = ((y - c[1]) / (0.42 * shape[1])) ** 2 + ((x - c[2]) / (0.46 * shape[2])) ** 2 < 1
        liver = ((z - c[0] - 10) / 40) ** 2 + ((y - c[1] + 5) / 35) ** 2 + (
            (x - c[2] + 40 + 3 * i) / 40
        ) ** 2 < 1
        kidney = np.zeros(shape, bool)
        for side in (-1, 1):
            kidney |= ((z - c[0] + 20) / 22) ** 2 + ((y - c[1] - 30) / 14) ** 2 + (
                (x - c[2] - side * 55) / 12
            ) ** 2 < 1
        bone = ((y - c[1] - 60) ** 2 + (x - c[2]) ** 2) < 14**2
        image = np.full(shape, -1000.0, np.float32)
        image[body] = 30.0
        image[liver & body] = 100.0
        image[kidney & body] = 150.0
        image[bone & body] = 800.0
        image += rng.normal(0, 20, shape).astype(np.float32) * body
        label = np.zeros(shape, np.uint8)
        label[liver & body] = 1
        label[kidney & body] = 2
        label[bone & body] = 3
        vol = Volume(np.round(image).astype(np.int16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
        write(vol, msd / "imagesTr" / f"ct_{i:03d}_0000.nii.gz")
        write(vol.with_array(label), msd / "labelsTr" / f"ct_{i:03d}.nii.gz")
    report = convert(msd, dst, workers=2, progress=False)
    if not report.ok:
        raise SystemExit(f"conversion failed: {report.failed}")
    return dst


def in_ram(url: Path) -> list[dict[str, Any]]:
    """Every case of the store in RAM: normalised image (C, z, y, x) float32, label (z, y, x)
    uint8, the stored foreground voxels per class: what the peers cache."""
    from fastseg.store import Store

    store = Store.open(url)
    out = []
    for cid in store.cases:
        case = store[cid]
        label = case.label()
        assert label is not None
        out.append(
            {
                "image": case.image(),
                "label": label.astype(np.uint8),
                "foreground": case.foreground(),
            }
        )
    return out


# -- loaders: each returns (iterator of (image, label) batches, close) ------------------------
Loader = tuple[Iterator[Any], Callable[[], None]]


def fastseg_loader(
    url: Path, patch: tuple[int, ...], batch: int, workers: int, interpolation: str = "linear"
) -> Loader:
    from fastseg.augment import Pipeline
    from fastseg.data import PatchLoader

    pipeline = Pipeline(fastseg_config(), image_interpolation=interpolation)
    loader = PatchLoader(
        url,
        patch_size=patch,
        batch_size=batch,
        oversample_foreground=OVERSAMPLE,
        augmentation=pipeline,
        workers=workers,
        prefetch=2 * workers + 2,
        seed=0,
    )
    fastseg_loader.last = loader  # type: ignore[attr-defined]
    return (((b.image, b.label) for b in loader), loader.close)


def monai_loader(
    cases: list[dict[str, Any]], patch: tuple[int, ...], batch: int, workers: int
) -> Loader:
    import torch
    from monai import transforms as T
    from monai.data import CacheDataset, DataLoader

    keys = ["image", "label"]
    data = [{"image": c["image"], "label": c["label"][None]} for c in cases]
    rot = math.radians(ROTATION)
    transform = T.Compose(
        [
            T.EnsureTyped(keys=keys, track_meta=False),
            T.SpatialPadd(keys=keys, spatial_size=patch),  # cases smaller than the patch
            T.FgBgToIndicesd(keys="label", fg_postfix="_fg", bg_postfix="_bg"),
            T.RandCropByPosNegLabeld(
                keys=keys,
                label_key="label",
                spatial_size=patch,
                pos=1,
                neg=2,
                num_samples=1,
                fg_indices_key="label_fg",
                bg_indices_key="label_bg",
            ),
            T.RandAffined(
                keys=keys,
                prob=1 - 0.8 * 0.8,  # nnU-Net: rotation p 0.2, scaling p 0.2
                rotate_range=(rot, rot, rot),
                scale_range=(0.35, 0.35, 0.35),
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
            T.RandGaussianNoised(keys="image", prob=0.1, std=0.1),
            T.RandGaussianSmoothd(
                keys="image", sigma_x=(0.5, 1), sigma_y=(0.5, 1), sigma_z=(0.5, 1), prob=0.2
            ),
            T.RandScaleIntensityd(keys="image", factors=0.25, prob=0.15),
            T.RandAdjustContrastd(keys="image", prob=0.15, gamma=(0.75, 1.25)),
            T.RandSimulateLowResolutiond(keys="image", prob=0.25, zoom_range=(0.5, 1.0)),
            T.RandAdjustContrastd(keys="image", prob=0.3, gamma=(0.7, 1.5)),
            T.RandFlipd(keys=keys, prob=0.5, spatial_axis=0),
            T.RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
            T.RandFlipd(keys=keys, prob=0.5, spatial_axis=2),
            T.DeleteItemsd(keys=["label_fg", "label_bg"]),
        ]
    )
    t0 = time.perf_counter()
    ds = CacheDataset(data, transform=transform, cache_rate=1.0, num_workers=1, progress=False)
    monai_loader.cache_s = time.perf_counter() - t0  # type: ignore[attr-defined]
    sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=10**7)
    dl = DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers)
    it = iter(dl)

    def close() -> None:
        nonlocal it
        del it

    return ((((b["image"], b["label"]) for b in it)), close)


def nnunet_loader(
    cases: list[dict[str, Any]], patch: tuple[int, ...], batch: int, workers: int
) -> Loader:
    from batchgenerators.dataloading.data_loader import DataLoader
    from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter
    from batchgenerators.transforms.abstract_transforms import Compose
    from batchgenerators.transforms.color_transforms import (
        BrightnessMultiplicativeTransform,
        ContrastAugmentationTransform,
        GammaTransform,
    )
    from batchgenerators.transforms.noise_transforms import (
        GaussianBlurTransform,
        GaussianNoiseTransform,
    )
    from batchgenerators.transforms.resample_transforms import SimulateLowResolutionTransform
    from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform
    from batchgenerators.transforms.utility_transforms import NumpyToTensor, RemoveLabelTransform

    region = tuple(p + 2 * (p // 8) for p in patch)

    class DataLoader3D(DataLoader):  # type: ignore[misc]
        """nnU-Net's DataLoader3D sampling (random cases, the last third forced to foreground,
        padding: data 0, seg -1) over in-RAM arrays."""

        def generate_train_batch(self) -> dict[str, Any]:
            rs = self.rs if hasattr(self, "rs") else np.random
            n = self.batch_size
            channels = self._data[0]["image"].shape[0]
            data = np.zeros((n, channels, *region), np.float32)
            seg = np.full((n, 1, *region), -1, np.int16)
            for j in range(n):
                case = self._data[rs.randint(len(self._data))]
                shape = case["label"].shape
                force = not j < round(n * (1 - OVERSAMPLE))
                need = [max(r - s, 0) for r, s in zip(region, shape, strict=True)]
                lbs = [-(d // 2) for d in need]
                ubs = [s + d // 2 + d % 2 - r for s, d, r in zip(shape, need, region, strict=True)]
                fg = {k: v for k, v in case["foreground"].items() if len(v)}
                if force and fg:
                    cls = sorted(fg)[rs.randint(len(fg))]
                    vox = fg[cls][rs.randint(len(fg[cls]))]
                    lo = [
                        max(lb, int(v) - r // 2) for lb, v, r in zip(lbs, vox, region, strict=True)
                    ]
                else:
                    lo = [rs.randint(lb, ub + 1) for lb, ub in zip(lbs, ubs, strict=True)]
                hi = [a + r for a, r in zip(lo, region, strict=True)]
                vlo = [max(0, a) for a in lo]
                vhi = [min(s, b) for s, b in zip(shape, hi, strict=True)]
                src = tuple(slice(a, b) for a, b in zip(vlo, vhi, strict=True))
                dst = tuple(slice(a - s, b - s) for a, b, s in zip(vlo, vhi, lo, strict=True))
                data[(j, slice(None), *dst)] = case["image"][(slice(None), *src)]
                seg[(j, 0, *dst)] = case["label"][src]
            return {"data": data, "seg": seg}

    rot = math.radians(ROTATION)
    transform = Compose(
        [
            SpatialTransform(
                patch,
                patch_center_dist_from_border=None,
                do_elastic_deform=False,
                do_rotation=True,
                angle_x=(-rot, rot),
                angle_y=(-rot, rot),
                angle_z=(-rot, rot),
                p_rot_per_axis=1,
                do_scale=True,
                scale=SCALE,
                border_mode_data="constant",
                border_cval_data=0,
                order_data=3,
                border_mode_seg="constant",
                border_cval_seg=-1,
                order_seg=1,
                random_crop=False,
                p_el_per_sample=0,
                p_scale_per_sample=0.2,
                p_rot_per_sample=0.2,
                independent_scale_for_each_axis=False,
            ),
            GaussianNoiseTransform(p_per_sample=0.1),
            GaussianBlurTransform(
                (0.5, 1.0), different_sigma_per_channel=True, p_per_sample=0.2, p_per_channel=0.5
            ),
            BrightnessMultiplicativeTransform(multiplier_range=(0.75, 1.25), p_per_sample=0.15),
            ContrastAugmentationTransform(p_per_sample=0.15),
            SimulateLowResolutionTransform(
                zoom_range=(0.5, 1),
                per_channel=True,
                p_per_channel=0.5,
                order_downsample=0,
                order_upsample=3,
                p_per_sample=0.25,
            ),
            GammaTransform((0.7, 1.5), True, True, retain_stats=True, p_per_sample=0.1),
            GammaTransform((0.7, 1.5), False, True, retain_stats=True, p_per_sample=0.3),
            MirrorTransform((0, 1, 2)),
            RemoveLabelTransform(-1, 0),
            NumpyToTensor(["data", "seg"], "float"),
        ]
    )
    dl = DataLoader3D(cases, batch, workers, None, infinite=True)
    mta = MultiThreadedAugmenter(
        dl, transform, workers, num_cached_per_queue=2, seeds=list(range(workers)), timeout=600
    )
    return (((b["data"], b["seg"]) for b in mta), mta._finish)


# -- timing -----------------------------------------------------------------------------------
def measure(
    make: Callable[[], Loader], warmup: int, n: int, min_s: float = 6.0
) -> dict[str, float]:
    """Median seconds between batches and batches/s over at least ``n`` batches and ``min_s``
    seconds after ``warmup`` (a window long enough to average out a shared machine's bursts)."""
    t0 = time.perf_counter()
    it, close = make()
    shape = None
    try:
        for _ in range(warmup):
            image, _label = next(it)
            shape = tuple(image.shape)
        start_s = time.perf_counter() - t0
        times = []
        t_all = time.perf_counter()
        while len(times) < n or time.perf_counter() - t_all < min_s:
            t = time.perf_counter()
            image, _label = next(it)
            times.append(time.perf_counter() - t)
        total = time.perf_counter() - t_all
    finally:
        close()
    return {
        "median_s": statistics.median(times),
        "batches_per_s": len(times) / total,
        "batches": len(times),
        "startup_s": start_s,
        "shape": shape,  # type: ignore[dict-item]
    }


def run_setting(name: str, args: argparse.Namespace) -> None:
    cfg = SETTINGS[name]
    patch, batch = cfg["patch"], cfg["batch"]
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    url = hippo_store(cache, args.cases) if name == "hippo" else ct_store(cache)
    cases = in_ram(url)
    print(
        f"\n== {name}: {len(cases)} cases, patch {patch} (z, y, x), batch {batch}, "
        f"{args.workers} workers each (data ready in {time.perf_counter() - t0:.1f} s) =="
    )
    warm = 3
    results: dict[str, dict[str, Any]] = {}
    stats = {}
    ours = {"fastseg (trilinear)": "linear", "fastseg (cubic)": "cubic"}
    monai = "MONAI CacheDataset+RandCropByPosNegLabeld+RandAffined"

    def fastseg(interp: str) -> dict[str, Any]:
        return measure(
            lambda: fastseg_loader(url, patch, batch, args.workers, interp),
            warm,
            args.batches if interp == "linear" else args.peer_batches,
            args.min_seconds,
        )

    def monai_run() -> dict[str, Any]:
        return measure(
            lambda: monai_loader(cases, patch, batch, args.workers),
            warm,
            args.peer_batches,
            args.min_seconds,
        )

    # fastseg (trilinear) and MONAI back to back in each round: the ratio of a round compares
    # runs minutes apart at most, and the median over rounds damps a shared machine's drift
    rounds: list[tuple[dict[str, Any], dict[str, Any]]] = []
    round_stats = []
    for _ in range(args.rounds):
        ours_round = fastseg("linear")
        round_stats.append(fastseg_loader.last.stats())  # type: ignore[attr-defined]
        rounds.append((ours_round, monai_run()))
    ratios_by_round = [a["batches_per_s"] / b["batches_per_s"] for a, b in rounds]
    middle = sorted(range(len(rounds)), key=lambda i: ratios_by_round[i])[len(rounds) // 2]
    results["fastseg (trilinear)"], results[monai] = rounds[middle]
    stats["fastseg (trilinear)"] = round_stats[middle]
    results["fastseg (cubic)"] = fastseg("cubic")
    stats["fastseg (cubic)"] = fastseg_loader.last.stats()  # type: ignore[attr-defined]
    results["nnU-Net-style batchgenerators (cubic)"] = measure(
        lambda: nnunet_loader(cases, patch, batch, args.workers),
        warm,
        args.peer_batches,
        args.min_seconds,
    )
    head = "".join(f"{'x ' + k.split()[1][1:-1]:>12s}" for k in ours)
    print(f"{'loader':56s} {'median s/batch':>14s} {'batches/s':>10s} {'timed':>6s}{head}")
    for label, r in results.items():
        ratios = "".join(f"{results[k]['batches_per_s'] / r['batches_per_s']:12.1f}" for k in ours)
        print(
            f"{label:56s} {r['median_s']:14.4f} {r['batches_per_s']:10.2f} {r['batches']:6d}{ratios}"
        )
    print("(x trilinear / x cubic: how many times more batches/s that fastseg loader delivers)")
    print(
        f"fastseg (trilinear) / MONAI by round ({args.rounds} rounds, each back to back; the "
        f"rows above are the median round): "
        + ", ".join(
            f"{a['batches_per_s']:.1f}/{b['batches_per_s']:.2f} = {q:.1f}x"
            for (a, b), q in zip(rounds, ratios_by_round, strict=True)
        )
        + f"; median {statistics.median(ratios_by_round):.1f}x"
    )
    for label, st in stats.items():
        per = {
            k: round(1000 * st[f"{k}_median"], 2)
            for k in ("read_s", "assemble_s", "augment_s", "wait_s", "copy_s")
        }
        print(f"{label} per-batch medians (ms): {per}; wait fraction {st['wait_fraction']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--setting", choices=["hippo", "ct", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--peer-batches", type=int, default=12)
    parser.add_argument("--cases", type=int, default=208)
    parser.add_argument("--min-seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", default="/tmp/fastseg_bench_loader")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} at start")
    for name in ("hippo", "ct") if args.setting == "both" else (args.setting,):
        run_setting(name, args)


if __name__ == "__main__":
    main()
