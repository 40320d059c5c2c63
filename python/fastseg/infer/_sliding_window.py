"""Sliding-window inference over a whole volume with bounded memory.

Windows of ``patch_size`` are placed on a grid (nnU-Net's or MONAI's convention, see
``_windows``); each window's logits are weighted by an importance map (Gaussian, σ = patch/8 by
default), summed voxel by voxel, and divided by the summed weights. Volumes smaller than the
patch are padded (centred) with ``pad_value`` and the result is cropped back.

Memory: windows are run in order of their z start, and the weighted sums live in a ring buffer
of ``slab_size`` z-rows (>= the patch's z size) covering the rows that windows still to come can
reach. Before a window starting at row ``s`` is added, rows below ``s`` can receive nothing more
(later windows start at ``s`` or above), so they are normalised and handed to the output (label
map, probabilities or logits) and their buffer rows are reused. Every voxel receives the same
additions in the same order as with a whole-volume buffer, and multiplication and addition are
done as separate correctly-rounded operations, so the slab result is bit-identical to the
whole-volume one. Accumulation memory is ``K x slab_size x Y x X`` instead of ``K x Z x Y x X``;
the input is read z-slab by z-slab too, so it may be a Zarr array or a memory map.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np
import torch

from fastseg.errors import InputError
from fastseg.infer._mirror import check_mirror_axes, mirror_tta
from fastseg.infer._windows import Scheme, check_scheme, gaussian_importance_map, window_starts

Predictor = Callable[[torch.Tensor], torch.Tensor]
SlabSize = int | Literal["auto"] | None
Sink = Callable[[int, torch.Tensor], None]

#: Importance weights are clamped below at this value when summing in float16, whose range
#: cannot hold the product of a logit and a Gaussian window's corner weight (~e^-24).
FLOAT16_MIN_WEIGHT = 1e-3

#: With ``slab_size="auto"``, a whole-volume buffer is used up to this many bytes.
AUTO_WHOLE_VOLUME_BYTES = 1 << 30

#: Rows are normalised and handed to the output in pieces of about this many values.
FLUSH_ELEMENTS = 1 << 23

_ACC_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class _Plan:
    size: tuple[int, int, int]
    padded: tuple[int, int, int]
    before: tuple[int, int, int]
    patch: tuple[int, int, int]
    windows: list[tuple[int, int, int]]
    weight: np.ndarray


class _Source:
    """The input ``(C, z, y, x)`` read as float32 z-slabs of the padded volume."""

    def __init__(self, image: Any, plan: _Plan, pad_value: float | Sequence[float]) -> None:
        self.image = image
        self.plan = plan
        channels = int(image.shape[0])
        try:
            values = np.asarray(pad_value, dtype=np.float32).reshape(-1)
        except (TypeError, ValueError):
            values = np.empty(0, dtype=np.float32)
        if values.size not in (1, channels) or not np.all(np.isfinite(values)):
            raise InputError(
                f"pad_value: expected one finite number or one per channel ({channels}), "
                f"got {pad_value!r}"
            )
        self.pad_value = np.broadcast_to(values, (channels,)).reshape(channels, 1, 1, 1)
        self._start = -1
        self._slab: np.ndarray | None = None

    def rows(self, z: int) -> np.ndarray:
        """Padded rows ``[z, z + patch_z)``, ``(C, patch_z, Y', X')`` float32 (cached)."""
        if z == self._start and self._slab is not None:
            return self._slab
        plan = self.plan
        pz = plan.patch[0]
        lo, hi = z - plan.before[0], z - plan.before[0] + pz
        src_lo, src_hi = max(lo, 0), min(hi, plan.size[0])
        block = np.asarray(self.image[:, src_lo:src_hi], dtype=np.float32)
        widths = [
            (0, 0),
            (src_lo - lo, hi - src_hi),
            (plan.before[1], plan.padded[1] - plan.size[1] - plan.before[1]),
            (plan.before[2], plan.padded[2] - plan.size[2] - plan.before[2]),
        ]
        if any(w != (0, 0) for w in widths):
            padded = np.empty(
                [n + lo + hi for n, (lo, hi) in zip(block.shape, widths, strict=True)],
                dtype=np.float32,
            )
            padded[...] = self.pad_value
            inner = tuple(slice(lo, lo + n) for n, (lo, _) in zip(block.shape, widths, strict=True))
            padded[inner] = block
            block = padded
        self._start, self._slab = z, block
        return block

    def window(self, start: tuple[int, int, int]) -> np.ndarray:
        z, y, x = start
        _, py, px = self.plan.patch
        return self.rows(z)[:, :, y : y + py, x : x + px]


class _Ring:
    """Weighted logit sums ``(K, H, Y', X')`` and weight sums ``(H, Y', X')`` for padded rows
    ``[base, base + H)``, row ``z`` stored at ``z % H``."""

    def __init__(
        self,
        classes: int,
        height: int,
        plan: _Plan,
        dtype: torch.dtype,
        device: torch.device,
        storage: torch.Tensor | None = None,
    ) -> None:
        _, py, px = plan.padded
        self.height = height
        self.reused = height < plan.padded[0]
        # With ``storage`` (zeros, the caller's output) rows are normalised where they are.
        self.in_place = storage is not None
        self.logits = (
            storage
            if storage is not None
            else _zeros((classes, height, py, px), dtype=dtype, device=device)
        )
        self.norm = _zeros((height, py, px), dtype=torch.float32, device=device)
        self.base = 0
        _, y, x = plan.size
        self.step = min(height, max(1, FLUSH_ELEMENTS // max(1, classes * y * x)))
        # Reused for every flushed piece: fresh multi-MB temporaries make glibc keep memory.
        self.piece = torch.empty(
            (classes, self.step if not self.in_place else 0, y, x),
            dtype=torch.float32,
            device=device,
        )

    def pieces(self, z0: int, z1: int) -> Iterator[tuple[int, slice]]:
        """``(offset from z0, ring rows)`` covering padded rows ``[z0, z1)`` (at most two)."""
        done = z0
        while done < z1:
            r = done % self.height
            n = min(z1 - done, self.height - r)
            yield done - z0, slice(r, r + n)
            done += n

    def add(
        self,
        start: tuple[int, int, int],
        patch: tuple[int, int, int],
        logits: torch.Tensor,
        weight: torch.Tensor,
    ) -> None:
        z, y, x = start
        pz, py, px = patch
        ys, xs = slice(y, y + py), slice(x, x + px)
        for offset, rows in self.pieces(z, z + pz):
            n = rows.stop - rows.start
            self.logits[:, rows, ys, xs] += logits[:, offset : offset + n]
            self.norm[rows, ys, xs] += weight[offset : offset + n]

    def flush(self, z1: int, plan: _Plan, sink: Sink) -> None:
        """Normalise padded rows ``[base, z1)``, pass the ones inside the volume to ``sink`` as
        ``(first original row, (K, n, Y, X) float32)``, clear them and move ``base`` to ``z1``."""
        bz, by, bx = plan.before
        Z, Y, X = plan.size
        for offset, rows in self.pieces(self.base, z1):
            first = self.base + offset
            n = rows.stop - rows.start
            lo, hi = max(first, bz), min(first + n, bz + Z)
            for z in range(lo, hi, self.step):
                start, m = rows.start + z - first, min(self.step, hi - z)
                crop = (slice(start, start + m), slice(by, by + Y), slice(bx, bx + X))
                piece = self.piece if m == self.step else self.piece[:, :m]
                if self.in_place:
                    piece = self.logits[(slice(None), *crop)]
                torch.div(self.logits[(slice(None), *crop)], self.norm[crop], out=piece)
                sink(z - bz, piece)
            if self.reused:
                self.logits[:, rows].zero_()
                self.norm[rows].zero_()
        self.base = z1


def _zeros(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Zeros; on the CPU from calloc'd pages, so untouched rows cost nothing."""
    if device.type == "cpu" and dtype in (torch.float32, torch.float16):
        return torch.from_numpy(np.zeros(shape, dtype=torch.empty(0, dtype=dtype).numpy().dtype))
    return torch.zeros(shape, dtype=dtype, device=device)


def _as_source(image: Any) -> Any:
    """``image`` as an indexable ``(C, z, y, x)`` array-like (NumPy arrays stay views)."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not hasattr(image, "shape") or not hasattr(image, "__getitem__"):
        image = np.asarray(image)
    shape = tuple(int(s) for s in image.shape)
    if len(shape) == 3:
        if isinstance(image, np.ndarray):
            return image[None]
        return _AddChannel(image)
    if len(shape) != 4:
        raise InputError(f"image: expected (C, z, y, x) or (z, y, x), got shape {shape}")
    return image


class _AddChannel:
    def __init__(self, array: Any) -> None:
        self.array = array
        self.shape = (1, *(int(s) for s in array.shape))

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        return np.asarray(self.array[key[1]])[None]


def _overlaps(overlap: float | Sequence[float]) -> tuple[float, float, float]:
    values = [float(overlap)] * 3 if np.isscalar(overlap) else [float(o) for o in overlap]  # type: ignore[arg-type, union-attr]
    if len(values) != 3 or not all(0.0 <= o < 1.0 for o in values):
        raise InputError(
            f"overlap: expected a fraction in [0, 1) or three (z, y, x), got {overlap}"
        )
    return values[0], values[1], values[2]


def _make_plan(
    shape: tuple[int, ...],
    patch_size: Sequence[int],
    overlap: float | Sequence[float],
    gaussian: bool,
    sigma_scale: float,
    scheme: Scheme,
) -> _Plan:
    patch_t = tuple(int(p) for p in patch_size)
    if len(patch_t) != 3 or min(patch_t) < 1:
        raise InputError(f"patch_size: expected three positive sizes (z, y, x), got {patch_size}")
    patch = (patch_t[0], patch_t[1], patch_t[2])
    size = (shape[1], shape[2], shape[3])
    overlaps = _overlaps(overlap)
    padded = tuple(max(n, p) for n, p in zip(size, patch, strict=True))
    before = tuple((p - n) // 2 for n, p in zip(size, padded, strict=True))
    axes = [window_starts(n, p, o, scheme) for n, p, o in zip(padded, patch, overlaps, strict=True)]
    windows = [(z, y, x) for z, y, x in itertools.product(*axes)]
    weight = (
        gaussian_importance_map(patch, sigma_scale, scheme)
        if gaussian
        else np.ones(patch, dtype=np.float32)
    )
    return _Plan(size, padded, before, patch, windows, weight)  # type: ignore[arg-type]


def _ring_height(slab_size: SlabSize, plan: _Plan, classes: int, dtype: torch.dtype) -> int:
    pz, padded_z = plan.patch[0], plan.padded[0]
    if slab_size is None:
        return padded_z
    if slab_size == "auto":
        row_bytes = plan.padded[1] * plan.padded[2] * (classes * torch.finfo(dtype).bits // 8 + 4)
        return padded_z if row_bytes * padded_z <= AUTO_WHOLE_VOLUME_BYTES else pz
    if isinstance(slab_size, bool) or not isinstance(slab_size, int) or slab_size < pz:
        raise InputError(
            f"slab_size: expected None, 'auto' or an integer >= the patch's z size {pz}, got {slab_size!r}"
        )
    return min(slab_size, padded_z)


def _run(
    predictor: Predictor,
    image: Any,
    patch_size: Sequence[int],
    overlap: float | Sequence[float],
    sink_factory: Callable[[int, _Plan, int], tuple[Sink, torch.Tensor | None]],
    *,
    batch_size: int,
    gaussian: bool,
    sigma_scale: float,
    min_weight: float | None,
    scheme: str,
    pad_value: float | Sequence[float],
    device: str | torch.device | None,
    accumulate_device: str | torch.device | None,
    accumulate_dtype: str | torch.dtype,
    slab_size: SlabSize,
    mirror_axes: Sequence[int],
    amp: bool | None,
    progress: bool,
) -> _Plan:
    source_array = _as_source(image)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    plan = _make_plan(
        tuple(source_array.shape), patch_size, overlap, gaussian, sigma_scale, check_scheme(scheme)
    )
    dev = torch.device(device) if device is not None else torch.device("cpu")
    acc_dev = torch.device(accumulate_device) if accumulate_device is not None else dev
    if isinstance(accumulate_dtype, torch.dtype):
        acc_dtype = accumulate_dtype
    elif accumulate_dtype in _ACC_DTYPES:
        acc_dtype = _ACC_DTYPES[accumulate_dtype]
    else:
        raise InputError(
            f"accumulate_dtype: expected one of {sorted(_ACC_DTYPES)}, got {accumulate_dtype!r}"
        )
    if not acc_dtype.is_floating_point:
        raise InputError(f"accumulate_dtype: expected a floating-point dtype, got {acc_dtype}")
    axes = check_mirror_axes(mirror_axes)
    model = mirror_tta(predictor, axes) if axes else predictor
    use_amp = dev.type == "cuda" if amp is None else bool(amp)
    autocast: Callable[[], Any] = (
        (lambda: torch.autocast(device_type=dev.type)) if use_amp else contextlib.nullcontext
    )
    if min_weight is None and acc_dtype == torch.float16:
        min_weight = FLOAT16_MIN_WEIGHT
    weight = plan.weight
    if min_weight is not None:
        if not 0.0 < float(min_weight) <= 1.0:
            raise InputError(f"min_weight: expected a number in (0, 1] or None, got {min_weight!r}")
        weight = np.maximum(weight, np.float32(min_weight))
    weight_acc = torch.from_numpy(weight).to(acc_dev)
    weight_dev = weight_acc.to(dev)
    source = _Source(source_array, plan, pad_value)
    ring: _Ring | None = None
    sink: Sink | None = None
    scratch = torch.empty(0)
    bar = _progress(len(plan.windows), progress)
    try:
        for first in range(0, len(plan.windows), batch_size):
            chunk = plan.windows[first : first + batch_size]
            batch = torch.from_numpy(np.stack([source.window(s) for s in chunk])).to(dev)
            with autocast():
                out = model(batch)
            expected = (len(chunk), *plan.patch)
            if (
                not isinstance(out, torch.Tensor)
                or out.dim() != 5
                or (out.shape[0], *out.shape[2:]) != expected
                or (ring is not None and out.shape[1] != ring.logits.shape[0])
            ):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise InputError(
                    f"predictor: expected logits ({len(chunk)}, K, {', '.join(map(str, plan.patch))}), got {got}"
                )
            if ring is None:
                classes = int(out.shape[1])
                height = _ring_height(slab_size, plan, classes, acc_dtype)
                sink, storage = sink_factory(classes, plan, height)
                if storage is not None and (
                    storage.dtype != acc_dtype
                    or storage.device != acc_dev
                    or height != plan.padded[0]
                ):
                    storage = None
                ring = _Ring(classes, height, plan, acc_dtype, acc_dev, storage)
                scratch = torch.empty((batch_size, *out.shape[1:]), dtype=torch.float32, device=dev)
            assert sink is not None
            # Reused output buffer: a fresh multi-MB tensor per window costs page faults.
            weighted = torch.mul(out.float(), weight_dev, out=scratch[: len(chunk)]).to(acc_dev)
            for b, start in enumerate(chunk):
                if start[0] > ring.base:
                    ring.flush(start[0], plan, sink)
                ring.add(start, plan.patch, weighted[b], weight_acc)
            bar.update(len(chunk))
        assert ring is not None and sink is not None
        ring.flush(plan.padded[0], plan, sink)
    finally:
        bar.close()
    return plan


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="window", desc="sliding window")


def label_dtype(classes: int) -> np.dtype:
    """The smallest integer dtype holding labels ``0 .. classes - 1``."""
    for dtype in (np.uint8, np.int16, np.int32):
        if classes - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


@overload
def sliding_window_inference(
    predictor: Predictor,
    image: Any,
    patch_size: Sequence[int],
    overlap: float | Sequence[float] = ...,
    *,
    batch_size: int = ...,
    gaussian: bool = ...,
    sigma_scale: float = ...,
    min_weight: float | None = ...,
    scheme: str = ...,
    pad_value: float | Sequence[float] = ...,
    return_probabilities: Literal[False] = ...,
    probabilities_out: Any = ...,
    device: str | torch.device | None = ...,
    accumulate_device: str | torch.device | None = ...,
    accumulate_dtype: str | torch.dtype = ...,
    slab_size: SlabSize = ...,
    mirror_axes: Sequence[int] = ...,
    amp: bool | None = ...,
    progress: bool = ...,
) -> np.ndarray: ...


@overload
def sliding_window_inference(
    predictor: Predictor,
    image: Any,
    patch_size: Sequence[int],
    overlap: float | Sequence[float] = ...,
    *,
    batch_size: int = ...,
    gaussian: bool = ...,
    sigma_scale: float = ...,
    min_weight: float | None = ...,
    scheme: str = ...,
    pad_value: float | Sequence[float] = ...,
    return_probabilities: Literal[True],
    probabilities_out: Any = ...,
    device: str | torch.device | None = ...,
    accumulate_device: str | torch.device | None = ...,
    accumulate_dtype: str | torch.dtype = ...,
    slab_size: SlabSize = ...,
    mirror_axes: Sequence[int] = ...,
    amp: bool | None = ...,
    progress: bool = ...,
) -> tuple[np.ndarray, Any]: ...


@torch.inference_mode()
def sliding_window_inference(
    predictor: Predictor,
    image: Any,
    patch_size: Sequence[int],
    overlap: float | Sequence[float] = 0.5,
    *,
    batch_size: int = 1,
    gaussian: bool = True,
    sigma_scale: float = 1.0 / 8,
    min_weight: float | None = None,
    scheme: str = "nnunet",
    pad_value: float | Sequence[float] = 0.0,
    return_probabilities: bool = False,
    probabilities_out: Any = None,
    device: str | torch.device | None = None,
    accumulate_device: str | torch.device | None = None,
    accumulate_dtype: str | torch.dtype = "float32",
    slab_size: SlabSize = "auto",
    mirror_axes: Sequence[int] = (),
    amp: bool | None = None,
    progress: bool = False,
) -> np.ndarray | tuple[np.ndarray, Any]:
    """Label map ``(z, y, x)`` (argmax over classes) of ``image`` ``(C, z, y, x)`` or ``(z, y, x)``.

    Parameters
    ----------
    predictor : maps ``(N, C, pz, py, px)`` to logits ``(N, K, pz, py, px)`` (a model in eval mode).
    image : NumPy array, CPU tensor, or any array-like with ``.shape`` and slicing (a Zarr array,
        a memory map); read one z-slab at a time and converted to float32 per slab.
    patch_size : window size ``(z, y, x)`` in voxels.
    overlap : fraction of the patch shared by neighbouring windows, one value or ``(z, y, x)``.
    batch_size : windows per forward pass.
    gaussian, sigma_scale : weight windows by a Gaussian with ``σ = patch * sigma_scale``
        (``False``: every voxel of a window weighs the same).
    min_weight : clamp the importance weights below at this value (default: none, except
        ``FLOAT16_MIN_WEIGHT`` = 1e-3 when accumulating in float16).
    scheme : ``"nnunet"`` (default) or ``"monai"``: window placement and Gaussian of that
        library (``"monai"`` reproduces MONAI's ``sliding_window_inference(mode="gaussian")``).
    pad_value : value of the padding added (centred) where the volume is smaller than the patch,
        one for all channels or one per channel (training pads with each channel's normalised
        minimum: pass ``image.min(axis=(1, 2, 3))`` to match).
    return_probabilities : also return the softmax of the averaged logits, ``(K, z, y, x)``
        float32, written into ``probabilities_out`` when given (e.g. a Zarr array or memory map
        of that shape, filled slab by slab; it is what is returned).
    device : where the windows run (default CPU); ``amp`` (default: on when ``device`` is CUDA)
        runs them under ``torch.autocast``.
    accumulate_device, accumulate_dtype : where and in which float dtype (``"float32"``,
        ``"float16"``, ``"bfloat16"``) the weighted logits are summed (default: ``device``,
        float32); weight sums are always float32.
    slab_size : z-rows of the accumulation buffer: ``None`` = the whole (padded) volume, an
        integer >= ``patch_size[0]`` = a ring buffer of that many rows (memory ``K x rows x Y x X``),
        ``"auto"`` (default) = whole volume when that buffer fits in ``AUTO_WHOLE_VOLUME_BYTES``,
        else the patch's z size. The result does not depend on it (bit for bit).
    mirror_axes : spatial axes (0 = z, 1 = y, 2 = x) for mirror test-time augmentation; each
        window's logits are the mean over all ``2 ** len(mirror_axes)`` flips (nnU-Net's TTA).
    progress : show a progress bar over windows (tqdm).

    Returns
    -------
    labels ``(z, y, x)`` of the smallest integer dtype holding ``K - 1`` (uint8 up to 256
    classes); with ``return_probabilities``, ``(labels, probabilities)``.
    """
    source = _as_source(image)
    size = tuple(int(s) for s in source.shape[1:])
    holder: dict[str, Any] = {}

    def factory(classes: int, plan: _Plan, height: int) -> tuple[Sink, torch.Tensor | None]:
        labels = np.empty(size, dtype=label_dtype(classes))
        holder["labels"] = labels
        probs = None
        if return_probabilities:
            if probabilities_out is not None:
                if tuple(probabilities_out.shape) != (classes, *size):
                    raise InputError(
                        f"probabilities_out: expected shape {(classes, *size)}, got {tuple(probabilities_out.shape)}"
                    )
                probs = probabilities_out
            else:
                probs = np.empty((classes, *size), dtype=np.float32)
            holder["probabilities"] = probs

        buffers: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}

        def sink(z0: int, logits: torch.Tensor) -> None:
            shape = tuple(logits.shape[1:])
            if shape not in buffers:
                buffers[shape] = (
                    torch.empty(shape, dtype=logits.dtype, device=logits.device),
                    torch.empty(shape, dtype=torch.int64, device=logits.device),
                )
            best, index = buffers[shape]
            torch.max(logits, dim=0, out=(best, index))
            labels[z0 : z0 + shape[0]] = index.cpu().numpy()
            if probs is not None:
                # In place: the engine hands over a scratch buffer it no longer needs.
                torch.exp(logits.sub_(best), out=logits)
                probs[:, z0 : z0 + shape[0]] = logits.div_(logits.sum(dim=0)).cpu().numpy()

        return sink, None

    _run(
        predictor,
        source,
        patch_size,
        overlap,
        factory,
        batch_size=batch_size,
        gaussian=gaussian,
        sigma_scale=sigma_scale,
        min_weight=min_weight,
        scheme=scheme,
        pad_value=pad_value,
        device=device,
        accumulate_device=accumulate_device,
        accumulate_dtype=accumulate_dtype,
        slab_size=slab_size,
        mirror_axes=mirror_axes,
        amp=amp,
        progress=progress,
    )
    if return_probabilities:
        return holder["labels"], holder["probabilities"]
    return holder["labels"]


@torch.inference_mode()
def sliding_window_logits(
    predictor: Predictor,
    image: Any,
    patch_size: Sequence[int],
    overlap: float | Sequence[float] = 0.5,
    *,
    out: Any = None,
    batch_size: int = 1,
    gaussian: bool = True,
    sigma_scale: float = 1.0 / 8,
    min_weight: float | None = None,
    scheme: str = "nnunet",
    pad_value: float | Sequence[float] = 0.0,
    device: str | torch.device | None = None,
    accumulate_device: str | torch.device | None = None,
    accumulate_dtype: str | torch.dtype = "float32",
    slab_size: SlabSize = "auto",
    mirror_axes: Sequence[int] = (),
    amp: bool | None = None,
    progress: bool = False,
) -> Any:
    """The importance-weighted average of the windows' logits, ``(K, z, y, x)`` float32.

    Same parameters as :func:`sliding_window_inference`; ``out`` (an array-like of shape
    ``(K, z, y, x)``, e.g. a Zarr array) receives the result slab by slab and is returned.
    """
    source = _as_source(image)
    size = tuple(int(s) for s in source.shape[1:])
    holder: dict[str, Any] = {}

    def factory(classes: int, plan: _Plan, height: int) -> tuple[Sink, torch.Tensor | None]:
        storage = None
        if out is not None:
            if tuple(out.shape) != (classes, *size):
                raise InputError(f"out: expected shape {(classes, *size)}, got {tuple(out.shape)}")
            target = out
        else:
            target = np.zeros((classes, *size), dtype=np.float32)
            if plan.padded == plan.size:
                # The whole volume is accumulated and normalised right in the returned array.
                storage = torch.from_numpy(target)
        holder["out"] = target

        def sink(z0: int, logits: torch.Tensor) -> None:
            if storage is None or logits.data_ptr() != storage[:, z0].data_ptr():
                target[:, z0 : z0 + logits.shape[1]] = logits.cpu().numpy()

        return sink, storage

    _run(
        predictor,
        source,
        patch_size,
        overlap,
        factory,
        batch_size=batch_size,
        gaussian=gaussian,
        sigma_scale=sigma_scale,
        min_weight=min_weight,
        scheme=scheme,
        pad_value=pad_value,
        device=device,
        accumulate_device=accumulate_device,
        accumulate_dtype=accumulate_dtype,
        slab_size=slab_size,
        mirror_axes=mirror_axes,
        amp=amp,
        progress=progress,
    )
    return holder["out"]
