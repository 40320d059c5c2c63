"""``fastseg.info()``: what was compiled, which device runs, and which peer libraries are present."""

from __future__ import annotations

import importlib.metadata
from typing import Any

OPTIONAL_PACKAGES = (
    "torch",
    "zarr",
    "nibabel",
    "SimpleITK",
    "pydicom",
    "dask",
    "nvidia-dali-cuda130",
)


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torch_gpu() -> str | None:
    """Name of the first GPU torch sees, or None (no torch, a CPU build, or no device)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return str(torch.cuda.get_device_name(0))


def info() -> dict[str, Any]:
    """Version, native build (compiler, OpenMP threads, CUDA architectures), visible GPU, peers."""
    from fastseg import __version__, _native

    build = _native.build_info()
    gpu_name = _torch_gpu()
    device = "cuda" if (build["cuda_devices"] > 0 or gpu_name) else "cpu"
    return {
        "fastseg": __version__,
        "native": build,
        "gpu_visible": device == "cuda",
        "gpu_name": gpu_name,
        "device": device,
        "packages": {name: _package_version(name) for name in OPTIONAL_PACKAGES},
    }


def format_info(data: dict[str, Any]) -> str:
    """The report ``fastseg info`` prints, one fact per line."""
    native = data["native"]
    cuda = (
        f"yes (sm_{', sm_'.join(native['cuda_architectures'])}; toolkit {native['cuda_toolkit']})"
        if native["cuda_compiled"]
        else "no (built without a CUDA toolkit)"
    )
    lines = [
        f"fastseg          {data['fastseg']}",
        f"native module    fastseg._core {native['version']}, {native['compiler']}",
        f"OpenMP threads   {native['openmp_threads']} (OpenMP {native['openmp_version']})",
        f"CUDA kernels     {cuda}",
        f"GPU visible      {'yes: ' + str(data['gpu_name'] or 'CUDA device') if data['gpu_visible'] else 'no'}",
        f"device used      {data['device']}",
    ]
    for name, version in data["packages"].items():
        lines.append(f"{name:<16} {version or 'not installed'}")
    return "\n".join(lines)
