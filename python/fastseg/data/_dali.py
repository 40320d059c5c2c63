"""DaliPatchLoader: the store's patches through an NVIDIA DALI pipeline (flips, centre crop,
intensity augmentation), on the CPU (``device_id=None``, no GPU or driver needed) or a GPU.

Regions come from the native loader's planner (:class:`fastseg.data._produce.BatchMaker`), so
batch k of a DaliPatchLoader reads the same regions as batch k of a PatchLoader with the same
(seed, rank). Data stay channel-first end to end: DALI's flip, crop and reductions accept the
``CDHW`` layout (the label travels as ``(1, z, y, x)``), so no transposes are needed;
``horizontal`` flips x (the last axis), ``vertical`` y and ``depthwise`` z.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastseg.data._arguments import check_int, check_rank, rank_cases, torch_device
from fastseg.data._loader import Batch, BatchStream, PatchLoader, WorkerError
from fastseg.data._produce import BatchMaker, BatchSpec
from fastseg.data._sampler import int3
from fastseg.errors import InputError


def _dali() -> Any:
    """``nvidia.dali``, or an InputError saying how to install it."""
    try:
        import nvidia.dali as dali
    except ImportError as exc:
        raise InputError(
            "loader: 'dali' needs NVIDIA DALI: pip install 'fastseg[dali]' "
            f"(nvidia-dali-cuda130) ({exc})"
        ) from exc
    return dali


def _range(value: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected (low, high), got {value!r}") from None
    if not lo <= hi:
        raise InputError(f"{name}: expected low <= high, got {value!r}")
    return lo, hi


def _prob(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise InputError(f"{name}: expected a probability in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class DaliAugmentation:
    """The DALI augmentation, each step drawn per sample with its probability ``*_p`` (defaults
    follow nnU-Net's intensity set):

    - flip: each of ``flip_axes`` (0 z, 1 y, 2 x) flipped with ``flip_p`` (the same flags for
      image and label);
    - brightness: ``image * m``, m ~ U(``brightness_range``);
    - contrast: ``(image - mean) * f + mean`` per channel, f ~ U(``contrast_range``);
    - gamma: per channel, rescaled to [0, 1] by its min and max, raised to g ~
      U(``gamma_range``), scaled back;
    - noise: additive Gaussian noise, standard deviation ~ U(``noise_std``) (normalised units).
    """

    flip_p: float = 0.5
    flip_axes: tuple[int, ...] = (0, 1, 2)
    brightness_p: float = 0.15
    brightness_range: tuple[float, float] = (0.75, 1.25)
    contrast_p: float = 0.15
    contrast_range: tuple[float, float] = (0.75, 1.25)
    gamma_p: float = 0.3
    gamma_range: tuple[float, float] = (0.7, 1.5)
    noise_p: float = 0.1
    noise_std: tuple[float, float] = (0.0, 0.3)

    def __post_init__(self) -> None:
        for name in ("flip_p", "brightness_p", "contrast_p", "gamma_p", "noise_p"):
            _prob(getattr(self, name), name)
        axes = self.flip_axes
        if not all(a in (0, 1, 2) for a in axes) or len(set(axes)) != len(axes):
            raise InputError(f"flip_axes: expected distinct axes among 0, 1, 2, got {axes!r}")
        object.__setattr__(self, "flip_axes", tuple(int(a) for a in axes))
        for name in ("brightness_range", "contrast_range", "gamma_range", "noise_std"):
            object.__setattr__(self, name, _range(getattr(self, name), name))
        if self.gamma_range[0] <= 0:
            raise InputError(f"gamma_range: expected positive exponents, got {self.gamma_range}")
        if self.noise_std[0] < 0:
            raise InputError(f"noise_std: expected non-negative values, got {self.noise_std}")


def _resolve(augmentation: Any) -> DaliAugmentation | None:
    if augmentation is True:
        return DaliAugmentation()
    if augmentation is False or augmentation is None:
        return None
    if isinstance(augmentation, DaliAugmentation):
        return augmentation
    if isinstance(augmentation, dict):
        try:
            return DaliAugmentation(**augmentation)
        except TypeError as exc:
            raise InputError(f"augmentation: {exc}") from None
    raise InputError(
        f"augmentation: expected a bool, a DaliAugmentation or a dict of its fields, "
        f"got {type(augmentation).__name__}"
    )


class _Source:
    """The external source: batch ``info.iteration`` (= k) of ``spec`` as lists of per-sample
    arrays: images ``(C, z, y, x)`` float32, labels ``(1, z, y, x)`` int32, each sample's case index
    ``(1,)`` int32 and its read time ``(1,)`` float32 seconds. Picklable (runs in DALI's worker
    processes when ``workers > 0``); opens the store lazily."""

    def __init__(self, spec: BatchSpec) -> None:
        self.spec = spec
        self._maker: BatchMaker | None = None
        self._index = {c: i for i, c in enumerate(spec.cases)}

    def __getstate__(self) -> dict[str, Any]:
        return {"spec": self.spec, "_maker": None, "_index": self._index}

    def __call__(self, info: Any) -> tuple[list[np.ndarray], ...]:
        if self._maker is None:
            self._maker = BatchMaker(self.spec)
        _, regions = self._maker.plan(int(info.iteration))
        images, labels, index, read_s = [], [], [], []
        for case_id, start, size in regions:
            t0 = time.perf_counter()
            image, label = self._maker.store[case_id].read_patch(start, size)
            if label is None:
                raise InputError(f"cases: case {case_id!r} has no label map; training needs one")
            images.append(image)
            labels.append(label.astype(np.int32)[None])
            index.append(np.array([self._index[case_id]], dtype=np.int32))
            read_s.append(np.array([time.perf_counter() - t0], dtype=np.float32))
        return images, labels, index, read_s


def _uniform(fn: Any, bounds: tuple[float, float]) -> Any:
    """A per-sample value ~ U(bounds), or the constant when the range is one point (DALI's
    uniform needs low < high)."""
    if bounds[0] == bounds[1]:
        return bounds[0]
    return fn.random.uniform(range=bounds)


def _happens(fn: Any, p: float) -> Any:
    """A per-sample boolean, true with probability ``p`` (a DALI conditional splits the batch on
    it, so a step runs only on the samples it applies to)."""
    return fn.random.coin_flip(probability=p, dtype=_dali().types.BOOL)


def _augment(image: Any, label: Any, aug: DaliAugmentation, gpu: bool) -> tuple[Any, Any]:
    """Flips (image and label) then the intensity steps (image); traced by DALI's AutoGraph
    (``enable_conditionals``): ``if`` on a DataNode is a per-sample branch."""
    dali = _dali()
    fn, dmath = dali.fn, dali.math
    axes = [1, 2, 3]  # spatial axes of CDHW: reductions are per channel

    def scalar(value: Any) -> Any:
        return value.gpu() if gpu and isinstance(value, dali.data_node.DataNode) else value

    if aug.flip_p > 0 and aug.flip_axes:
        names = ("depthwise", "vertical", "horizontal")
        flags = {names[a]: fn.random.coin_flip(probability=aug.flip_p) for a in aug.flip_axes}
        image = fn.flip(image, **flags)
        label = fn.flip(label, **flags)
    if aug.brightness_p > 0:
        if _happens(fn, aug.brightness_p):
            image = image * scalar(_uniform(fn, aug.brightness_range))
    if aug.contrast_p > 0:
        if _happens(fn, aug.contrast_p):
            mean = fn.reductions.mean(image, axes=axes, keep_dims=True)
            image = (image - mean) * scalar(_uniform(fn, aug.contrast_range)) + mean
    if aug.gamma_p > 0:
        if _happens(fn, aug.gamma_p):
            lo = fn.reductions.min(image, axes=axes, keep_dims=True)
            span = fn.reductions.max(image, axes=axes, keep_dims=True) - lo + 1e-7
            unit = dmath.max((image - lo) / span, 0.0)
            image = dmath.pow(unit, scalar(_uniform(fn, aug.gamma_range))) * span + lo
    if aug.noise_p > 0:
        if _happens(fn, aug.noise_p):
            image = fn.noise.gaussian(image, stddev=_uniform(fn, aug.noise_std))
    return image, label


def _graph(spec: BatchSpec, aug: DaliAugmentation | None, gpu: bool, workers: int) -> Any:
    """The DALI graph (traced by ``pipeline_def``): image, label, case index, read_s."""
    dali = _dali()
    fn = dali.fn
    image, label, index, read_s = fn.external_source(
        source=_Source(spec),
        num_outputs=4,
        batch=True,
        batch_info=True,
        parallel=workers > 0,
        layout=["CDHW", "CDHW", "", ""],
        dtype=[dali.types.FLOAT, dali.types.INT32, dali.types.INT32, dali.types.FLOAT],
    )
    if gpu:
        image = image.gpu()
        label = label.gpu()
    if spec.margin != (0, 0, 0):  # the patch, centred in the region (the sampler's rule)
        d, h, w = spec.patch_size
        centre: dict[str, float] = {"crop_d": d, "crop_h": h, "crop_w": w}
        centre.update(crop_pos_z=0.5, crop_pos_y=0.5, crop_pos_x=0.5)
        image = fn.crop(image, **centre)
        label = fn.crop(label, **centre)
    if aug is not None:
        image, label = _augment(image, label, aug, gpu)
    return image, label, index, read_s


def _close_pipeline(pipe: Any) -> None:
    """Stop a pipeline's Python worker processes and its executor (DALI has no public close;
    these are what its own exit handler calls)."""
    pool = getattr(pipe, "_py_pool", None)
    if pool is not None:
        pool.close()
    pipe._shutdown()


class DaliPatchLoader(BatchStream):
    """Training batches from a store through a DALI pipeline; the same :class:`Batch` objects as
    :class:`fastseg.data.PatchLoader` (``image`` float32 ``(N, C, z, y, x)``, ``label`` int64
    ``(N, z, y, x)`` torch tensors on ``device``).

    Regions are those of PatchLoader with the same (seed, rank): the sampler's region (the patch
    plus ``margin`` voxels per side) is read by an ``external_source`` (in ``workers`` DALI worker
    processes, or in the pipeline's thread when 0), DALI crops the centred patch and, when
    ``augmentation`` is on, flips and intensity-augments it (:class:`DaliAugmentation`).
    ``device="cpu"`` runs the pipeline without a GPU (``device_id=None``); a CUDA device runs the
    operators on that GPU and delivers CUDA tensors. A failing read or operator raises
    :class:`fastseg.data.WorkerError` (and closes the loader). Randomness is a function of (seed,
    rank) and the batch index: the same seed gives the same batches.

    Timings per batch: ``read_s`` (store reads, summed over samples, in the source), ``wait_s``
    (the consumer blocked on the pipeline), ``copy_s`` (DALI output to torch); the DALI operators
    run overlapped in the pipeline's threads and are not timed separately (``augment_s`` 0).
    """

    def __init__(
        self,
        store_or_url: Any,
        cases: Sequence[str] | None = None,
        patch_size: Sequence[int] = (64, 64, 64),
        batch_size: int = 2,
        oversample_foreground: float = 0.33,
        seed: int = 0,
        device: Any = "cpu",
        workers: int = 2,
        batches: int | None = None,
        augmentation: Any = True,
        margin: Sequence[int] = (0, 0, 0),
        threads: int = 2,
        prefetch: int = 2,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        from fastseg.store import Store

        dali = _dali()
        store = store_or_url if isinstance(store_or_url, Store) else Store.open(store_or_url)
        patch = int3(patch_size, "patch_size", 1)
        margin3 = int3(margin, "margin", 0)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.workers = check_int(workers, "workers", 0)
        self.seed = check_int(seed, "seed", 0)
        threads = check_int(threads, "threads", 1)
        prefetch = check_int(prefetch, "prefetch", 1)
        self.rank, self.world_size = check_rank(rank, world_size)
        self.batches = None if batches is None else check_int(batches, "batches", 1)
        import torch

        self.device = torch_device(device)
        if self.device.type not in ("cpu", "cuda"):
            raise InputError(f"device: expected a CPU or CUDA device, got {device!r}")
        self.augmentation = _resolve(augmentation)
        mine, channels = rank_cases(store, cases, self.rank, self.world_size)
        self.spec = BatchSpec(
            url=str(store.url),
            cases=tuple(mine),
            patch_size=patch,
            margin=margin3,
            batch_size=self.batch_size,
            channels=channels,
            oversample_foreground=oversample_foreground,
            seed=self.seed,
            rank=self.rank,
        )
        BatchMaker(self.spec, store)  # validates oversample_foreground and the cases, here
        self.store = store
        self.cases = list(mine)
        self.patch_size = patch
        device_id = None
        if self.device.type == "cuda":
            if not torch.cuda.is_available():
                raise InputError(f"device: {device!r} asked for, but torch sees no CUDA device")
            if self.device.index is None:
                self.device = torch.device("cuda", torch.cuda.current_device())
            device_id = self.device.index
        self._pipe = dali.pipeline_def(_graph, enable_conditionals=True)(
            self.spec,
            self.augmentation,
            device_id is not None,
            self.workers,
            batch_size=self.batch_size,
            num_threads=threads,
            device_id=device_id,
            seed=(self.seed * 1_000_003 + self.rank) % (2**31 - 1),
            prefetch_queue_depth=prefetch,
            py_num_workers=max(self.workers, 1),
            py_start_method="spawn",
        )
        with warnings.catch_warnings():
            # DALI's spawn pool drops the parent's end of each worker's setup socket unclosed
            # (its __del__ closes it, with a ResourceWarning); nothing leaks.
            warnings.filterwarnings("ignore", "unclosed <socket", ResourceWarning)
            self._pipe.build()
        self._k = 0
        self._closed = False

    def close(self) -> None:
        """Stop DALI's worker processes and the pipeline (idempotent)."""
        if not self._closed:
            self._closed = True
            _close_pipeline(self._pipe)

    def __del__(self) -> None:
        if hasattr(self, "_closed"):
            self.close()

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of DALI's Python workers (empty when ``workers=0`` or closed)."""
        pool = getattr(self._pipe, "_py_pool", None)
        if pool is None or self._closed:
            return []
        return list(pool.pids())

    def next_batch(self) -> Batch:
        """Batch k (k = 0, 1, 2, ... in order across loops)."""
        import torch

        if self._closed:
            raise InputError("loader: this DaliPatchLoader is closed")
        t0 = time.perf_counter()
        try:
            image, label, index, read_s = self._pipe.run()
        except Exception as exc:  # DALI reports a failed source or operator as RuntimeError
            self.close()
            raise WorkerError(f"batch {self._k}: the DALI pipeline failed: {exc}") from exc
        t1 = time.perf_counter()
        if self.device.type == "cuda":
            from nvidia.dali.plugin.pytorch import feed_ndarray

            stream = torch.cuda.current_stream(self.device)
            img_t = torch.empty(self.spec.image_shape, dtype=torch.float32, device=self.device)
            lab32 = torch.empty(
                (self.batch_size, 1, *self.patch_size), dtype=torch.int32, device=self.device
            )
            feed_ndarray(image.as_tensor(), img_t, cuda_stream=stream)
            feed_ndarray(label.as_tensor(), lab32, cuda_stream=stream)
            lab_t = lab32[:, 0].long()
        else:
            img_t = torch.from_numpy(np.array(image.as_array(), dtype=np.float32))
            lab_t = torch.from_numpy(label.as_array()[:, 0].astype(np.int64))
        cases = [self.spec.cases[int(i)] for i in index.as_array().ravel()]
        timings = {
            "read_s": float(read_s.as_array().sum()),
            "assemble_s": 0.0,
            "augment_s": 0.0,
            "wait_s": t1 - t0,
            "copy_s": time.perf_counter() - t1,
        }
        batch = Batch(image=img_t, label=lab_t, cases=cases, index=self._k, timings=timings)
        self._k += 1
        return batch


def make_loader(kind: str = "native", **kwargs: Any) -> Any:
    """A training loader by name: ``"native"`` -> :class:`fastseg.data.PatchLoader`, ``"dali"``
    -> :class:`DaliPatchLoader`; ``kwargs`` go to its constructor."""
    if kind == "native":
        return PatchLoader(**kwargs)
    if kind == "dali":
        return DaliPatchLoader(**kwargs)
    raise InputError(f"loader: expected 'native' or 'dali', got {kind!r}")
