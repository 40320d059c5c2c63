"""The one door to the native module ``fastseg._core``.

Turns NumPy arrays and CUDA tensors into the pointers, shapes and streams ``_core`` takes, and says
which device runs. No other module imports ``_core``. CUDA tensors are recognised by duck typing
(``.is_cuda``/``.data_ptr()``), so importing this module never imports torch.
"""

from __future__ import annotations

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


def _current_stream(tensor: Any) -> int:
    import torch  # a CUDA tensor exists, so torch is importable

    return int(torch.cuda.current_stream(tensor.device).cuda_stream)


def window(image: Any, lo: float, hi: float, offset: float, scale: float) -> Any:
    """``(clip(image, lo, hi) - offset) * scale`` as float32, same shape, on image's device.

    NumPy input of any numeric dtype runs the OpenMP kernel; a CUDA tensor runs the CUDA kernel on
    the current stream (non-float32 tensors are converted to float32 first).
    """
    if device_of(image) == "cuda":
        kernels = require_cuda_kernels()
        src = image.float().contiguous()
        out = src.new_empty(src.shape)
        kernels.window(src.data_ptr(), out.data_ptr(), src.numel(), float(lo), float(hi),
                       float(offset), float(scale), _current_stream(src))
        return out
    src_np = np.ascontiguousarray(image)
    if src_np.dtype == np.int8 or src_np.dtype == np.uint32 or src_np.dtype == np.int64:
        src_np = src_np.astype(np.float64)
    elif src_np.dtype.kind not in "iuf" or src_np.dtype.itemsize > 8:
        raise InputError(f"image: expected a numeric array, got dtype {src_np.dtype}")
    if src_np.dtype == np.float16:
        src_np = src_np.astype(np.float32)
    out_np = np.empty(src_np.shape, dtype=np.float32)
    core.window(src_np, out_np, float(lo), float(hi), float(offset), float(scale))
    return out_np
