"""Direct chunk reads of Zarr v3 arrays: fetch the chunks a region touches, Blosc-decode them in a
thread pool (numcodecs releases the GIL) and copy each straight into the output buffer.

Only the layout fastseg writes takes this path (regular chunk grid, default chunk keys, a
``bytes`` codec optionally followed by ``blosc``); anything else falls back to zarr-python.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastseg.errors import ImageReadError
from fastseg.store._backend import Backend

_INLINE_MAX_CHUNKS = 2


class ArrayInfo:
    """Shape, chunking, dtype and codecs of one stored array, parsed from its ``zarr.json``."""

    def __init__(self, key: str, meta: dict[str, Any]) -> None:
        self.key = key
        self.shape = tuple(int(v) for v in meta["shape"])
        grid = meta.get("chunk_grid", {})
        self.chunks = tuple(int(v) for v in grid.get("configuration", {}).get("chunk_shape", ()))
        try:
            self.dtype = np.dtype(str(meta["data_type"])).newbyteorder("<")
            known = True
        except TypeError:  # an extension data type: zarr-python reads it
            self.dtype, known = np.dtype(np.uint8), False
        fill = meta.get("fill_value", 0)
        self.fill_value = fill if isinstance(fill, int | float) else 0
        encoding = meta.get("chunk_key_encoding", {})
        self.separator = encoding.get("configuration", {}).get("separator", "/")
        codecs = meta.get("codecs", [])
        names = [c.get("name") for c in codecs]
        endian = codecs[0].get("configuration", {}).get("endian", "little") if codecs else None
        self.compressed = names == ["bytes", "blosc"]
        self.direct = (
            known
            and grid.get("name") == "regular"
            and encoding.get("name") == "default"
            and len(self.chunks) == len(self.shape)
            and names in (["bytes"], ["bytes", "blosc"])
            and (endian == "little" or self.dtype.itemsize == 1)
            and not meta.get("storage_transformers")
        )
        self.chunk_nbytes = int(np.prod(self.chunks)) * self.dtype.itemsize if self.chunks else 0

    def chunk_key(self, index: Sequence[int]) -> str:
        return f"{self.key}/c{self.separator}{self.separator.join(str(i) for i in index)}"


_local = threading.local()
_pool_lock = threading.Lock()
_pool_state: dict[str, Any] = {"pid": None, "pool": None}


def read_threads() -> int:
    """Threads decoding chunks per process: ``FASTSEG_READ_THREADS`` or min(8, CPUs)."""
    env = os.environ.get("FASTSEG_READ_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(8, os.cpu_count() or 1))


def _pool() -> ThreadPoolExecutor:
    with _pool_lock:
        if _pool_state["pid"] != os.getpid() or _pool_state["pool"] is None:
            _pool_state["pool"] = ThreadPoolExecutor(
                max_workers=read_threads(), thread_name_prefix="fastseg-chunks"
            )
            _pool_state["pid"] = os.getpid()
        pool: ThreadPoolExecutor = _pool_state["pool"]
        return pool


def _scratch(nbytes: int) -> np.ndarray:
    buffers: dict[int, np.ndarray] | None = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = {}
        _local.buffers = buffers
    buf = buffers.get(nbytes)
    if buf is None:
        buf = np.empty(nbytes, dtype=np.uint8)
        buffers[nbytes] = buf
    return buf


def _decode(info: ArrayInfo, blob: bytes) -> np.ndarray:
    if info.compressed:
        from numcodecs import blosc

        buf = _scratch(info.chunk_nbytes)
        blosc.decompress(blob, buf)
        return buf.view(info.dtype).reshape(info.chunks)
    return np.frombuffer(blob, dtype=info.dtype).reshape(info.chunks)


Task = tuple[str, tuple[slice, ...], tuple[slice, ...]]


def _plan(info: ArrayInfo, start: Sequence[int], out_shape: Sequence[int]) -> list[Task]:
    """(chunk key, slices in the chunk, slices in the output) for every chunk the region
    ``[start, start + out_shape)`` overlaps inside the array."""
    lo = [max(s, 0) for s in start]
    hi = [min(s + n, d) for s, n, d in zip(start, out_shape, info.shape, strict=True)]
    if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
        return []
    ranges = [
        range(lo_ // c, (h - 1) // c + 1) for lo_, h, c in zip(lo, hi, info.chunks, strict=True)
    ]
    tasks: list[Task] = []
    for index in itertools.product(*ranges):
        src, dst = [], []
        for k, i in enumerate(index):
            c0 = i * info.chunks[k]
            a = max(lo[k], c0)
            b = min(hi[k], c0 + info.chunks[k])
            src.append(slice(a - c0, b - c0))
            dst.append(slice(a - start[k], b - start[k]))
        tasks.append((info.chunk_key(index), tuple(src), tuple(dst)))
    return tasks


Transform = tuple[float, float, float, float]
"""``(lo, hi, offset, scale)``: values become ``(clip(v, lo, hi) - offset) * scale`` (float32)."""


@dataclass
class Region:
    """A read request: ``out`` receives the array's values at ``[start, start + out.shape)``
    (the part outside the array is left untouched, callers pre-fill padding); with
    ``transforms``, chunk values are transformed on the way, one per index of axis 0 (the
    channel axis, chunked by 1): a :data:`Transform`, or a lookup table indexed by the values."""

    info: ArrayInfo
    start: tuple[int, ...]
    out: np.ndarray
    transforms: Sequence[Transform | np.ndarray] | None = None


def apply_transform(values: np.ndarray, transform: Transform, out: np.ndarray) -> None:
    """``out[...] = (clip(values, lo, hi) - offset) * scale`` in float32, without temporaries."""
    lo, hi, offset, scale = transform
    np.subtract(values, np.float32(offset), out=out, dtype=np.float32, casting="unsafe")
    if math.isfinite(lo) or math.isfinite(hi):
        np.clip(out, np.float32(lo - offset), np.float32(hi - offset), out=out)
    np.multiply(out, np.float32(scale), out=out)


def read_regions(backend: Backend, regions: Sequence[Region]) -> None:
    """Fill every region: all chunks they touch are fetched and decoded in one batch, in the
    thread pool (inline when there are only one or two)."""
    jobs: list[tuple[Region, Task]] = []
    for region in regions:
        jobs.extend((region, task) for task in _plan(region.info, region.start, region.out.shape))
    if not jobs:
        return
    local = backend.local_root
    if local is not None:
        root = os.fspath(local)

        def run(job: tuple[Region, Task]) -> None:
            region, (key, src, dst) = job
            try:
                with open(os.path.join(root, key), "rb") as fh:
                    blob: bytes | None = fh.read()
            except FileNotFoundError:
                blob = None
            _copy(region, blob, src, dst)

        _run_all(run, jobs)
        return
    blobs = backend.get_many([task[0] for _, task in jobs])

    def run_blob(item: tuple[tuple[Region, Task], bytes | None]) -> None:
        (region, (_, src, dst)), blob = item
        _copy(region, blob, src, dst)

    _run_all(run_blob, list(zip(jobs, blobs, strict=True)))


def covers(info: ArrayInfo, start: Sequence[int], shape: Sequence[int]) -> bool:
    """Whether ``[start, start + shape)`` lies inside the array."""
    return all(s >= 0 and s + n <= d for s, n, d in zip(start, shape, info.shape, strict=True))


def _copy(
    region: Region, blob: bytes | None, src: tuple[slice, ...], dst: tuple[slice, ...]
) -> None:
    info = region.info
    if blob is None:
        values: np.ndarray = np.full((1,) * len(src), info.fill_value, dtype=info.dtype)
    else:
        try:
            values = _decode(info, blob)[src]
        except Exception as exc:
            raise ImageReadError(f"{info.key}: cannot decode a chunk ({exc})") from exc
    target = region.out[dst]
    if region.transforms is None:
        target[...] = values
        return
    transform = region.transforms[dst[0].start + region.start[0]]
    if isinstance(transform, np.ndarray):
        target[...] = transform[values]
    else:
        apply_transform(values, transform, target)


def _run_all(fn: Callable[[Any], None], items: Sequence[Any]) -> None:
    if len(items) <= _INLINE_MAX_CHUNKS:
        for item in items:
            fn(item)
        return
    for _ in _pool().map(fn, items):
        pass
