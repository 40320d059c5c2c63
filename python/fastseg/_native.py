"""The one door to the native module ``fastseg._core``.

Turns NumPy arrays and CUDA tensors into the pointers, shapes and streams ``_core`` takes, and says
which device runs. No other module imports ``_core``. CUDA tensors are recognised by duck typing
(``.is_cuda``/``.data_ptr()``), so importing this module never imports torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fastseg.errors import InputError, NativeBuildError

try:
    from fastseg import _core  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - only in a broken install
    raise NativeBuildError(
        "fastseg._core is missing: fastseg was not built. Install with `pip install .` "
        f"from the fastseg source tree ({exc})"
    ) from exc

core: Any = _core


def build_info() -> dict[str, Any]:
    """What ``_core`` was compiled with: version, compiler, OpenMP threads, CUDA architectures."""
    info = dict(core.build_info())
    cuda = core.cuda
    info["cuda_compiled"] = cuda is not None
    info["cuda_architectures"] = cuda.architectures.split(",") if cuda is not None else []
    info["cuda_toolkit"] = cuda.toolkit_version if cuda is not None else None
    info["cuda_devices"] = cuda.device_count() if cuda is not None else 0
    return info


def set_num_threads(n: int) -> None:
    """Number of OpenMP threads the CPU kernels use."""
    core.set_num_threads(int(n))


def is_cuda_tensor(x: Any) -> bool:
    """True for a torch tensor (or any array-like) that lives on a CUDA device."""
    return bool(getattr(x, "is_cuda", False)) and hasattr(x, "data_ptr")


def device_of(x: Any) -> str:
    """``"cuda"`` for CUDA tensors, ``"cpu"`` for NumPy arrays; anything else is an InputError."""
    if is_cuda_tensor(x):
        return "cuda"
    if isinstance(x, np.ndarray):
        return "cpu"
    raise InputError(f"expected a NumPy array or a CUDA tensor, got {type(x).__name__}")


def require_cuda_kernels() -> Any:
    """The ``_core.cuda`` submodule, or a NativeBuildError saying this build has none."""
    if core.cuda is None:
        raise NativeBuildError(
            "this fastseg build has no CUDA kernels (built without a CUDA toolkit); "
            "pass NumPy arrays for the CPU path or rebuild with FASTSEG_CUDA=ON"
        )
    return core.cuda


def host_array(x: Any) -> np.ndarray:
    """``x`` as a C-contiguous NumPy array in native byte order (no copy when it already is)."""
    array = np.ascontiguousarray(x)
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def _current_stream(tensor: Any) -> int:
    import torch  # a CUDA tensor exists, so torch is importable

    return int(torch.cuda.current_stream(tensor.device).cuda_stream)


def on_device_of(tensor: Any) -> Any:
    """Context making ``tensor``'s GPU the current one for a kernel launch (the kernels launch
    on the current device: a tensor on cuda:1 while cuda:0 is current would fail)."""
    import torch

    return torch.cuda.device(tensor.device)


def window(image: Any, lo: float, hi: float, offset: float, scale: float) -> Any:
    """``(clip(image, lo, hi) - offset) * scale`` as float32, same shape, on image's device.

    NumPy input of any numeric dtype runs the OpenMP kernel; a CUDA tensor runs the CUDA kernel on
    the current stream (non-float32 tensors are converted to float32 first).
    """
    if device_of(image) == "cuda":
        kernels = require_cuda_kernels()
        src = image.float().contiguous()
        out = src.new_empty(src.shape)
        with on_device_of(src):
            kernels.window(
                src.data_ptr(),
                out.data_ptr(),
                src.numel(),
                float(lo),
                float(hi),
                float(offset),
                float(scale),
                _current_stream(src),
            )
        return out
    src_np = host_array(image)
    if src_np.dtype == np.int8 or src_np.dtype == np.uint32 or src_np.dtype == np.int64:
        src_np = src_np.astype(np.float64)
    elif src_np.dtype.kind not in "iuf" or src_np.dtype.itemsize > 8:
        raise InputError(f"image: expected a numeric array, got dtype {src_np.dtype}")
    if src_np.dtype == np.float16:
        src_np = src_np.astype(np.float32)
    out_np = np.empty(src_np.shape, dtype=np.float32)
    core.window(src_np, out_np, float(lo), float(hi), float(offset), float(scale))
    return out_np


def _uint8_mask(mask: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 3:
        raise InputError(f"{name}: expected a 3-d (z, y, x) array, got shape {arr.shape}")
    return np.ascontiguousarray(arr != 0, dtype=np.uint8)


def label_metrics(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: tuple[float, float, float],
    labels: list[int] | None,
    hd95: str,
    nsd_tolerance: float,
    nsd_method: int = 0,
    distance_method: int = 0,
) -> dict[str, np.ndarray]:
    """Metrics per label of two C-contiguous (z, y, x) integer label maps of one shape and dtype.

    Returns arrays keyed ``label, pred_voxels, ref_voxels, inter_voxels, dice, jaccard, vs, hd,
    hd95, avd, assd, nsd`` (distances in mm). ``nsd_tolerance`` NaN leaves nsd out (NaN);
    ``nsd_method`` (0 auto, 1 offset probing, 2 corner-grid EDT) and ``distance_method`` (0 auto,
    1 outward search, 2 full EDT) pick between exact algorithms; results are the same.
    """
    return dict(
        core.metrics(
            pred,
            ref,
            list(spacing),
            labels,
            hd95,
            float(nsd_tolerance),
            int(nsd_method),
            int(distance_method),
        )
    )


def label_metrics_batch(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    spacings: list[tuple[float, float, float]],
    labels: list[int] | None,
    hd95: str,
    nsd_tolerance: float,
    nsd_method: int = 0,
) -> list[dict[str, np.ndarray]]:
    """:func:`label_metrics` over many pairs, the pairs spread over the OpenMP threads."""
    preds = [p for p, _ in pairs]
    refs = [r for _, r in pairs]
    out = core.metrics_batch(
        preds,
        refs,
        [list(s) for s in spacings],
        labels,
        hd95,
        float(nsd_tolerance),
        int(nsd_method),
    )
    return [dict(d) for d in out]


def squared_edt(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Squared Euclidean distance (mm²) of every voxel to the nearest non-zero voxel of a
    (z, y, x) mask, float64; ``inf`` everywhere when the mask is empty."""
    return np.asarray(core.squared_edt(_uint8_mask(mask, "mask"), list(spacing)))


def voxel_surface(mask: np.ndarray) -> np.ndarray:
    """Bool (z, y, x): voxels of ``mask != 0`` with a 6-neighbour outside it (or outside the array)."""
    return np.asarray(core.voxel_surface(_uint8_mask(mask, "mask"))).astype(bool)


def corner_codes(mask: np.ndarray) -> np.ndarray:
    """uint8 ``(z + 1, y + 1, x + 1)``: the 2x2x2 neighbour code of every voxel corner of
    ``mask != 0`` (DeepMind surface-distance's encoding)."""
    return np.asarray(core.corner_codes(_uint8_mask(mask, "mask")))


def surfel_areas(spacing: tuple[float, float, float]) -> np.ndarray:
    """Surfel area (mm²) of each of the 256 neighbour codes for spacing (z, y, x) mm."""
    return np.asarray(core.surfel_areas(list(spacing)))


# ---- augment (fastseg.augment over cpp/src/augment) ----
# Images are float32 (N, C, z, y, x), labels (N, z, y, x) integers, NumPy (OpenMP kernels) or CUDA
# tensors (CUDA kernels on the current stream). Parameter arrays arrive as NumPy and are copied to
# the tensor's device here. Intensity ops work in place.

_AUGMENT_LABEL_DTYPES = ("uint8", "int8", "int16", "int32", "int64")


def _device_params(like: Any, *arrays: np.ndarray | None) -> list[Any]:
    """The arrays on ``like``'s device, copied on its current stream from pinned memory without
    a host sync (a pageable copy would wait for every queued kernel: one stall per augmentation
    step; the pinned block is not reused before its copy has run)."""
    import torch

    out: list[Any] = []
    for a in arrays:
        if a is None:
            out.append(None)
            continue
        host = np.ascontiguousarray(a)
        if host.dtype == np.uint64:
            host = host.view(np.int64)  # same bits; torch's uint64 support is partial
        pinned = torch.from_numpy(host).pin_memory()
        out.append(pinned.to(like.device, non_blocking=True))
    return out


def _ptr(t: Any) -> int:
    return 0 if t is None else int(t.data_ptr())


def augment_spatial(
    image: Any,
    label: Any,
    out_shape: tuple[int, int, int],
    maps: np.ndarray,
    coef: np.ndarray | None,
    has_elastic: np.ndarray,
    image_order: int,
    label_mode: int,
    border: int,
    cval: float,
    label_cval: int,
) -> tuple[Any, Any]:
    """Resample image (N, C, z, y, x) float32 and label (N, z, y, x) or None through the per-sample
    maps ``src = A p + b + elastic(p)`` into new arrays of spatial shape ``out_shape``.

    maps: (N, 12) float32 (A row-major, then b); coef: (N, gz, gy, gx, 3) float32 source-voxel
    displacements at the control points, or None; has_elastic: (N,) uint8.
    """
    n, c = int(image.shape[0]), int(image.shape[1])
    out_full = (n, c, *out_shape)
    if device_of(image) == "cuda":
        kernels = require_cuda_kernels()
        if label is not None and device_of(label) != "cuda":
            raise InputError("label: expected a CUDA tensor like image, got a NumPy array")
        src = image.contiguous()
        if str(src.dtype) != "torch.float32" or src.dim() != 5:
            raise InputError(
                f"image: expected a float32 (N, C, z, y, x) CUDA tensor, got {src.dtype} "
                f"of shape {tuple(src.shape)}"
            )
        lab = None if label is None else label.contiguous()
        dtype_name = "uint8" if lab is None else str(lab.dtype).removeprefix("torch.")
        if lab is not None and dtype_name not in _AUGMENT_LABEL_DTYPES:
            raise InputError(
                f"label: expected an integer dtype {_AUGMENT_LABEL_DTYPES}, got {dtype_name}"
            )
        if lab is not None and tuple(lab.shape) != (n, *src.shape[2:]):
            raise InputError(f"label: expected shape {(n, *src.shape[2:])}, got {tuple(lab.shape)}")
        # As the CPU binding: the kernel reads n maps, n has_elastic bytes, n control grids.
        maps = np.ascontiguousarray(maps, dtype=np.float32)
        has_elastic = np.ascontiguousarray(has_elastic, dtype=np.uint8)
        if coef is not None:
            coef = np.ascontiguousarray(coef, dtype=np.float32)
        if (
            maps.shape != (n, 12)
            or has_elastic.shape != (n,)
            or (coef is not None and (coef.ndim != 5 or coef.shape[0] != n or coef.shape[4] != 3))
            or (coef is not None and min(coef.shape[1:4]) < 1)
        ):
            raise InputError(
                f"maps/coef/has_elastic: expected ({n}, 12), ({n}, gz, gy, gx, 3) and ({n},), "
                f"got {maps.shape}, {None if coef is None else coef.shape}, {has_elastic.shape}"
            )
        out = src.new_empty(out_full)
        out_lab = None if lab is None else lab.new_empty((n, *out_shape))
        d_maps, d_coef, d_has = _device_params(src, maps, coef, has_elastic)
        grid = [0, 0, 0] if coef is None else [int(g) for g in coef.shape[1:4]]
        with on_device_of(src):
            kernels.augment_spatial(
                src.data_ptr(),
                _ptr(lab),
                out.data_ptr(),
                _ptr(out_lab),
                dtype_name,
                list(src.shape),
                list(out_full),
                _ptr(d_maps),
                _ptr(d_coef),
                _ptr(d_has),
                grid,
                int(image_order),
                int(label_mode),
                int(border),
                float(cval),
                int(label_cval),
                _current_stream(src),
            )
        return out, out_lab
    src_np = np.ascontiguousarray(image, dtype=np.float32)
    out_np = np.empty(out_full, dtype=np.float32)
    lab_np = None if label is None else np.ascontiguousarray(label)
    out_lab_np = None if lab_np is None else np.empty((n, *out_shape), dtype=lab_np.dtype)
    core.augment_spatial(
        src_np,
        lab_np,
        out_np,
        out_lab_np,
        np.ascontiguousarray(maps, dtype=np.float32),
        None if coef is None else np.ascontiguousarray(coef, dtype=np.float32),
        np.ascontiguousarray(has_elastic, dtype=np.uint8),
        int(image_order),
        int(label_mode),
        int(border),
        float(cval),
        int(label_cval),
    )
    return out_np, out_lab_np


def _workspace(image: Any, op: str) -> Any:
    import torch

    n, c = int(image.shape[0]), int(image.shape[1])
    if op in ("blur", "lowres"):
        return torch.empty(image.numel(), dtype=torch.float32, device=image.device)
    return torch.empty(max(n * c, 1) * 8, dtype=torch.float64, device=image.device)


# Per op: (name, dtype, trailing dims after (N, C); None for keys of shape (N,)) of each array,
# and the values the kernels take (as the CPU bindings check them).
_INTENSITY_ARRAYS: dict[str, list[tuple[str, Any, tuple[int, ...] | None]]] = {
    "noise": [("sigma", np.float32, ()), ("keys", np.uint64, None)],
    "blur": [("sigma", np.float32, (3,))],
    "brightness": [("mul", np.float32, ()), ("add", np.float32, ())],
    "contrast": [("factor", np.float32, ())],
    "lowres": [("zoom", np.float32, (3,))],
    "gamma": [("gamma", np.float32, ()), ("invert", np.uint8, ())],
    "bias_field": [("coef", np.float32, (-1,))],
}


def _checked_intensity_params(
    op: str, image: Any, active: np.ndarray, arrays: list[np.ndarray], flags: list[Any]
) -> list[np.ndarray]:
    """The CUDA kernels read raw pointers: check shapes and values as the CPU bindings do and
    convert to the kernels' dtypes."""
    if op not in _INTENSITY_ARRAYS:
        raise InputError(f"op: expected one of {', '.join(_INTENSITY_ARRAYS)}, got {op!r}")
    n, c = int(image.shape[0]), int(image.shape[1])
    spec = _INTENSITY_ARRAYS[op]
    if len(arrays) != len(spec):
        raise InputError(f"{op}: expected arrays {[name for name, _, _ in spec]}")
    if active.shape != (n, c):
        raise InputError(f"active: expected shape {(n, c)}, got {active.shape}")
    out = []
    for (name, dtype, tail), array in zip(spec, arrays, strict=True):
        if tail == (-1,):  # bias field: terms of the polynomial of the given order
            order = int(flags[0])
            if not 0 <= order <= 7:
                raise InputError(f"order: expected 0..7, got {order}")
            tail = ((order + 1) * (order + 2) * (order + 3) // 6,)
        shape = (n,) if tail is None else (n, c, *tail)
        if array.shape != shape:
            raise InputError(f"{name}: expected shape {shape}, got {array.shape}")
        out.append(np.ascontiguousarray(array, dtype=dtype))
    if op == "blur" and not np.all((out[0] >= 0) & (out[0] <= 64)):
        raise InputError("sigma: expected values in [0, 64] voxels")
    if op == "lowres" and not np.all((out[0] > 0) & (out[0] <= 1)):
        raise InputError("zoom: expected values in (0, 1]")
    if op == "gamma" and not np.all(out[0] > 0):
        raise InputError("gamma: expected values > 0")
    if op == "noise" and math.prod(image.shape[2:]) >= 2**32:
        raise InputError("image: expected fewer than 2^32 voxels per channel for the noise counter")
    return out


def augment_intensity(op: str, image: Any, active: np.ndarray, *params: Any) -> None:
    """Apply intensity op ``op`` in place to a C-contiguous float32 (N, C, z, y, x) batch.

    ``params`` are the op's arrays (NumPy; copied to the device for CUDA tensors) and flags, in the
    order of ``_core.augment_<op>``: noise (sigma, keys), blur (sigma), brightness (mul, add),
    contrast (factor, preserve_range), lowres (zoom), gamma (gamma, invert, retain_stats),
    bias_field (coef, order).
    """
    active_u8 = np.ascontiguousarray(active, dtype=np.uint8)
    if device_of(image) == "cuda":
        kernels = require_cuda_kernels()
        if not image.is_contiguous() or str(image.dtype) != "torch.float32":
            raise InputError(
                "image: expected a C-contiguous float32 CUDA tensor for in-place augmentation"
            )
        arrays = [p for p in params if isinstance(p, np.ndarray)]
        flags = [p for p in params if not isinstance(p, np.ndarray)]
        arrays = _checked_intensity_params(op, image, active_u8, arrays, flags)
        dev = _device_params(image, active_u8, *arrays)
        args: list[Any] = [image.data_ptr(), list(image.shape), *[_ptr(t) for t in dev], *flags]
        if op in ("blur", "lowres", "contrast", "gamma"):
            ws = _workspace(image, op)
            args.append(ws.data_ptr())
        with on_device_of(image):
            getattr(kernels, f"augment_{op}")(*args, _current_stream(image))
        return
    getattr(core, f"augment_{op}")(image, active_u8, *params)


def augment_coordinates(
    out_shape: tuple[int, int, int], maps: np.ndarray, coef: np.ndarray | None
) -> np.ndarray:
    """(N, 3, z, y, x) float32 source positions of every output voxel, computed on the CPU by the
    per-voxel function the CUDA spatial kernel uses (64-tap B-spline; for tests and inspection)."""
    return np.asarray(
        core.augment_coordinates(
            list(out_shape),
            np.ascontiguousarray(maps, dtype=np.float32),
            None if coef is None else np.ascontiguousarray(coef, dtype=np.float32),
        )
    )


def augment_bias_log(shape: tuple[int, int, int], coef: np.ndarray, order: int) -> np.ndarray:
    """Log of the bias field (z, y, x) float32 as the CUDA kernel evaluates it (direct sum)."""
    return np.asarray(
        core.augment_bias_log(list(shape), np.ascontiguousarray(coef, dtype=np.float32), int(order))
    )


# ---- fused soft-Dice loss (fastseg.nn over cpp/src/loss) ----
# logits (N, C, V) (V = the flattened spatial axes): float32/float64 NumPy (OpenMP kernels) or a
# CUDA tensor of float16, bfloat16, float32 or float64 (CUDA kernels on the current stream); target
# on the same device: an integer label map (N, V), or with sigmoid a uint8 0/1 mask (N, C, V).
# label_offset: class c of a label map is label c + label_offset.

DICE_SUMS = 5  # per (sample, class): Σpt, Σp, Σp², Σt, cross-entropy
DICE_GRADS = 4  # their gradients, less Σt's: d/dΣpt, d/dΣp, d/dΣp², d/dcross-entropy


def _dtype_name(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


def _logits_and_target(x: Any, t: Any) -> list[Any]:
    """The kernels' first four arguments: logits pointer and dtype, target pointer and dtype."""
    return [x.data_ptr(), _dtype_name(x), t.data_ptr(), _dtype_name(t)]


def _cuda_dice_args(logits: Any, target: Any) -> tuple[Any, Any, list[int]]:
    if device_of(target) != "cuda" or target.device != logits.device:
        raise InputError(f"target: expected a tensor on {logits.device} like logits")
    if logits.dim() != 3:
        raise InputError(f"logits: expected shape (N, C, V), got {tuple(logits.shape)}")
    # As the CPU binding: the kernels read (N, V) labels or an (N, C, V) uint8 mask.
    n, c, v = (int(s) for s in logits.shape)
    if target.dim() == 3:
        if tuple(target.shape) != (n, c, v) or _dtype_name(target) != "uint8":
            raise InputError(
                f"target: expected a uint8 mask of shape {(n, c, v)} or labels of shape "
                f"{(n, v)}, got {_dtype_name(target)} of shape {tuple(target.shape)}"
            )
    elif tuple(target.shape) != (n, v):
        raise InputError(
            f"target: expected labels of shape {(n, v)} for logits {(n, c, v)}, "
            f"got {tuple(target.shape)}"
        )
    return logits.contiguous(), target.contiguous(), [n, c, v]


def dice_sums(
    logits: Any, target: Any, *, sigmoid: bool, with_ce: bool, label_offset: int = 0
) -> Any:
    """Sums (N, C, 5) float64 per (sample, class), on logits' device, in one pass over logits.

    p is the softmax over C (or the sigmoid per channel), t the one-hot target; the cross-entropy
    sum (with ``with_ce``, else 0) is the softmax cross-entropy of the voxels labelled c, or the
    binary cross-entropy with logits of channel c. The CPU path raises InputError for labels
    outside ``[0, label_offset + C)`` (found in the same pass); the CUDA path leaves them out of
    every class (callers check the range).
    """
    if device_of(logits) == "cuda":
        kernels = require_cuda_kernels()
        x, t, shape = _cuda_dice_args(logits, target)
        sums, workspace = _dice_sum_buffers(kernels, x, shape)
        with on_device_of(x):
            kernels.dice_sums(
                *_logits_and_target(x, t),
                shape,
                bool(sigmoid),
                bool(with_ce),
                t.dim() == 3,
                int(label_offset),
                workspace.data_ptr(),
                sums.data_ptr(),
                _current_stream(x),
            )
        return sums
    x_np, t_np = host_array(logits), host_array(target)
    if x_np.ndim != 3:
        raise InputError(f"logits: expected shape (N, C, V), got {x_np.shape}")
    sums_np = np.empty((*x_np.shape[:2], DICE_SUMS), dtype=np.float64)
    invalid = int(
        core.dice_sums(x_np, t_np, sums_np, bool(sigmoid), bool(with_ce), int(label_offset))
    )
    _refuse_invalid_labels(invalid, x_np, t_np, label_offset)
    return sums_np


def _dice_sum_buffers(kernels: Any, x: Any, shape: Any) -> tuple[Any, Any]:
    """Device tensors for the CUDA sums: the (N, C, 5) float64 sums and the kernels' workspace."""
    import torch

    sums = torch.empty((*shape[:2], DICE_SUMS), dtype=torch.float64, device=x.device)
    doubles = max(int(kernels.dice_workspace_doubles(shape)), 1)
    return sums, torch.empty(doubles, dtype=torch.float64, device=x.device)


def _refuse_invalid_labels(invalid: int, x_np: np.ndarray, t_np: np.ndarray, offset: int) -> None:
    if invalid:
        top = int(offset) + x_np.shape[1] - 1
        raise InputError(
            f"target: labels must lie in [0, {top}] for {x_np.shape[1]} classes, got {invalid} "
            f"voxels outside, values in [{t_np.min()}, {t_np.max()}]"
        )


def dice_backward(
    logits: Any, target: Any, grads: Any, *, sigmoid: bool, label_offset: int = 0
) -> Any:
    """dL/dlogits (N, C, V) in logits' dtype from ``grads`` (N, C, 4) float64, the gradients of
    :func:`dice_sums`' Σpt, Σp, Σp² and cross-entropy; one pass, recomputing the softmax."""
    if device_of(logits) == "cuda":
        import torch

        kernels = require_cuda_kernels()
        x, t, shape = _cuda_dice_args(logits, target)
        g = grads.to(device=x.device, dtype=torch.float64).contiguous()
        if tuple(g.shape) != (*shape[:2], DICE_GRADS):
            raise InputError(
                f"grads: expected shape {(*shape[:2], DICE_GRADS)}, got {tuple(g.shape)}"
            )
        out = torch.empty_like(x)
        with on_device_of(x):
            kernels.dice_backward(
                *_logits_and_target(x, t),
                shape,
                bool(sigmoid),
                t.dim() == 3,
                int(label_offset),
                g.data_ptr(),
                out.data_ptr(),
                _current_stream(x),
            )
        return out
    x_np, t_np = host_array(logits), host_array(target)
    g_np = np.ascontiguousarray(grads, dtype=np.float64)
    out_np = np.empty_like(x_np)
    core.dice_backward(x_np, t_np, g_np, out_np, bool(sigmoid), int(label_offset))
    return out_np


# The loss itself (cpp/include/fastseg/dice_loss.h) from the sums. ``options`` is the tuple
# (squared, include_background, batch_dice, smooth_nr, smooth_dr, dice_weight, ce_weight);
# ``weight`` None or C float64 class weights on logits' device.


def dice_loss_forward(
    logits: Any,
    target: Any,
    weight: Any,
    *,
    sigmoid: bool,
    with_ce: bool,
    label_offset: int,
    options: tuple[bool, bool, bool, float, float, float, float],
    loss_double: bool = True,
) -> tuple[Any, Any]:
    """(sums (N, C, 5) float64, loss) of logits (N, C, V): :func:`dice_sums` and the loss.

    CUDA: three launches (sums, their reduction, the loss) on the current stream, no host sync;
    the loss is a 0-dim float64 (``loss_double``) or float32 tensor. CPU: the loss is a float.
    """
    if device_of(logits) == "cuda":
        import torch

        kernels = require_cuda_kernels()
        x, t, shape = _cuda_dice_args(logits, target)
        sums, workspace = _dice_sum_buffers(kernels, x, shape)
        loss = torch.empty(
            (), dtype=torch.float64 if loss_double else torch.float32, device=x.device
        )
        with on_device_of(x):
            kernels.dice_loss_forward(
                *_logits_and_target(x, t),
                shape,
                bool(sigmoid),
                bool(with_ce),
                t.dim() == 3,
                int(label_offset),
                workspace.data_ptr(),
                sums.data_ptr(),
                0 if weight is None else weight.data_ptr(),
                options,
                loss.data_ptr(),
                bool(loss_double),
                _current_stream(x),
            )
        return sums, loss
    x_np, t_np = host_array(logits), host_array(target)
    if x_np.ndim != 3:
        raise InputError(f"logits: expected shape (N, C, V), got {x_np.shape}")
    sums_np = np.empty((*x_np.shape[:2], DICE_SUMS), dtype=np.float64)
    invalid, value = core.dice_loss_forward(
        x_np, t_np, sums_np, weight, bool(sigmoid), bool(with_ce), int(label_offset), options
    )
    _refuse_invalid_labels(int(invalid), x_np, t_np, label_offset)
    return sums_np, float(value)


def dice_loss_backward(
    logits: Any,
    target: Any,
    sums: Any,
    weight: Any,
    grad_loss: Any,
    *,
    sigmoid: bool,
    with_ce: bool,
    label_offset: int,
    options: tuple[bool, bool, bool, float, float, float, float],
) -> Any:
    """dL/dlogits (N, C, V) in logits' dtype, ``grad_loss`` (dL/dloss) times the gradient of
    :func:`dice_loss_forward`'s loss. CUDA: two launches (the sums' gradients, one thread per
    sample, then the backward pass); ``grad_loss`` is a 0-dim float32 or float64 tensor read on
    the device. CPU: ``grad_loss`` is a float."""
    if device_of(logits) == "cuda":
        import torch

        kernels = require_cuda_kernels()
        x, t, shape = _cuda_dice_args(logits, target)
        if tuple(sums.shape) != (*shape[:2], DICE_SUMS) or sums.dtype != torch.float64:
            raise InputError(
                f"sums: expected float64 of shape {(*shape[:2], DICE_SUMS)}, "
                f"got {sums.dtype} of shape {tuple(sums.shape)}"
            )
        g = grad_loss
        if g.dtype not in (torch.float32, torch.float64) or g.device != x.device:
            g = g.to(device=x.device, dtype=torch.float64)
        g = g.contiguous()
        out = torch.empty_like(x)
        grads = torch.empty((*shape[:2], DICE_GRADS), dtype=torch.float64, device=x.device)
        with on_device_of(x):
            kernels.dice_loss_backward(
                *_logits_and_target(x, t),
                shape,
                bool(sigmoid),
                bool(with_ce),
                t.dim() == 3,
                int(label_offset),
                sums.contiguous().data_ptr(),
                0 if weight is None else weight.data_ptr(),
                options,
                g.data_ptr(),
                g.dtype == torch.float64,
                grads.data_ptr(),
                out.data_ptr(),
                _current_stream(x),
            )
        return out
    x_np, t_np = host_array(logits), host_array(target)
    out_np = np.empty_like(x_np)
    core.dice_loss_backward(
        x_np,
        t_np,
        np.ascontiguousarray(sums, dtype=np.float64),
        weight,
        out_np,
        bool(sigmoid),
        bool(with_ce),
        int(label_offset),
        options,
        float(grad_loss),
    )
    return out_np


def dice_loss_from_sums(
    sums: np.ndarray,
    weight: np.ndarray | None,
    *,
    sigmoid: bool,
    with_ce: bool,
    voxels: int,
    options: tuple[bool, bool, bool, float, float, float, float],
    scale: float = 1.0,
) -> tuple[float, np.ndarray]:
    """(loss, ``scale`` * dloss/d(Σpt, Σp, Σp², cross-entropy) (N, C, 4)) from sums (N, C, 5)
    float64, on the host: the math the fused kernels run (fastseg/dice_loss.h)."""
    w = None if weight is None else np.ascontiguousarray(weight, dtype=np.float64)
    value, grads = core.dice_loss_from_sums(
        np.ascontiguousarray(sums, dtype=np.float64),
        w,
        bool(sigmoid),
        bool(with_ce),
        int(voxels),
        options,
        float(scale),
    )
    return float(value), np.asarray(grads)
