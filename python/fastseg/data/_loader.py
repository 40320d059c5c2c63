"""PatchLoader: worker processes fill a ring of shared-memory batch slots; the main process
delivers batches in order k = 0, 1, 2, ... — on the CPU lending the slot's image (no copy) and
copying the label into a reused buffer, to a GPU through pinned memory and a side CUDA stream;
batch k depends on (seed, rank, k) only."""

from __future__ import annotations

import abc
import math
import multiprocessing as mp
import os
import queue
import statistics
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.shared_memory import SharedMemory
from typing import Any, TypeVar

import numpy as np

from fastseg.data._arguments import check_int, check_rank, rank_cases, torch_device
from fastseg.data._produce import BatchMaker, BatchSpec, make_pipeline, slot_label_dtype
from fastseg.data._sampler import int3
from fastseg.data._worker import ring_bytes, slot_views, worker_main
from fastseg.errors import FastsegError, InputError

STAGES = ("read_s", "assemble_s", "augment_s", "wait_s", "copy_s")
_SPATIAL = ("affine", "elastic")


class WorkerError(FastsegError, RuntimeError):
    """A loader worker failed; the message names the case and carries the worker's traceback."""


@dataclass
class Batch:
    """One training batch: ``image`` float32 ``(N, C, z, y, x)``, ``label`` int64 ``(N, z, y, x)``
    (torch tensors on the loader's device), ``cases`` (the case id of each sample), ``index`` (k)
    and ``timings`` (seconds, this batch): read_s, assemble_s, augment_s (where the augmentation
    ran), wait_s (main thread blocked waiting for the batch), copy_s (host to device)."""

    image: Any
    label: Any
    cases: list[str]
    index: int
    timings: dict[str, float] = field(default_factory=dict)


class _Lent:
    """Objects lent out until a holder array dies. The weak-reference callback that notices it
    is a bare ``list.append`` (no Python code runs at collection time, so a Ctrl-C can never be
    raised, and swallowed, inside it); ``collect`` hands back what came free since."""

    def __init__(self) -> None:
        # keyed by id: a weak reference hashes like its referent, and arrays are unhashable
        self._out: dict[int, tuple[weakref.ref[np.ndarray], Any]] = {}
        self._dead: list[weakref.ref[np.ndarray]] = []

    def __len__(self) -> int:
        return len(self._out) - len(self._dead)

    def lend(self, holder: np.ndarray, item: Any) -> None:
        ref = weakref.ref(holder, self._dead.append)
        self._out[id(ref)] = (ref, item)

    def collect(self) -> list[Any]:
        items = []
        while self._dead:
            items.append(self._out.pop(id(self._dead.pop()))[1])
        return items


class _HostBuffers:
    """Reusable host arrays of one shape and dtype for batches delivered on the CPU: copying a
    batch out of its ring slot writes into warm memory instead of faulting in fresh pages. An
    array returns to the pool when the last tensor (or view) over it is gone; while all ``size``
    are lent out, copies go to fresh arrays."""

    def __init__(self, shape: tuple[int, ...], dtype: Any, size: int) -> None:
        self.shape, self.dtype, self.size = shape, np.dtype(dtype), size
        self.made = 0
        self.free: list[np.ndarray] = []
        self.lent = _Lent()

    def copy(self, source: np.ndarray) -> Any:
        """A CPU tensor holding ``source`` converted to the pool's dtype."""
        import torch

        self.free.extend(self.lent.collect())
        if self.free:
            buffer = self.free.pop()
        elif self.made < self.size:
            self.made += 1
            buffer = np.empty(self.shape, self.dtype)
        else:  # the consumer holds every pooled array
            return torch.from_numpy(source.astype(self.dtype))
        np.copyto(buffer, source)
        holder = buffer.view()  # torch.from_numpy keeps it alive as long as any tensor over it
        self.lent.lend(holder, buffer)
        return torch.from_numpy(holder)


class _SlotLender:
    """Lends ring slots' images to the consumer without a copy (Linux, where the ring is a file
    under /dev/shm): each is a view through a second mapping of the shared memory that lives as
    long as any view of it, so closing the loader never invalidates a batch. A lent slot goes back
    to the workers (``returned()``) once every tensor over its image is gone."""

    def __init__(self, mapping: Any, spec: BatchSpec, slots: int) -> None:
        self.images = slot_views(mapping, spec, slots)[0]
        self.lent = _Lent()

    @classmethod
    def attach(cls, shm_name: str, size: int, spec: BatchSpec, slots: int) -> _SlotLender | None:
        """A lender over the shared memory ``shm_name``, or None where it is not a /dev/shm file."""
        import mmap

        path = os.path.join("/dev/shm", shm_name.lstrip("/"))
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return None
        try:
            mapping = mmap.mmap(fd, size)
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        return cls(mapping, spec, slots)

    def lend(self, slot: int) -> Any:
        """The image of ``slot`` as a CPU tensor, without a copy."""
        import torch

        holder = self.images[slot].view()
        self.lent.lend(holder, slot)
        return torch.from_numpy(holder)

    def returned(self) -> list[int]:
        """The slots whose images are no longer used."""
        return self.lent.collect()


def _resolve_augmentation(augmentation: Any, patch: tuple[int, int, int]) -> dict[str, Any] | None:
    """A Pipeline config (``to_config()`` form) cropping to ``patch``, or None."""
    from fastseg.augment import Pipeline, default_config

    if augmentation is None:
        return None
    if isinstance(augmentation, str):
        if augmentation != "default":
            raise InputError(
                f"augmentation: expected None, 'default', a list of steps or a Pipeline, "
                f"got {augmentation!r}"
            )
        pipeline = Pipeline(default_config(), patch_size=patch)
    elif isinstance(augmentation, Pipeline):
        config = augmentation.to_config()
        config["patch_size"] = patch
        pipeline = make_pipeline(config)
    elif isinstance(augmentation, Sequence):
        pipeline = Pipeline(list(augmentation), patch_size=patch)
    else:
        raise InputError(
            f"augmentation: expected None, 'default', a list of steps or a Pipeline, "
            f"got {type(augmentation).__name__}"
        )
    return pipeline.to_config()


def _state_close(state: dict[str, Any]) -> None:
    """Stop the workers (politely, then terminate, then kill) and free the shared memory. Takes
    a plain dict so that a weakref finalizer can run it without the loader."""
    procs: list[Any] = state.pop("procs", [])
    tasks = state.pop("tasks", None)
    results = state.pop("results", None)
    if tasks is not None:
        for _ in procs:
            try:
                tasks.put_nowait(None)
            except Exception:  # pragma: no cover - a broken queue: terminate below
                break
    deadline = time.monotonic() + 2.0
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(1.0)
        if p.is_alive():  # pragma: no cover - a worker stuck in native code
            p.kill()
            p.join(1.0)
        if not p.is_alive():
            p.close()
    for q in (tasks, results):
        if q is not None:
            q.cancel_join_thread()
            q.close()
    state.pop("views", None)
    state.pop("lender", None)  # lent batches keep its mapping alive as long as they live
    shm = state.pop("shm", None)
    if shm is not None:
        try:
            shm.close()
        except BufferError:  # pragma: no cover - a view still alive; unlink frees it at exit
            pass
        shm.unlink()


class _DeviceCopier:
    """Host batch -> device tensors: through two pinned buffers, copied non_blocking on a side
    CUDA stream whose event the consumer's current stream waits on (no host sync)."""

    def __init__(
        self,
        device: Any,
        spec_shapes: tuple[tuple[int, ...], tuple[int, ...]],
        pin: bool,
        label_dtype: str = "int64",
    ) -> None:
        import torch

        self.device = device
        self.stream = torch.cuda.Stream(device=device)
        img_shape, lab_shape = spec_shapes
        self.host = [
            (
                torch.empty(img_shape, dtype=torch.float32, pin_memory=pin),
                torch.from_numpy(np.empty(lab_shape, dtype=label_dtype)).pin_memory()
                if pin
                else torch.from_numpy(np.empty(lab_shape, dtype=label_dtype)),
            )
            for _ in range(2)
        ]
        self.events: list[Any] = [None, None]
        self.turn = 0

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[Any, Any]:
        import torch

        i, self.turn = self.turn, self.turn ^ 1
        if self.events[i] is not None:
            self.events[i].synchronize()  # the copy that last read this pinned buffer is done
        h_img, h_lab = self.host[i]
        h_img.numpy()[...] = image
        h_lab.numpy()[...] = label
        with torch.cuda.stream(self.stream):
            d_img = h_img.to(self.device, non_blocking=True)
            d_lab = h_lab.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self.stream)
        self.events[i] = event
        consumer = torch.cuda.current_stream(self.device)
        consumer.wait_event(event)
        d_img.record_stream(consumer)
        d_lab.record_stream(consumer)
        return d_img, d_lab.long()  # widened on the device, on the consumer's stream


_Stream = TypeVar("_Stream", bound="BatchStream")


class BatchStream(abc.ABC):
    """What the loaders share: ``batches`` batches from :meth:`next_batch` in order (endless
    when None) as an iterator, and a context manager that closes the loader on exit."""

    batches: int | None

    @abc.abstractmethod
    def next_batch(self) -> Batch:
        """The next batch of the stream."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the workers; idempotent."""

    def __enter__(self: _Stream) -> _Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Batch]:
        count = 0
        while self.batches is None or count < self.batches:
            yield self.next_batch()
            count += 1

    def __len__(self) -> int:
        if self.batches is None:
            raise TypeError(f"an endless {type(self).__name__} (batches=None) has no length")
        return self.batches


class PatchLoader(BatchStream):
    """Endless (or ``batches`` per iteration) stream of augmented training batches from a store.

    Parameters
    ----------
    store_or_url
        A :class:`fastseg.store.Store` or its URL.
    cases
        Case ids to sample from (default: all); sharded across ranks (``cases[rank::world_size]``
        when there are at least ``world_size`` cases).
    patch_size
        (z, y, x) voxels of each sample.
    batch_size, oversample_foreground
        N, and the fraction of each batch centred on foreground (see StorePatchSampler).
    augmentation
        None, ``"default"`` (nnU-Net's set, :func:`fastseg.augment.default_config`), a list of
        steps or a Pipeline; it resamples from a region ``margin`` larger per side and crops the
        patch. Runs in the workers (``augment_device="cpu"``, one thread each) or, after the
        copy, in the main process on the GPU (``"cuda"``).
    margin
        (z, y, x) voxels read around each patch for the spatial augmentation; default
        ``patch // 8`` when the augmentation has an affine or elastic step, else 0.
    workers, prefetch
        Worker processes (0: in-process) and the number of batches in flight (the shared-memory
        ring's slots; the bound of the queue).
    seed, rank, world_size
        Batch k's randomness is a function of (seed, rank, k) only.
    device, pin_memory
        Where batches are delivered; pinned host buffers by default when it is a GPU.
    batches
        Batches per ``for`` loop over the loader (None: endless). A second loop continues the
        stream (k keeps counting).
    cache_mb
        RAM per worker (MiB) for whole decoded cases: when this rank's cases all fit, each worker
        reads a case from the store once and cuts later regions from RAM (same values); else
        every region is read from the store (0: always).
    start
        The first batch index k to deliver (a resumed training run continues its stream).
    start_method
        multiprocessing start method for the workers (default ``"forkserver"`` where available).
    """

    def __init__(
        self,
        store_or_url: Any,
        cases: Sequence[str] | None = None,
        patch_size: Sequence[int] = (64, 64, 64),
        batch_size: int = 2,
        oversample_foreground: float = 0.33,
        augmentation: Any = None,
        augment_device: str = "cpu",
        workers: int = 2,
        prefetch: int = 4,
        seed: int = 0,
        device: Any = "cpu",
        pin_memory: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
        batches: int | None = None,
        margin: Sequence[int] | None = None,
        start_method: str | None = None,
        cache_mb: float = 256.0,
        start: int = 0,
    ) -> None:
        import torch

        from fastseg.store import Store

        store = store_or_url if isinstance(store_or_url, Store) else Store.open(store_or_url)
        patch = int3(patch_size, "patch_size", 1)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.workers = check_int(workers, "workers", 0)
        self.prefetch = check_int(prefetch, "prefetch", 1)
        self.seed = check_int(seed, "seed", 0)
        self.rank, self.world_size = check_rank(rank, world_size)
        self.batches = None if batches is None else check_int(batches, "batches", 1)
        if augment_device not in ("cpu", "cuda"):
            raise InputError(f"augment_device: expected 'cpu' or 'cuda', got {augment_device!r}")
        self.device = torch_device(device)
        cuda_ok = torch.cuda.is_available()
        if self.device.type == "cuda" and not cuda_ok:
            raise InputError(f"device: {device!r} asked for, but torch sees no CUDA device")
        if augment_device == "cuda" and (self.device.type != "cuda" or not cuda_ok):
            raise InputError(
                f"augment_device: 'cuda' needs device to be a CUDA device, got {self.device}"
            )
        if pin_memory is not None and not isinstance(pin_memory, bool):
            raise InputError(f"pin_memory: expected None or a bool, got {pin_memory!r}")
        if pin_memory and not cuda_ok:
            raise InputError("pin_memory: pinned host memory needs CUDA, and torch sees no device")
        self.pin_memory = (self.device.type == "cuda") if pin_memory is None else pin_memory
        if start_method is None:
            start_method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        if start_method not in mp.get_all_start_methods():
            raise InputError(
                f"start_method: expected one of {mp.get_all_start_methods()}, got {start_method!r}"
            )
        self.start_method = start_method

        mine, channels = rank_cases(store, cases, self.rank, self.world_size)

        config = _resolve_augmentation(augmentation, patch)
        spatial = config is not None and any(s["name"] in _SPATIAL for s in config["steps"])
        if margin is None:
            margin3 = (patch[0] // 8, patch[1] // 8, patch[2] // 8) if spatial else (0, 0, 0)
        else:
            margin3 = int3(margin, "margin", 0)
        if isinstance(cache_mb, bool) or not isinstance(cache_mb, int | float) or not cache_mb >= 0:
            raise InputError(f"cache_mb: expected a non-negative number of MiB, got {cache_mb!r}")
        self.augment_device = augment_device
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
            augmentation=config,
            augment_here=augment_device == "cpu",
            cache_bytes=int(cache_mb * 2**20),
            label_dtype=slot_label_dtype(store, mine),
        )
        # Validates oversample_foreground, the cases and the shapes once, here.
        self._maker = BatchMaker(self.spec, store)
        self.store = store
        self.cases = list(mine)
        self.patch_size = patch
        self._gpu_pipeline: Any = (
            make_pipeline(config) if config is not None and augment_device == "cuda" else None
        )
        self._k = check_int(start, "start", 0)  # next batch to deliver
        self._scheduled = self._k  # next batch to hand to a worker
        self._ready: dict[int, tuple[int, list[str], dict[str, float], list[Any] | None]] = {}
        self._state: dict[str, Any] = {}
        self._finalizer: Any = None
        self._copier: _DeviceCopier | None = None
        self._image_buffers = _HostBuffers(self.spec.image_shape, np.float32, 2)
        self._label_buffers = _HostBuffers(self.spec.label_shape, np.int64, 2)
        # CPU batches lend their ring slot's image (no copy) while at least two slots keep
        # cycling through the workers.
        self._lends_slots = self.device.type == "cpu" and not self.pin_memory and self.prefetch >= 3
        self._timings: list[dict[str, float]] = []
        self._started_at: float | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def _start(self) -> None:
        if self._state or self.workers == 0:
            return
        ctx: Any = mp.get_context(self.start_method)
        if self.start_method == "forkserver":
            ctx.set_forkserver_preload(["fastseg.data._worker"])
        shm = SharedMemory(create=True, size=max(1, ring_bytes(self.spec, self.prefetch)))
        state: dict[str, Any] = {"shm": shm, "procs": []}
        self._finalizer = weakref.finalize(self, _state_close, state)
        state["views"] = slot_views(shm.buf, self.spec, self.prefetch)
        if self._lends_slots:
            state["lender"] = _SlotLender.attach(shm.name, shm.size, self.spec, self.prefetch)
        state["tasks"] = ctx.Queue()
        state["results"] = ctx.Queue()
        for w in range(self.workers):
            p = ctx.Process(
                target=worker_main,
                args=(self.spec, shm.name, self.prefetch, state["tasks"], state["results"]),
                name=f"fastseg-loader-{w}",
                daemon=True,
            )
            p.start()
            state["procs"].append(p)
        self._state = state
        self._scheduled = self._k  # after a close, the stream resumes at the next undelivered k
        for slot in range(self.prefetch):
            self._schedule(slot)

    def _schedule(self, slot: int) -> None:
        self._state["tasks"].put((self._scheduled, slot))
        self._scheduled += 1

    def close(self) -> None:
        """Stop the workers and free the shared memory (idempotent)."""
        if self._finalizer is not None:
            self._finalizer()
        self._state = {}
        self._ready.clear()

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (empty before the first batch and after close)."""
        return [p.pid for p in self._state.get("procs", []) if p.is_alive()]

    # -- batches ---------------------------------------------------------------------------
    def plan(
        self, k: int
    ) -> tuple[int, list[tuple[str, tuple[int, int, int], tuple[int, int, int]]]]:
        """Batch ``k``'s augmentation seed and regions ``(case_id, start, size)`` (z, y, x): what
        any worker draws for it."""
        return self._maker.plan(check_int(k, "k", 0))

    def next_batch(self) -> Batch:
        """Batch k (k = 0, 1, 2, ... in order across loops)."""
        if self._started_at is None:
            self._started_at = time.perf_counter()
        k = self._k
        if self.workers == 0:
            image = np.empty(self.spec.image_shape, dtype=np.float32)
            label = np.empty(self.spec.label_shape, dtype=self.spec.label_dtype)
            t0 = time.perf_counter()
            try:
                cases, timings, params = self._maker.make(k, image, label)
            except Exception as exc:
                raise WorkerError(
                    f"batch {k}: reading or augmenting case {self._maker.current_case!r} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            timings["wait_s"] = time.perf_counter() - t0
            batch = self._deliver(k, image, label, cases, timings, params, owned=True)
        else:
            self._start()
            lender: _SlotLender | None = self._state.get("lender")
            if lender is not None:
                for slot in lender.returned():
                    self._schedule(slot)
            t0 = time.perf_counter()
            while k not in self._ready:
                self._receive()
            slot, cases, timings, params = self._ready.pop(k)
            timings["wait_s"] = time.perf_counter() - t0
            images, labels = self._state["views"]
            if lender is not None and len(lender.lent) < self.prefetch - 2:
                t0 = time.perf_counter()
                image = lender.lend(slot)
                label = self._label_buffers.copy(labels[slot])
                timings["copy_s"] = time.perf_counter() - t0
                batch = Batch(image=image, label=label, cases=cases, index=k, timings=timings)
            else:
                batch = self._deliver(k, images[slot], labels[slot], cases, timings, params)
                self._schedule(slot)
        self._k += 1
        self._timings.append(batch.timings)
        return batch

    def _receive(self) -> None:
        try:
            msg = self._state["results"].get(timeout=0.2)
        except queue.Empty:
            dead = [p for p in self._state["procs"] if not p.is_alive()]
            if dead:
                codes = ", ".join(f"{p.name} (exit code {p.exitcode})" for p in dead)
                self.close()
                raise WorkerError(
                    f"loader worker died: {codes}; with the {self.start_method!r} start method a "
                    "worker that dies at start-up often means the main script lacks an "
                    "`if __name__ == '__main__':` guard"
                ) from None
            return
        if msg[0] == "error":
            _, k, case, what, tb = msg
            self.close()
            raise WorkerError(
                f"batch {k}: reading or augmenting case {case!r} failed in a worker: {what}\n"
                f"worker traceback:\n{tb}"
            )
        _, k, slot, cases, timings, params = msg
        self._ready[k] = (slot, cases, timings, params)

    def _deliver(
        self,
        k: int,
        image: np.ndarray,
        label: np.ndarray,
        cases: list[str],
        timings: dict[str, float],
        params: list[Any] | None,
        owned: bool = False,
    ) -> Batch:
        """The batch from host arrays ``image``/``label``: views of a ring slot, or arrays of
        its own when ``owned``; ``params``: the GPU augmentation's, drawn by the producer."""

        t0 = time.perf_counter()
        if self.device.type == "cuda":
            if self._copier is None:
                self._copier = _DeviceCopier(
                    self.device,
                    (self.spec.image_shape, self.spec.label_shape),
                    self.pin_memory,
                    self.spec.label_dtype,
                )
            img_t, lab_t = self._copier(image, label)
        else:
            img_t, lab_t = self._host_tensors(image, label, owned)
            if self.pin_memory:
                img_t, lab_t = img_t.pin_memory(), lab_t.pin_memory()
        timings["copy_s"] = time.perf_counter() - t0
        if self._gpu_pipeline is not None:
            img_t, lab_t, timings["augment_s"] = self._augment_on_device(
                k, img_t, lab_t, cases, params
            )
        return Batch(image=img_t, label=lab_t, cases=cases, index=k, timings=timings)

    def _host_tensors(self, image: np.ndarray, label: np.ndarray, owned: bool) -> tuple[Any, Any]:
        """CPU tensors of a batch: copies of a ring slot (which is reused) in pooled buffers, or
        the arrays themselves when ``owned``. NumPy widens the labels: several times faster than
        torch's uint8 -> int64 conversion on a CPU shared with the training step."""
        import torch

        if owned:
            return torch.from_numpy(image), torch.from_numpy(label.astype(np.int64))
        return self._image_buffers.copy(image), self._label_buffers.copy(label)

    def _augment_on_device(
        self, k: int, image: Any, label: Any, cases: list[str], params: list[Any] | None
    ) -> tuple[Any, Any, float]:
        """The Pipeline on the CUDA batch (current stream) with the parameters of batch k's
        seed (drawn by the producer; drawn here when None); host time of the launches in
        seconds."""
        import torch

        t0 = time.perf_counter()
        pipeline = self._gpu_pipeline
        if params is None:
            params = pipeline.draw(self._maker.plan(k)[0], tuple(image.shape))
        spacings = {self.store[c].spacing for c in cases}
        if len(spacings) == 1:  # one launch for the batch (per-sample parameters all the same)
            out, lab = pipeline.apply(image, label, params, spacing=spacings.pop())
            return out, lab, time.perf_counter() - t0
        out_img, out_lab = [], []
        for i, case_id in enumerate(cases):
            a, b = pipeline.apply(
                image[i], label[i], params[i], spacing=self.store[case_id].spacing
            )
            out_img.append(a)
            out_lab.append(b)
        return torch.stack(out_img), torch.stack(out_lab), time.perf_counter() - t0

    # -- statistics ------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Per-stage median and mean seconds per batch over the batches so far (``<stage>_median``,
        ``<stage>_mean``), ``batches``, ``batches_per_s`` (since the first request),
        ``wait_fraction`` (share of that time the consumer was blocked waiting), and the setting:
        ``workers``, ``augment_device``, ``patch_size``, ``batch_size``."""
        out: dict[str, Any] = {
            "batches": len(self._timings),
            "workers": self.workers,
            "augment_device": self.augment_device,
            "patch_size": self.patch_size,
            "batch_size": self.batch_size,
        }
        for stage in STAGES:
            values = [t.get(stage, 0.0) for t in self._timings]
            out[f"{stage}_median"] = statistics.median(values) if values else math.nan
            out[f"{stage}_mean"] = statistics.fmean(values) if values else math.nan
        elapsed = time.perf_counter() - self._started_at if self._started_at is not None else 0.0
        n = len(self._timings)
        out["elapsed_s"] = elapsed
        out["batches_per_s"] = n / elapsed if n and elapsed > 0 else math.nan
        waited = sum(t.get("wait_s", 0.0) for t in self._timings)
        out["wait_fraction"] = waited / elapsed if n and elapsed > 0 else math.nan
        return out
