"""Batch k of a loader: its seed, its regions, the reads, the CPU augmentation; the same code runs
in a worker process and in-process (``workers=0``), so batch k depends only on (seed, rank, k)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastseg.data._sampler import StorePatchSampler
from fastseg.errors import InputError


@dataclass(frozen=True)
class BatchSpec:
    """Everything a producer needs, picklable (sent to worker processes).

    ``augmentation`` is a Pipeline config (``Pipeline.to_config()``) or None; ``augment_here``
    says whether this producer runs it (CPU augmentation) or leaves the raw region for the main
    process (CUDA augmentation). Sizes are (z, y, x) voxels."""

    url: str
    cases: tuple[str, ...]
    patch_size: tuple[int, int, int]
    margin: tuple[int, int, int]
    batch_size: int
    channels: int
    oversample_foreground: float
    seed: int
    rank: int
    augmentation: Mapping[str, Any] | None = None
    augment_here: bool = True
    cache_bytes: int = 0
    label_dtype: str = "int64"

    @property
    def region_size(self) -> tuple[int, int, int]:
        p, m = self.patch_size, self.margin
        return (p[0] + 2 * m[0], p[1] + 2 * m[1], p[2] + 2 * m[2])

    @property
    def output_size(self) -> tuple[int, int, int]:
        """Spatial size of what a producer writes: the patch, or the whole region when the
        augmentation (and its crop) runs later on the GPU."""
        if self.augmentation is not None and not self.augment_here:
            return self.region_size
        return self.patch_size

    @property
    def image_shape(self) -> tuple[int, ...]:
        return (self.batch_size, self.channels, *self.output_size)

    @property
    def label_shape(self) -> tuple[int, ...]:
        return (self.batch_size, *self.output_size)


def batch_rng(seed: int, rank: int, k: int) -> np.random.Generator:
    """The generator of batch ``k`` on ``rank``: a function of (seed, rank, k) only."""
    return np.random.default_rng(np.random.SeedSequence([seed, rank, k]))


def make_pipeline(config: Mapping[str, Any]) -> Any:
    """A Pipeline from ``Pipeline.to_config()`` output."""
    from fastseg.augment import Pipeline

    options = {k: v for k, v in config.items() if k != "steps"}
    return Pipeline(config["steps"], **options)


def centre_crop(margin: Sequence[int], patch: Sequence[int]) -> tuple[slice, slice, slice]:
    """The (z, y, x) slices of a patch centred in a region grown by ``margin`` per side."""
    return (
        slice(margin[0], margin[0] + patch[0]),
        slice(margin[1], margin[1] + patch[1]),
        slice(margin[2], margin[2] + patch[2]),
    )


def slot_label_dtype(store: Any, cases: Sequence[str]) -> str:
    """The label dtype batches travel in between processes: uint8 when every case's labels are
    one-byte unsigned (most datasets: 8x less to copy than int64), else int32; consumers get
    int64."""
    for c in cases:
        try:
            kind = np.dtype(store[c].attrs["source"]["label_dtype"])
        except (KeyError, TypeError):
            return "int32"
        if kind not in (np.dtype(np.uint8), np.dtype(np.bool_)):
            return "int32"
    return "uint8"


def _label_itemsize(case: Any) -> int:
    """Bytes per label voxel of a case as stored (8 when the store does not say)."""
    try:
        return int(np.dtype(case.attrs["source"]["label_dtype"]).itemsize)
    except (KeyError, TypeError):
        return 8


class CaseCache:
    """Whole cases (normalised image and label) held in RAM when all of ``cases`` fit in
    ``budget`` bytes, regions then cut with NumPy (padding as ``read_patch``: the case's
    normalised pad value, label 0); otherwise every region is read from the store."""

    def __init__(self, store: Any, cases: Sequence[str], budget: int) -> None:
        self.store = store
        need = 0
        for c in cases:
            case = store[c]
            z, y, x = case.shape
            need += z * y * x * (4 * case.channels + _label_itemsize(case))
        self.enabled = budget > 0 and need <= budget
        self._cases: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray]] = {}

    def fill(self, cases: Sequence[str]) -> None:
        """Load every case now (as MONAI's CacheDataset does before training), if enabled."""
        if self.enabled:
            for c in cases:
                self._held(c)

    def _held(self, case_id: str) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        held = self._cases.get(case_id)
        if held is None:
            case = self.store[case_id]
            pads = np.array(case.normalized_pad_values, dtype=np.float32)
            held = (case.image(), case.label(), pads)
            self._cases[case_id] = held
        return held

    def read(
        self, case_id: str, start: Sequence[int], size: Sequence[int]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``read_patch(start, size)`` of ``case_id``: image (C, z, y, x) float32, label (z, y, x)."""
        if not self.enabled:
            return self.store[case_id].read_patch(start, size)
        image, label, _ = self._held(case_id)
        out = np.empty((image.shape[0], *size), dtype=np.float32)
        out_label = None if label is None else np.empty(tuple(size), dtype=label.dtype)
        self.read_into(case_id, start, out, out_label)
        return out, out_label

    def read_into(
        self, case_id: str, start: Sequence[int], image_out: np.ndarray, label_out: Any
    ) -> None:
        """Write the region at ``start`` (z, y, x; may reach outside the case) of a held case into
        ``image_out`` (C, z, y, x) and ``label_out`` (z, y, x, or None), which may be views (a
        flipped view writes the region mirrored). Only when ``enabled``."""
        image, label, pads = self._held(case_id)
        size = image_out.shape[1:]
        shape = image.shape[1:]
        lo = [max(s, 0) for s in start]
        hi = [min(s + n, d) for s, n, d in zip(start, size, shape, strict=True)]
        src = tuple(slice(a, max(a, b)) for a, b in zip(lo, hi, strict=True))
        dst = tuple(slice(a - s, max(a, b) - s) for a, b, s in zip(lo, hi, start, strict=True))
        inside = all(a == s and b == s + n for a, b, s, n in zip(lo, hi, start, size, strict=True))
        if not inside:
            image_out[...] = pads.reshape(-1, 1, 1, 1)
        image_out[(slice(None), *dst)] = image[(slice(None), *src)]
        if label_out is not None:
            if label is None:
                raise InputError(f"cases: case {case_id!r} has no label map; training needs one")
            if not inside:
                label_out[...] = 0
            label_out[dst] = label[src]


class BatchMaker:
    """Fills batch ``k`` into preallocated arrays: image ``(N, C, z, y, x)`` float32 and label
    ``(N, z, y, x)`` (``spec.label_dtype``; ``spec.output_size`` spatially)."""

    def __init__(self, spec: BatchSpec, store: Any = None) -> None:
        from fastseg.store import Store

        self.spec = spec
        self.store = store if store is not None else Store.open(spec.url)
        self.sampler = StorePatchSampler(
            self.store,
            list(spec.cases),
            spec.patch_size,
            spec.oversample_foreground,
            spec.margin,
        )
        self.pipeline: Any = (
            make_pipeline(spec.augmentation)
            if spec.augmentation is not None and spec.augment_here
            else None
        )
        # augmentation on the GPU later: its parameters are drawn here, off the training process
        self.device_pipeline: Any = (
            make_pipeline(spec.augmentation)
            if spec.augmentation is not None and not spec.augment_here
            else None
        )
        self.cache = CaseCache(self.store, list(spec.cases), spec.cache_bytes)
        self._filled = False
        self.current_case: str | None = None

    @staticmethod
    def _flips_only(params: Any) -> bool:
        """Whether a sample's drawn spatial part is only flips (no rotation, scaling,
        translation or elastic field: most samples with nnU-Net's probabilities)."""
        sp = params.spatial
        return bool(
            sp.rotation == (0.0, 0.0, 0.0)
            and sp.scale == (1.0, 1.0, 1.0)
            and sp.translation == (0.0, 0.0, 0.0)
            and sp.elastic is None
        )

    def _cut_and_flip(
        self, image: np.ndarray, label: np.ndarray, params: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """The patch a flips-only resampling would produce, cut with NumPy: exactly the voxels
        the resampling reads (centre of the region, mirrored about the patch centre)."""
        crop = centre_crop(self.spec.margin, self.spec.patch_size)
        img, lab = image[(slice(None), *crop)], label[crop]
        for axis in range(3):
            if params.spatial.flip[axis]:
                img, lab = np.flip(img, axis + 1), np.flip(lab, axis)
        return img, lab

    def plan(
        self, k: int
    ) -> tuple[int, list[tuple[str, tuple[int, int, int], tuple[int, int, int]]]]:
        """Batch ``k``'s augmentation seed and regions."""
        rng = batch_rng(self.spec.seed, self.spec.rank, k)
        aug_seed = int(rng.integers(2**63 - 1))
        return aug_seed, self.sampler.draw(self.spec.batch_size, rng)

    def make(
        self, k: int, image_out: np.ndarray, label_out: np.ndarray
    ) -> tuple[list[str], dict[str, float], list[Any] | None]:
        """Write batch ``k`` into ``image_out``/``label_out``; returns its case ids, timings
        (read_s, assemble_s, augment_s in seconds) and, when the augmentation runs later on the
        GPU, its drawn per-sample parameters (``Pipeline.draw`` of the batch's seed; else None)."""
        spec = self.spec
        t_fill = 0.0
        if not self._filled:  # the first batch loads the cache (counted as its read time)
            t0 = time.perf_counter()
            self.cache.fill(spec.cases)
            self._filled = True
            t_fill = time.perf_counter() - t0
        aug_seed, regions = self.plan(k)
        read_s, assemble_s, augment_s = t_fill, 0.0, 0.0
        params = None
        if self.pipeline is not None:
            params = self.pipeline.draw(
                aug_seed, (spec.batch_size, spec.channels, *spec.region_size)
            )
        device_params = None
        if self.device_pipeline is not None:
            device_params = self.device_pipeline.draw(aug_seed, spec.image_shape)
        crop = centre_crop(spec.margin, spec.patch_size)
        # the patch's offset in its region: the output is the centred patch or the whole region
        offset = spec.margin if spec.output_size == spec.patch_size else (0, 0, 0)
        cases = []
        for i, (case_id, start, size) in enumerate(regions):
            self.current_case = case_id
            sample = None if params is None else params[i]
            t0 = time.perf_counter()
            if self.cache.enabled and (sample is None or self._flips_only(sample)):
                # straight from the held case into the batch; a flipped view mirrors the patch
                image_view, label_view = image_out[i], label_out[i]
                for axis in range(3):
                    if sample is not None and sample.spatial.flip[axis]:
                        image_view = np.flip(image_view, axis + 1)
                        label_view = np.flip(label_view, axis)
                patch_start = tuple(s + o for s, o in zip(start, offset, strict=True))
                self.cache.read_into(case_id, patch_start, image_view, label_view)
                read_s += time.perf_counter() - t0
                cases.append(case_id)
                continue
            image, label = self.cache.read(case_id, start, size)
            t1 = time.perf_counter()
            read_s += t1 - t0
            if label is None:
                raise InputError(f"cases: case {case_id!r} has no label map; training needs one")
            if sample is not None and self._flips_only(sample):
                image, label = self._cut_and_flip(image, label, sample)
            elif sample is not None:
                spacing = self.store[case_id].spacing
                image, label = self.pipeline.apply(
                    image, label, sample, spacing=spacing, intensity=False
                )
                t2 = time.perf_counter()
                augment_s += t2 - t1
                t1 = t2
            elif spec.output_size != size:
                image, label = image[(slice(None), *crop)], label[crop]
            image_out[i] = image
            label_out[i] = label
            assemble_s += time.perf_counter() - t1
            cases.append(case_id)
        if params is not None:
            # every sample's intensity steps at once (they act on each sample independently)
            self.current_case = None
            t0 = time.perf_counter()
            if image_out.flags.c_contiguous:
                self.pipeline.run_intensity(image_out, params)
            else:
                batch = np.ascontiguousarray(image_out)
                self.pipeline.run_intensity(batch, params)
                image_out[...] = batch
            augment_s += time.perf_counter() - t0
        self.current_case = None
        timings = {"read_s": read_s, "assemble_s": assemble_s, "augment_s": augment_s}
        return cases, timings, device_params
