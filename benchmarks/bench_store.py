"""Benchmark of the fastseg Zarr store: conversion speed, store size, random patch reads.

Run: ``python benchmarks/bench_store.py`` (a few minutes on 2 cores), ``--full`` for the issue's
sizes (20 synthetic CT volumes of 300x512x512 int16), ``--quick`` for a smoke run.

Two datasets, measured in one run:
- the real hippocampus MR data (``../shared/data/hippocampus``, 208 cases of ~35x50x36), patches
  of 32x48x32;
- synthetic CT-like int16 volumes (an elliptic body with lungs and an organ in air, Gaussian
  noise of sigma 15 HU everywhere inside the circular reconstructed field of view, -1024
  outside it), written as ``.nii.gz`` at gzip level 6; patches of 128^3.

Sections:
1. codecs — Blosc codecs/levels/shuffles (chunks 64^3): store size relative to the
   ``.nii.gz`` originals and codec encode/decode MB per CPU-second; then chunk sizes for the
   chosen codec (random CT patch reads per CPU-second); then label codecs.
2. compare — ``fastseg.store.convert`` with the default codec (conversion MB/s, store size vs
   ``.nii.gz``), then random patch reads/s (image normalised to float32 + label, padded at the
   borders) with 1 and 2 worker processes for: the fastseg store (direct chunk reads), the same
   store through zarr-python's generic path, (a) ``.nii.gz`` loaded with nibabel per sample and
   cropped, (b) ``.npy`` memory maps of the preprocessed float32 data (nnU-Net's unpacked
   format), (c) Blosc2 ``.b2nd`` files as nnU-Net v2 writes them (float32 data + int8 seg, ZSTD
   clevel 8, block and chunk shapes from nnU-Net's ``comp_blosc2_params`` for the patch size,
   read with one decompression thread per process as nnU-Net does).

Measured on the shared 2-core development machine (other jobs were running: wall-clock rates
vary from run to run, so per-CPU-second costs are reported next to them, and best-of-2
interleaved rounds are kept), default sizes (4 CT volumes of 160x384x384, all 208 hippocampus
cases), one run of this script:

Codec sweep (64^3 chunks; size = whole store / .nii.gz originals; codec MB per CPU-second):

| codec              | CT size | hippo size | encode MB/s | decode MB/s |
|--------------------|---------|------------|-------------|-------------|
| lz4-1-shuffle      | 1.088   | 0.989      | 1040        | 2646        |
| lz4hc-5-shuffle    | 0.996   | 0.972      | 60          | 3255        |
| lz4hc-5-bitshuffle | 0.892   | 0.973      | 62          | 2008        |
| zstd-1-shuffle     | 0.808   | 0.860      | 403         | 879         |
| zstd-1-bitshuffle  | 0.864   | 0.892      | 357         | 813         |
| zstd-3-shuffle     | 0.794   | 0.863      | 189         | 895         |
| zstd-5-shuffle     | 0.779   | 0.862      | 91          | 1119        |
| zstd-6-shuffle     | 0.775   | 0.861      | 53          | 992         |

Rule (``ranked``): size <= 0.9 x .nii.gz on both sets, encode >= 60 MB/s, then the fastest
decoder (within 10% = equal, faster encoder first) -> zstd-5 + byte shuffle. Chunks (CT 128^3
patches per CPU-s with zstd-5): 32^3 34.1, 48^3 45.9, 64^3 45.1, 96^3 36.8 -> 64^3 (largest
within 10% of the best). Labels (size vs label .nii.gz, decode MB/s): zstd-1 0.83/1890,
zstd-3 0.67/2338, zstd-5 0.42/3934, lz4-1 2.14/6167, lz4hc-5 1.37/9650, lz4hc-9 0.58/11997
-> lz4hc-9. These are ``StorageOptions()``'s defaults.

Conversion (2 workers): CT 12.5 MB/s of voxels (5.4 MB/s of .nii.gz), hippocampus 5.7 MB/s;
a re-run is a no-op (0.01 s). Store size: CT 63.4 MB vs 81.4 MB .nii.gz (0.78), hippocampus
13.2 MB vs 15.1 MB (0.87); nnU-Net's .b2nd 143 MB / 41 MB, .npy 472 MB / 65 MB.

Random patch reads (image normalised float32 + label), patches/s:

| CT 128^3 from 160x384x384 | 1 proc | 2 procs | per CPU-s, 1 thread in-process |
|---------------------------|--------|---------|--------------------------------|
| fastseg store             | 27.3   | 55.2    | 46.7                           |
| zarr-python, same store   | 14.4   | 12.6    |                                |
| (a) .nii.gz + nibabel     | 1.1    | 1.4     |                                |
| (b) .npy memory maps      | 195    | 198     | 485                            |
| (c) nnU-Net .b2nd         | 23.6   | 18.1    | 40.2                           |

| hippocampus 32x48x32      | 1 proc | 2 procs | per CPU-s, 1 thread in-process |
|---------------------------|--------|---------|--------------------------------|
| fastseg store             | 823    | 743     | 1667                           |
| zarr-python, same store   | 152    | 151     |                                |
| (a) .nii.gz + nibabel     | 203    | 102     |                                |
| (b) .npy memory maps      | 2739   | 1729    | 6441                           |
| (c) nnU-Net .b2nd         | 266    | 254     | 503                            |

fastseg / .b2nd: CT 1.16x per CPU (1.16x wall with one process, whose reader decodes chunks
on 2 threads); hippocampus 3.3x per CPU. The 2-process wall figures are the least reliable
(the machine rarely had two free cores).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FASTSEG_SHARED_DATA", ROOT.parent / "shared" / "data"))

CODECS = [
    ("lz4", 1, "shuffle"),
    ("lz4hc", 5, "shuffle"),
    ("lz4hc", 5, "bitshuffle"),
    ("zstd", 1, "shuffle"),
    ("zstd", 1, "bitshuffle"),
    ("zstd", 3, "shuffle"),
    ("zstd", 5, "shuffle"),
    ("zstd", 6, "shuffle"),
]
CHUNKS = [32, 48, 64, 96]
MIN_ENCODE_MB_S = 60.0  # per CPU-second: about the speed of reading the .nii.gz sources
MAX_SIZE = 0.9  # of the .nii.gz originals: a 10% margin, real collections vary


# ----------------------------------------------------------------------------- data


def ct_volume(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like int16 volume (HU) and a uint8 label (1 lungs, 2 a soft-tissue organ)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    c = [(s - 1) / 2 for s in shape]
    body = ((y - c[1]) / (0.42 * shape[1])) ** 2 + ((x - c[2]) / (0.46 * shape[2])) ** 2 < 1
    lung = (((y - c[1] + 0.05 * shape[1]) / (0.25 * shape[1])) ** 2
            + ((np.abs(x - c[2]) - 0.2 * shape[2]) / (0.13 * shape[2])) ** 2 < 1) & (z > 0.3 * shape[0])  # fmt: skip
    organ = ((z - 0.2 * shape[0]) / (0.15 * shape[0])) ** 2 + (
        (y - c[1]) / (0.15 * shape[1])
    ) ** 2 + ((x - c[2] + 0.1 * shape[2]) / (0.12 * shape[2])) ** 2 < 1
    fov = ((y - c[1]) ** 2 + (x - c[2]) ** 2) < (0.5 * min(shape[1:])) ** 2
    image = np.full(shape, -1000.0, dtype=np.float32)
    image[np.broadcast_to(body, shape)] = 40.0
    image[np.broadcast_to(lung & body, shape)] = -850.0
    image[np.broadcast_to(organ & body, shape)] = 90.0
    image += rng.normal(0.0, 15.0, shape).astype(np.float32)
    image[~np.broadcast_to(fov, shape)] = -1024.0  # outside the reconstructed field of view
    label = np.zeros(shape, dtype=np.uint8)
    label[np.broadcast_to(lung & body, shape)] = 1
    label[np.broadcast_to(organ & body, shape)] = 2
    return np.round(image).astype(np.int16), label


def make_ct_dataset(root: Path, n: int, shape: tuple[int, int, int]) -> Path:
    """MSD-layout folder of ``n`` CT-like cases written as gzip level-6 ``.nii.gz``."""
    import nibabel as nib

    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    doc = {"name": "synthetic CT", "modality": {"0": "CT"},
           "labels": {"0": "background", "1": "lung", "2": "organ"}}  # fmt: skip
    (root / "dataset.json").write_text(json.dumps(doc))
    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    nib.openers.Opener.default_compresslevel = 6
    for i in range(n):
        image, label = ct_volume(shape, seed=i)
        nib.save(
            nib.Nifti1Image(image.transpose(2, 1, 0), affine),
            root / "imagesTr" / f"ct_{i:03d}_0000.nii.gz",
        )
        nib.save(
            nib.Nifti1Image(label.transpose(2, 1, 0), affine),
            root / "labelsTr" / f"ct_{i:03d}.nii.gz",
        )
    return root


def make_hippo_dataset(root: Path, limit: int | None) -> Path:
    src = SHARED / "hippocampus"
    names = sorted(p.name for p in (src / "imagesTr").glob("*.nii.gz"))[:limit]
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for name in names:
        os.symlink(src / "imagesTr" / name, root / "imagesTr" / name)
        os.symlink(src / "labelsTr" / name, root / "labelsTr" / name)
    shutil.copy(src / "dataset.json", root / "dataset.json")
    return root


def nii_bytes(src: Path) -> int:
    return sum(p.stat().st_size for p in src.rglob("*.nii.gz"))


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def voxel_bytes(src: Path) -> int:
    import nibabel as nib

    total = 0
    for p in (src / "imagesTr").glob("*.nii.gz"):
        img = nib.load(str(p))
        total += int(np.prod(img.shape)) * img.get_data_dtype().itemsize
    return total


# ----------------------------------------------------------------------------- nnU-Net peer


def comp_blosc2_params(
    image_size: tuple[int, ...],
    patch_size: tuple[int, ...],
    bytes_per_pixel: int,
    l1_cache: int = 32768,
    l3_cache: int = 1441792,
    safety: float = 0.8,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Block and chunk shapes for ``image_size`` (C, z, y, x), following nnU-Net v2's
    ``nnUNetDatasetBlosc2.comp_blosc2_params``: blocks are the patch rounded up to powers of
    two, halved along the axis most over the patch until they fit 80% of L1; chunks grow by
    whole blocks until 80% of the per-core L3 or 1.5x the patch on average."""
    ps = np.array(patch_size)
    block = np.array((image_size[0], *[2 ** max(0, math.ceil(math.log2(i))) for i in ps]))
    while np.prod(block) * bytes_per_pixel > l1_cache * safety:
        order = np.argsort(block[1:] / ps)[::-1]
        idx = 0
        axis = order[idx]
        while block[axis + 1] == 1:
            idx += 1
            axis = order[idx]
        block[axis + 1] = 2 ** max(0, math.floor(math.log2(block[axis + 1] - 1)))
        block[axis + 1] = min(block[axis + 1], image_size[axis + 1])
    block = np.array([min(i, j) for i, j in zip(image_size, block, strict=True)])
    chunk = deepcopy(block)
    while np.prod(chunk) * bytes_per_pixel < l3_cache * safety:
        if all(i == j for i, j in zip(chunk, image_size, strict=True)):
            break
        order = np.argsort(chunk[1:] / block[1:])
        idx = 0
        axis = order[idx]
        while chunk[axis + 1] == image_size[axis + 1] or ps[axis] == 1:
            idx += 1
            axis = order[idx]
        chunk[axis + 1] = min(chunk[axis + 1] + block[axis + 1], image_size[axis + 1])
        if np.mean([i / j for i, j in zip(chunk[1:], ps, strict=True)]) > 1.5:
            chunk[axis + 1] -= block[axis + 1]
            break
    chunk = np.array([min(i, j) for i, j in zip(image_size, chunk, strict=True)])
    return tuple(int(b) for b in block), tuple(int(c) for c in chunk)


def write_peers(store_url: Path, out: Path, patch: tuple[int, int, int]) -> None:
    """From the converted store: .npy (float32 data, int8 seg) and .b2nd as nnU-Net writes them."""
    import blosc2

    from fastseg.store import Store

    blosc2.set_nthreads(1)
    store = Store.open(store_url)
    (out / "npy").mkdir(parents=True)
    (out / "b2nd").mkdir()
    for case_id in store.cases:
        case = store[case_id]
        data = case.image()
        seg = case.label()[None].astype(np.int8)
        np.save(out / "npy" / f"{case_id}.npy", data)
        np.save(out / "npy" / f"{case_id}_seg.npy", seg)
        bd, cd = comp_blosc2_params(data.shape, patch, data.itemsize)
        bs, cs = comp_blosc2_params(seg.shape, patch, seg.itemsize)
        cparams = {"codec": blosc2.Codec.ZSTD, "clevel": 8}
        blosc2.asarray(np.ascontiguousarray(data), urlpath=str(out / "b2nd" / f"{case_id}.b2nd"),
                       chunks=cd, blocks=bd, cparams=cparams, mmap_mode="w+")  # fmt: skip
        blosc2.asarray(np.ascontiguousarray(seg), urlpath=str(out / "b2nd" / f"{case_id}_seg.b2nd"),
                       chunks=cs, blocks=bs, cparams=cparams, mmap_mode="w+")  # fmt: skip


# ----------------------------------------------------------------------------- readers


def _crop_pad(arr: Any, start: tuple[int, ...], size: tuple[int, ...], value: float) -> np.ndarray:
    """``arr[..., start:start+size]`` over the last 3 axes, padded with ``value`` (as nnU-Net's
    data loader: slice the valid part, then np.pad)."""
    shape = arr.shape[-3:]
    lo = [max(s, 0) for s in start]
    hi = [min(s + n, d) for s, n, d in zip(start, size, shape, strict=True)]
    part = np.asarray(arr[(Ellipsis, *(slice(a, b) for a, b in zip(lo, hi, strict=True)))])
    if part.base is not None:  # a view (memory map, in-memory volume): the patch is a copy
        part = part.copy()
    pads = [(0, 0)] * (part.ndim - 3) + [
        (a - s, s + n - b) for a, b, s, n in zip(lo, hi, start, size, strict=True)
    ]
    if any(p != (0, 0) for p in pads):
        part = np.pad(part, pads, constant_values=value)
    return part


class Reader:
    """Opens cases once (like a dataset object) and reads a patch: (image float32, label)."""

    def __init__(self, method: str, paths: dict[str, str]) -> None:
        self.method = method
        self.paths = paths
        self.cache: dict[str, Any] = {}
        if method in ("fastseg", "zarr-python"):
            from fastseg.store import Store

            self.store = Store.open(paths["store"])

    def shapes(self) -> dict[str, tuple[int, int, int]]:
        return {c: self.store[c].shape for c in self.store.cases}

    def read(
        self, case_id: str, start: tuple[int, int, int], size: tuple[int, int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        m = self.method
        if m == "fastseg":
            case = self.cache.get(case_id)
            if case is None:
                case = self.cache[case_id] = self.store[case_id]
            img, lab = case.read_patch(start=start, size=size)
            return img, lab  # type: ignore[return-value]
        if m == "zarr-python":
            import zarr

            arrays = self.cache.get(case_id)
            if arrays is None:
                g = zarr.open_group(self.paths["store"], path=f"cases/{case_id}", mode="r")
                case = self.store[case_id]
                arrays = self.cache[case_id] = (g["image"], g["label"], case)
            img_a, lab_a, case = arrays
            raw = _crop_pad(img_a, start, size, case.pad_values[0])
            img = np.stack([case.normalize(raw[c], c) for c in range(raw.shape[0])])
            return img, _crop_pad(lab_a, start, size, 0)
        if m == "npy":
            arrays = self.cache.get(case_id)
            if arrays is None:
                d = Path(self.paths["npy"])
                arrays = self.cache[case_id] = (np.load(d / f"{case_id}.npy", mmap_mode="r"),
                                                np.load(d / f"{case_id}_seg.npy", mmap_mode="r"))  # fmt: skip
            return _crop_pad(arrays[0], start, size, 0.0), _crop_pad(arrays[1], start, size, 0)
        if m == "b2nd":
            import blosc2

            arrays = self.cache.get(case_id)
            if arrays is None:
                d = Path(self.paths["b2nd"])
                dp = {"nthreads": 1}
                arrays = self.cache[case_id] = (
                    blosc2.open(
                        urlpath=str(d / f"{case_id}.b2nd"), mode="r", dparams=dp, mmap_mode="r"
                    ),
                    blosc2.open(
                        urlpath=str(d / f"{case_id}_seg.b2nd"), mode="r", dparams=dp, mmap_mode="r"
                    ),
                )
            return _crop_pad(arrays[0], start, size, 0.0), _crop_pad(arrays[1], start, size, 0)
        if m == "nii.gz":
            import nibabel as nib

            src = Path(self.paths["nii"])
            img_path = src / "imagesTr" / f"{case_id}.nii.gz"
            if not img_path.exists():
                img_path = src / "imagesTr" / f"{case_id}_0000.nii.gz"
            image = np.asarray(nib.load(str(img_path)).dataobj).transpose(2, 1, 0)
            label = np.asarray(
                nib.load(str(src / "labelsTr" / f"{case_id}.nii.gz")).dataobj
            ).transpose(2, 1, 0)
            norm = self.paths["norm"]
            raw = _crop_pad(image, start, size, float(image.min()))[None].astype(np.float32)
            if norm[0] is not None:
                np.clip(raw, norm[0], norm[1], out=raw)
            mean, std = (
                (norm[2], norm[3])
                if norm[2] is not None
                else (float(image.mean()), float(image.std()))
            )
            return (raw - mean) / std, _crop_pad(label, start, size, 0)
        raise ValueError(m)


def _worker(
    args: tuple[
        str, dict[str, str], dict[str, tuple[int, int, int]], tuple[int, int, int], int, int, Any
    ],
) -> tuple[float, float, int]:
    method, paths, shapes, size, count, seed, barrier = args
    if method == "fastseg-1thread":
        os.environ["FASTSEG_READ_THREADS"] = "1"
        method = "fastseg"
    reader = Reader(method, paths)
    rng = np.random.default_rng(seed)
    cases = sorted(shapes)
    plan = []
    for _ in range(count):
        c = cases[int(rng.integers(len(cases)))]
        shape = shapes[c]
        start = tuple(
            int(rng.integers(min(0, d - s), max(0, d - s) + 1))
            for d, s in zip(shape, size, strict=True)
        )
        plan.append((c, start))
    for c, start in plan[: max(1, count // 10)]:
        reader.read(c, start, size)  # warm-up: open files, page cache, thread pool
    barrier.wait()
    t0 = time.perf_counter()
    c0 = time.process_time()
    checksum = 0
    for c, start in plan:
        img, lab = reader.read(c, start, size)
        checksum += int(img.shape[-1]) + int(lab.shape[-1])
    return time.perf_counter() - t0, time.process_time() - c0, checksum


def patch_rate(
    method: str,
    paths: dict[str, Any],
    shapes: dict[str, tuple[int, int, int]],
    size: tuple[int, int, int],
    count: int,
    procs: int,
) -> tuple[float, float]:
    """Patches per second of wall time over ``procs`` worker processes, each reading ``count``
    patches, and patches per CPU-second (all threads of all workers): the cost per patch,
    which other jobs on a shared machine disturb much less than the wall time."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(procs)
        with ctx.Pool(procs) as pool:
            jobs = [(method, paths, shapes, size, count, 1000 + i, barrier) for i in range(procs)]
            results = pool.map(_worker, jobs)
    wall = max(r[0] for r in results)
    cpu = sum(r[1] for r in results)
    return procs * count / wall, procs * count / cpu


# ----------------------------------------------------------------------------- sections


def case_nii_bytes(src: Path, case_ids: list[str]) -> int:
    """Bytes of the .nii.gz image and label files of ``case_ids`` in an MSD folder."""
    total = 0
    for case_id in case_ids:
        for p in (
            src / "imagesTr" / f"{case_id}.nii.gz",
            src / "imagesTr" / f"{case_id}_0000.nii.gz",
            src / "labelsTr" / f"{case_id}.nii.gz",
        ):
            if p.exists():
                total += p.stat().st_size
    return total


def copy_store(src: Path, dst: Path, storage: Any, case_ids: list[str]) -> None:
    """The cases ``case_ids`` of ``src`` rewritten with another chunk/codec setting."""
    import zarr

    from fastseg.store import Store
    from fastseg.store._pipeline import _write_case

    store = Store.open(src)
    zarr.create_group(str(dst), attributes={"fastseg": store.attrs})
    group = zarr.open_group(str(src), mode="r")
    for case_id in case_ids:
        case = store[case_id]
        fg = [np.column_stack([np.full(len(v), k), v]) for k, v in case.foreground().items()]
        rows = np.concatenate(fg or [np.zeros((0, 4))]).astype(np.int32)
        image = group[f"cases/{case_id}/image"][...]  # codes too, when the image is coded
        _write_case(
            str(dst),
            case_id,
            image,
            case.label(),
            rows,
            case.attrs,
            storage.to_dict(),
            case.codebook(),
        )


def image_blocks(src: Path, case_ids: list[str], chunk: int = 64) -> list[np.ndarray]:
    """The stored images of ``case_ids`` cut into chunk-sized blocks (source units)."""
    from fastseg.store import Store

    store = Store.open(src)
    blocks = []
    for case_id in case_ids:
        image = store[case_id].image(normalized=False)[0]
        for z in range(0, image.shape[0], chunk):
            for y in range(0, image.shape[1], chunk):
                for x in range(0, image.shape[2], chunk):
                    block = image[z : z + chunk, y : y + chunk, x : x + chunk]
                    blocks.append(np.ascontiguousarray(block))
    return blocks


def codec_rates(
    blocks: list[np.ndarray], codecs: list[tuple[str, int, str]], rounds: int = 5
) -> dict[tuple[str, int, str], tuple[float, float]]:
    """Blosc encode and decode MB per CPU-second of each codec over ``blocks`` (the codec alone,
    no I/O). Codecs are timed in turn within each round and the best round is kept, so load
    from other jobs hits all codecs alike."""
    import numcodecs
    from numcodecs import blosc

    raw = sum(b.nbytes for b in blocks) / 1e6
    out = np.empty(max(b.nbytes for b in blocks), dtype=np.uint8)
    shuffles = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
    enc = dict.fromkeys(codecs, math.inf)
    dec = dict.fromkeys(codecs, math.inf)
    encoded: dict[tuple[str, int, str], list[bytes]] = {}
    for r in range(rounds):
        for codec in codecs:
            if r < 2:
                coder = numcodecs.Blosc(cname=codec[0], clevel=codec[1], shuffle=shuffles[codec[2]])
                t0 = time.process_time()
                encoded[codec] = [coder.encode(b) for b in blocks]
                enc[codec] = min(enc[codec], time.process_time() - t0)
            t0 = time.process_time()
            for e, b in zip(encoded[codec], blocks, strict=True):
                blosc.decompress(e, out[: b.nbytes])
            dec[codec] = min(dec[codec], time.process_time() - t0)
    return {c: (raw / enc[c], raw / dec[c]) for c in codecs}


def _reader_plan(
    shapes: dict[str, tuple[int, int, int]], size: tuple[int, int, int], count: int
) -> list[tuple[str, tuple[int, ...]]]:
    rng = np.random.default_rng(0)
    cases = sorted(shapes)
    plan = []
    for _ in range(count):
        c = cases[int(rng.integers(len(cases)))]
        start = tuple(
            int(rng.integers(min(0, d - s), max(0, d - s) + 1))
            for d, s in zip(shapes[c], size, strict=True)
        )
        plan.append((c, start))
    return plan


def cpu_rates(
    readers: dict[str, tuple[str, dict[str, Any]]],
    shapes: dict[str, tuple[int, int, int]],
    size: tuple[int, int, int],
    count: int,
    rounds: int = 3,
) -> dict[str, float]:
    """Patches per CPU-second of one thread reading ``count`` random patches in this process,
    for each named ``(method, paths)`` reader, taken in turn within each round (best round)."""
    from fastseg.store import _chunks

    inline = _chunks._INLINE_MAX_CHUNKS
    _chunks._INLINE_MAX_CHUNKS = 1 << 30  # decode in the calling thread
    try:
        plan = _reader_plan(shapes, size, count)
        opened = {name: Reader(method, paths) for name, (method, paths) in readers.items()}
        for reader in opened.values():
            for c, start in plan[:3]:
                reader.read(c, start, size)
        best = dict.fromkeys(opened, math.inf)
        for _ in range(rounds):
            for name, reader in opened.items():
                t0 = time.process_time()
                for c, start in plan:
                    reader.read(c, start, size)
                best[name] = min(best[name], time.process_time() - t0)
        return {name: count / t for name, t in best.items()}
    finally:
        _chunks._INLINE_MAX_CHUNKS = inline


def ranked(rows: list[dict[str, Any]], sets: dict[str, Any]) -> list[dict[str, Any]]:
    """The codec rule: among codecs whose store is at most MAX_SIZE of the .nii.gz originals on
    every dataset and that encode at >= MIN_ENCODE_MB_S per CPU-second (converting a large
    collection must not be bound by the codec), the fastest decoder first — decoders within 10%
    of the fastest count as equal and the faster encoder goes first; then the rest."""
    small = [
        r
        for r in rows
        if all(r[f"{n}_size"] <= MAX_SIZE for n in sets) and r["enc_mb_s"] >= MIN_ENCODE_MB_S
    ]
    rest = [r for r in rows if not any(r is q for q in small)]
    top = max((r["dec_mb_s"] for r in small), default=0.0)

    def key(r: dict[str, Any]) -> tuple[int, float]:
        return (0, -r["enc_mb_s"]) if r["dec_mb_s"] >= 0.9 * top else (1, -r["dec_mb_s"])

    return sorted(small, key=key) + sorted(rest, key=lambda r: -r["dec_mb_s"])


def section_codecs(
    sets: dict[str, dict[str, Any]], work: Path, count: int, n_cases: dict[str, int]
) -> dict[str, Any]:
    """Codecs (64^3 chunks): store size vs .nii.gz on the first ``n_cases`` cases of each set,
    encode/decode speed on the CT images; then chunk sizes for the chosen codec: CT patch reads
    per CPU-second. Rule for the chunk: the largest within 10% of the cheapest reads (fewer,
    larger objects suit object stores)."""
    from fastseg.store import StorageOptions

    subsets = {name: sorted(ds["shapes"])[: n_cases[name]] for name, ds in sets.items()}
    rates = codec_rates(image_blocks(sets["ct"]["store"], subsets["ct"]), CODECS)
    rows = []
    for codec in CODECS:
        storage = StorageOptions(cname=codec[0], clevel=codec[1], shuffle=codec[2])
        row: dict[str, Any] = {"codec": f"{codec[0]}-{codec[1]}-{codec[2]}"}
        for name, ds in sets.items():
            dst = work / f"sweep-{name}.zarr"
            shutil.rmtree(dst, ignore_errors=True)
            copy_store(ds["store"], dst, storage, subsets[name])
            row[f"{name}_size"] = dir_bytes(dst) / case_nii_bytes(ds["src"], subsets[name])
            shutil.rmtree(dst)
        row["enc_mb_s"], row["dec_mb_s"] = rates[codec]
        row["cname"], row["clevel"], row["shuffle"] = codec
        rows.append(row)
        shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
        print("  " + json.dumps(shown), flush=True)
    order = ranked(rows, sets)
    chosen = order[0]
    ct = sets["ct"]
    stores = {}
    for chunk in CHUNKS:
        storage = StorageOptions(chunks=(chunk,) * 3, cname=chosen["cname"],
                                 clevel=chosen["clevel"], shuffle=chosen["shuffle"])  # fmt: skip
        dst = work / f"sweep-chunk-{chunk}.zarr"
        shutil.rmtree(dst, ignore_errors=True)
        copy_store(ct["store"], dst, storage, subsets["ct"])
        stores[str(chunk)] = ("fastseg", {"store": str(dst)})
    shapes = {c: ct["shapes"][c] for c in subsets["ct"]}
    reads = cpu_rates(stores, shapes, ct["patch"], count)
    for _, paths in stores.values():
        shutil.rmtree(paths["store"])
    top = max(reads.values())
    chunk = max(int(c) for c, v in reads.items() if v >= 0.9 * top)
    print(
        "  CT 128^3 patches per CPU-s by chunk size: "
        + ", ".join(f"{c}^3 {v:.1f}" for c, v in reads.items()),
        flush=True,
    )
    print(f"  chosen by the rules: {chosen['codec']}, chunks {chunk}^3", flush=True)
    return {"codecs": order, "chunk_reads_cpu_s": reads, "chosen": [chosen["codec"], chunk]}


LABEL_CODECS = [("zstd", 1), ("zstd", 3), ("zstd", 5), ("lz4", 1), ("lz4hc", 5), ("lz4hc", 9)]


def section_label_codecs(
    sets: dict[str, dict[str, Any]], n_cases: dict[str, int]
) -> list[dict[str, Any]]:
    """Label maps alone (64^3 chunks, all-zero chunks skipped as the store does): size relative
    to the label .nii.gz files, encode and decode MB per CPU-second. Rule: the fastest decoder
    whose labels (both sets together) are at most MAX_SIZE of the .nii.gz labels and that
    encodes at >= MIN_ENCODE_MB_S."""
    import numcodecs
    from numcodecs import blosc

    from fastseg.store import Store

    blocks: list[np.ndarray] = []
    nii = 0
    for name, ds in sets.items():
        store = Store.open(ds["store"])
        for c in sorted(ds["shapes"])[: n_cases[name]]:
            nii += (ds["src"] / "labelsTr" / f"{c}.nii.gz").stat().st_size
            lab = store[c].label()
            for z in range(0, lab.shape[0], 64):
                for y in range(0, lab.shape[1], 64):
                    for x in range(0, lab.shape[2], 64):
                        block = np.ascontiguousarray(lab[z : z + 64, y : y + 64, x : x + 64])
                        if block.any():
                            blocks.append(block)
    raw = sum(b.nbytes for b in blocks)
    out = np.empty(max(b.nbytes for b in blocks), dtype=np.uint8)
    rows = []
    for cname, clevel in LABEL_CODECS:
        codec = numcodecs.Blosc(cname=cname, clevel=clevel, shuffle=1)
        t0 = time.process_time()
        encoded = [codec.encode(b) for b in blocks]
        enc = raw / 1e6 / (time.process_time() - t0)
        best = math.inf
        for _ in range(3):
            t0 = time.process_time()
            for e, b in zip(encoded, blocks, strict=True):
                blosc.decompress(e, out[: b.nbytes])
            best = min(best, time.process_time() - t0)
        row = {
            "label_codec": f"{cname}-{clevel}",
            "size": sum(len(e) for e in encoded) / nii,
            "enc_mb_cpu_s": enc,
            "dec_mb_cpu_s": raw / 1e6 / best,
        }
        rows.append(row)
        print(
            "  "
            + json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
            flush=True,
        )
    ok = [r for r in rows if r["size"] <= MAX_SIZE and r["enc_mb_cpu_s"] >= MIN_ENCODE_MB_S]
    best_row = max(ok or rows, key=lambda r: r["dec_mb_cpu_s"])
    print(f"  chosen by the rule: labels {best_row['label_codec']}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="20 CT volumes of 300x512x512")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--skip-codecs", action="store_true", help="skip the codec sweep")
    parser.add_argument("--repeats", type=int, default=2, help="best of N read measurements")
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument("--workdir", type=Path, help="keep the data here (default: a temp dir)")
    args = parser.parse_args()

    from fastseg.store import Store, convert

    if args.full:
        n_ct, ct_shape, hippo_limit, count = 20, (300, 512, 512), None, 40
    elif args.quick:
        n_ct, ct_shape, hippo_limit, count = 2, (130, 160, 160), 20, 10
    else:
        n_ct, ct_shape, hippo_limit, count = 4, (160, 384, 384), None, 30
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_store_"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"work dir {work}; CT {n_ct} x {ct_shape} int16; hippocampus {hippo_limit or 'all'} cases",
        flush=True,
    )
    results: dict[str, Any] = {
        "config": {"n_ct": n_ct, "ct_shape": ct_shape, "cpus": os.cpu_count()}
    }

    sets: dict[str, dict[str, Any]] = {}
    if not (work / "ct_src").exists():
        t0 = time.perf_counter()
        make_ct_dataset(work / "ct_src", n_ct, ct_shape)
        print(f"synthetic CT written in {time.perf_counter() - t0:.1f} s", flush=True)
    if (SHARED / "hippocampus").is_dir():
        if not (work / "hippo_src").exists():
            make_hippo_dataset(work / "hippo_src", hippo_limit)
        sets["hippo"] = {"src": work / "hippo_src", "patch": (32, 48, 32)}
    else:
        print(f"no hippocampus data at {SHARED}; CT only", flush=True)
    sets = {"ct": {"src": work / "ct_src", "patch": (128, 128, 128)}, **sets}

    print("\n## conversion (default codec, 2 workers)", flush=True)
    for name, ds in sets.items():
        dst = work / f"{name}.zarr"
        shutil.rmtree(dst, ignore_errors=True)
        report = convert(ds["src"], dst, workers=2, progress=False)
        assert report.ok, report.failed
        ds["store"] = dst
        ds["nii_bytes"] = nii_bytes(ds["src"])
        ds["voxel_bytes"] = voxel_bytes(ds["src"])
        store = Store.open(dst)
        ds["shapes"] = {c: store[c].shape for c in store.cases}
        row = {
            "cases": len(store.cases),
            "seconds": report.elapsed_s,
            "voxel_mb_s": ds["voxel_bytes"] / 1e6 / report.elapsed_s,
            "nii_mb_s": ds["nii_bytes"] / 1e6 / report.elapsed_s,
            "store_mb": dir_bytes(dst) / 1e6,
            "nii_mb": ds["nii_bytes"] / 1e6,
            "store_vs_nii": dir_bytes(dst) / ds["nii_bytes"],
        }
        results[f"convert_{name}"] = row
        print(f"{name}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()), flush=True)
        again = convert(ds["src"], dst, workers=2, progress=False)
        print(
            f"{name}: re-run converted {len(again.converted)}, skipped {len(again.skipped)} in {again.elapsed_s:.2f} s",
            flush=True,
        )

    if not args.skip_codecs:
        print("\n## codec sweep (single process, reads/s)", flush=True)
        results["codecs"] = section_codecs(sets, work, count, {"ct": 2, "hippo": 40})
        print("\n## label codecs", flush=True)
        results["label_codecs"] = section_label_codecs(sets, {"ct": 4, "hippo": 208})

    print("\n## random patch reads/s", flush=True)
    for name, ds in sets.items():
        peers = work / f"{name}_peers"
        shutil.rmtree(peers, ignore_errors=True)
        write_peers(ds["store"], peers, ds["patch"])
        store = Store.open(ds["store"])
        norm0 = store.preprocessing["normalization"][0]
        norm = (norm0.get("lo"), norm0.get("hi"), norm0.get("mean"), norm0.get("std"))
        paths = {"store": str(ds["store"]), "npy": str(peers / "npy"), "b2nd": str(peers / "b2nd"),
                 "nii": str(ds["src"]), "norm": norm}  # fmt: skip
        sizes = {"store": dir_bytes(ds["store"]), "npy": dir_bytes(peers / "npy"),
                 "b2nd": dir_bytes(peers / "b2nd"), "nii.gz": ds["nii_bytes"]}  # fmt: skip
        results[f"sizes_{name}"] = {k: v / 1e6 for k, v in sizes.items()}
        print(
            f"{name} sizes MB: " + ", ".join(f"{k} {v / 1e6:.1f}" for k, v in sizes.items()),
            flush=True,
        )
        methods = ("fastseg", "fastseg-1thread", "zarr-python", "b2nd", "npy", "nii.gz")
        slow = ("nii.gz", "zarr-python")
        table = {m: [0.0, 0.0, 0.0, 0.0] for m in methods}  # wall 1p, wall 2p, cpu 1p, cpu 2p
        for _ in range(args.repeats):  # best of N, methods interleaved: the machine is shared
            for method in methods:
                n = count * 3 if name == "hippo" else count
                if method in slow and name == "ct":
                    n = max(2, count // 8)
                for p in (0, 1):
                    wall, cpu = patch_rate(method, paths, ds["shapes"], ds["patch"], n, p + 1)
                    table[method][p] = max(table[method][p], wall)
                    table[method][p + 2] = max(table[method][p + 2], cpu)
        print(f"  {name} method            wall/s 1 proc  2 procs   per CPU-s 1 proc  2 procs")
        for method, r in table.items():
            print(
                f"  {name} {method:16s} {r[0]:10.1f} {r[1]:8.1f}   {r[2]:16.1f} {r[3]:8.1f}",
                flush=True,
            )
        methods3 = {m: (m, paths) for m in ("fastseg", "b2nd", "npy")}
        cost = cpu_rates(methods3, ds["shapes"], ds["patch"], count)
        results[f"cpu_cost_{name}"] = cost
        print(
            f"  {name} one thread in-process, patches per CPU-s: "
            + ", ".join(f"{m} {v:.1f}" for m, v in cost.items())
            + f"; fastseg / b2nd {cost['fastseg'] / cost['b2nd']:.2f}x",
            flush=True,
        )
        for p in (0, 1):
            wall = table["fastseg"][p] / table["b2nd"][p]
            cpu = table["fastseg-1thread"][p + 2] / table["b2nd"][p + 2]
            print(
                f"  {name} fastseg / b2nd, {p + 1} proc: wall {wall:.2f}x, per CPU-s (1 thread) {cpu:.2f}x",
                flush=True,
            )
        results[f"reads_{name}"] = table
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
