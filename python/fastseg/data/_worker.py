"""The worker process: takes (k, slot) tasks, writes batch k into a shared-memory slot, reports
back (timings, or the case id and traceback of a failure). Imported by the forkserver, so it stays
light (no torch)."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import traceback
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from fastseg.data._produce import BatchMaker, BatchSpec


def slot_views(buf: Any, spec: BatchSpec, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """The ring's arrays over one shared buffer: images ``(slots, N, C, z, y, x)`` float32 and
    labels ``(slots, N, z, y, x)`` of ``spec.label_dtype``."""
    img_shape = (slots, *spec.image_shape)
    lab_shape = (slots, *spec.label_shape)
    img_bytes = int(np.prod(img_shape)) * 4
    images = np.ndarray(img_shape, dtype=np.float32, buffer=buf, offset=0)
    labels = np.ndarray(lab_shape, dtype=spec.label_dtype, buffer=buf, offset=_align(img_bytes))
    return images, labels


def ring_bytes(spec: BatchSpec, slots: int) -> int:
    """Bytes of shared memory a ring of ``slots`` batches takes."""
    img_bytes = int(np.prod((slots, *spec.image_shape))) * 4
    itemsize = np.dtype(spec.label_dtype).itemsize
    return _align(img_bytes) + int(np.prod((slots, *spec.label_shape))) * itemsize


def _align(n: int) -> int:
    return (n + 63) // 64 * 64


def _parent_alive() -> bool:
    parent = mp.parent_process()
    return parent is None or parent.is_alive()


def worker_main(spec: BatchSpec, shm_name: str, slots: int, tasks: Any, results: Any) -> None:
    """Run tasks until a None task, or until the parent process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C and closes us
    os.environ["FASTSEG_READ_THREADS"] = "1"  # one worker, one core: no decode pool
    from fastseg import _native

    _native.set_num_threads(1)  # the augmentation kernels run single-threaded in a worker
    shm = SharedMemory(name=shm_name)
    images, labels = slot_views(shm.buf, spec, slots)
    maker: BatchMaker | None = None
    try:
        while True:
            try:
                task = tasks.get(timeout=0.5)
            except queue.Empty:
                if not _parent_alive():
                    return
                continue
            if task is None:
                return
            k, slot = task
            try:
                if maker is None:
                    maker = BatchMaker(spec)
                cases, timings, params = maker.make(k, images[slot], labels[slot])
                results.put(("ok", k, slot, cases, timings, params))
            except Exception as exc:
                case = None if maker is None else maker.current_case
                results.put(
                    ("error", k, case, f"{type(exc).__name__}: {exc}", traceback.format_exc())
                )
    finally:
        del images, labels
        shm.close()
