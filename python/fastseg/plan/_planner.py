"""``fastseg plan STORE``: a training configuration proposed from the store's fingerprint, the
way nnU-Net's ExperimentPlanner proposes its 3d_fullres and 2d configurations.

The result has the sections of the training configuration (``model``, ``data``, ``schedule``,
``training``; only keys the trainer knows), plus ``rationale`` (human-readable reasons) and
``alternatives`` (the 2D configuration), both ignored by the trainer. It is stored as the
store's root attribute ``training_plan`` (:meth:`fastseg.store.Store.write_training_plan`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastseg.errors import InputError
from fastseg.plan._mirroring import plan_mirror_axes
from fastseg.plan._topology import (
    Topology,
    activation_bytes,
    fit_topology,
    forward_flops,
    parameter_count,
    widths,
)

DEVICES = ("cpu", "cuda")
GPU_MEMORY_GB = 8.0
"""Default GPU memory budget: nnU-Net's reference (a patch that trains in 8 GB fits most GPUs)."""
CPU_MEMORY_GB = 4.0
"""Default memory budget of CPU training."""
CPU_FLOPS_PER_ITERATION = 5e10
"""CPU compute budget of one training iteration (forward + backward FLOPs, ~1-2 s on 2 cores),
so that a CPU time budget of ~40 min still gives ~1000-2000 iterations."""
CPU_TIME_BUDGET_S = 2400
GPU_TIME_BUDGET_S = 3600
GPU_INITIAL_VOXELS = 256**3
"""nnU-Net starts the 3D patch search from a 256^3-voxel patch (aspect from the spacing)."""
CPU_INITIAL_VOXELS = 128**3
GPU_INITIAL_PIXELS_2D = 2048**2
CPU_INITIAL_PIXELS_2D = 512**2
MIN_BATCH = 2
MAX_DATASET_FRACTION = 0.05
"""A batch covers at most this fraction of the dataset's voxels (nnU-Net's cap)."""
OVERSAMPLE_FOREGROUND = 0.33
GPU_WIDTHS = {3: (32, 320), 2: (32, 512)}
CPU_WIDTHS = {3: (16, 128), 2: (16, 128)}
AMP_BYTES = 2.5
"""Bytes per activation value under mixed precision (half maps plus some float32 ones)."""
FP32_BYTES = 4.0
GPU_OVERHEAD_GB = 0.75
"""cuDNN workspace and allocator slack reserved on the GPU."""


def _fingerprint(store: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Stored shapes ``(n, 3)``, stored spacings ``(n, 3)`` and channel count of ``store``."""
    cases = store.cases
    if not cases:
        raise InputError(f"{store.url}: the store has no complete cases to plan from")
    shapes = np.array([store[c].shape for c in cases], dtype=np.float64)
    spacings = np.array([store[c].spacing for c in cases], dtype=np.float64)
    return shapes, spacings, store[cases[0]].channels


def _initial_patch(
    spacing: np.ndarray, median: np.ndarray, voxels: float, dims: int
) -> tuple[int, int, int]:
    """A patch of about ``voxels`` voxels (pixels in 2D) with the aspect of ``1 / spacing``
    (isotropic in mm), clipped to the median case shape."""
    if dims == 2:
        inv = 1.0 / spacing[1:]
        size = inv * (voxels / float(np.prod(inv))) ** 0.5
        patch = np.minimum(np.round(size), median[1:])
        return (1, int(patch[0]), int(patch[1]))
    inv = 1.0 / spacing
    size = inv * (voxels / float(np.prod(inv))) ** (1.0 / 3.0)
    patch = np.minimum(np.round(size), median)
    return (int(patch[0]), int(patch[1]), int(patch[2]))


class _Budget:
    """Memory (and on CPU compute) of one training iteration of a configuration."""

    def __init__(self, device: str, memory_gb: float, in_channels: int) -> None:
        self.device = device
        self.memory = memory_gb * 2**30
        self.in_channels = in_channels
        self.bytes_per_value = AMP_BYTES if device == "cuda" else FP32_BYTES

    def widths(self, dims: int, levels: int) -> list[int]:
        base, cap = (GPU_WIDTHS if self.device == "cuda" else CPU_WIDTHS)[dims]
        return widths(levels, base, cap)

    def per_sample(self, topo: Topology, w: Sequence[int], dims: int) -> tuple[float, float]:
        """(activation bytes, forward+backward FLOPs) of one sample."""
        mem = activation_bytes(topo, w, self.bytes_per_value)
        flops = 3.0 * forward_flops(topo, w, self.in_channels, dims)
        return mem, flops

    def fixed(self, w: Sequence[int], dims: int) -> float:
        """Weights, gradients and two optimizer moments (float32), plus GPU slack."""
        params = parameter_count(w, self.in_channels, dims)
        slack = GPU_OVERHEAD_GB * 2**30 if self.device == "cuda" else 0.0
        return 16.0 * params + slack

    def max_batch(self, topo: Topology, w: Sequence[int], dims: int) -> int:
        """Largest batch that fits memory (and on CPU the compute budget)."""
        mem, flops = self.per_sample(topo, w, dims)
        room = self.memory - self.fixed(w, dims)
        n = math.floor(room / mem) if room > 0 else 0
        if self.device == "cpu":
            n = min(n, math.floor(CPU_FLOPS_PER_ITERATION / flops))
        return n


def _configure(
    dims: int,
    spacing: np.ndarray,
    median: np.ndarray,
    total_voxels: float,
    budget: _Budget,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(model section, data section, reasons) of the 3D or 2D configuration."""
    gpu = budget.device == "cuda"
    base, cap_width = (GPU_WIDTHS if gpu else CPU_WIDTHS)[dims]
    if dims == 3:
        voxels = GPU_INITIAL_VOXELS if gpu else CPU_INITIAL_VOXELS
    else:
        voxels = GPU_INITIAL_PIXELS_2D if gpu else CPU_INITIAL_PIXELS_2D
    start = _initial_patch(spacing, median, voxels, dims)
    patch, topo = fit_topology(start, spacing.tolist())
    w = budget.widths(dims, len(topo.strides) + 1)
    shrunk = 0
    while budget.max_batch(topo, w, dims) < MIN_BATCH:
        # nnU-Net: shrink the axis that is largest relative to the median shape, by its divisor
        ratio = [patch[a] / median[a] if patch[a] > 1 else 0.0 for a in range(3)]
        axis = int(np.argmax(ratio))
        if patch[axis] - topo.divisor[axis] < 1 or patch[axis] <= 8:
            break
        reduced = list(patch)
        reduced[axis] -= topo.divisor[axis]
        patch, topo = fit_topology(reduced, spacing.tolist())
        w = budget.widths(dims, len(topo.strides) + 1)
        shrunk += 1
    fit = budget.max_batch(topo, w, dims)
    cap = max(MIN_BATCH, math.floor(MAX_DATASET_FRACTION * total_voxels / math.prod(patch)))
    batch = max(MIN_BATCH, min(fit, cap))
    mem, flops = budget.per_sample(topo, w, dims)
    reasons = [
        f"start patch {list(start)} (about {voxels:.0f} voxels, aspect 1/spacing, clipped to the "
        f"median stored shape {[int(v) for v in median]}), rounded up to multiples of the "
        f"pooling divisor {list(topo.divisor)} → {list(patch)}"
        + (f" after {shrunk} shrink step(s) to fit the budget" if shrunk else ""),
        f"{len(topo.strides)} pooling(s) per-axis strides {topo.strides}: an axis is pooled "
        f"while it stays >= 4 voxels and its spacing is < 2x the finest (anisotropic axes later)",
        f"widths {w} ({base}·2^k, at most {cap_width}; "
        f"{'GPU' if gpu else 'CPU: a cheaper network so training is practical on few cores'})",
        f"batch {batch}: budget allows {fit} (~{mem / 2**20:.0f} MiB activations and "
        f"{flops / 1e9:.1f} GFLOP per sample), capped at {cap} so a batch covers <= 5% of the "
        f"dataset's {total_voxels:.3g} voxels, at least {MIN_BATCH}",
    ]
    model = {
        "dimensions": dims,
        "widths": w,
        "strides": topo.strides,
        "norm": "instance",
        "residual": False,
        "deep_supervision": True,
    }
    data = {
        "patch_size": list(patch),
        "batch_size": int(batch),
        "oversample_foreground": OVERSAMPLE_FOREGROUND,
    }
    return model, data, reasons


def plan_training(
    store: Any,
    *,
    device: str = "cpu",
    memory_gb: float | None = None,
    time_budget_s: float | None = None,
) -> dict[str, Any]:
    """The training plan of ``store`` (a :class:`fastseg.store.Store` or its URL) for training on
    ``device`` (``cpu``/``cuda``) within ``memory_gb`` (default 8 GB GPU, 4 GB CPU) and
    ``time_budget_s`` seconds (default 2400 on CPU, 3600 on GPU)."""
    from fastseg.store import Store

    if device not in DEVICES:
        raise InputError(f"device: expected one of {DEVICES}, got {device!r}")
    if memory_gb is not None and not (math.isfinite(memory_gb) and memory_gb > 0):
        raise InputError(f"memory_gb: expected > 0, got {memory_gb}")
    if time_budget_s is not None and not (math.isfinite(time_budget_s) and time_budget_s > 0):
        raise InputError(f"time_budget_s: expected > 0, got {time_budget_s}")
    if isinstance(store, (str, os.PathLike)):
        store = Store.open(store)
    shapes, spacings, channels = _fingerprint(store)
    target = np.median(spacings, axis=0)
    median = np.median(shapes, axis=0)
    total = float(np.prod(shapes, axis=1).sum())
    gpu = device == "cuda"
    mem_gb = float(memory_gb) if memory_gb is not None else GPU_MEMORY_GB if gpu else CPU_MEMORY_GB
    budget = _Budget(device, mem_gb, channels)

    model3, data3, why3 = _configure(3, target, median, total, budget)
    model2, data2, why2 = _configure(2, target, median, total, budget)
    seconds = time_budget_s if time_budget_s is not None else (
        GPU_TIME_BUDGET_S if gpu else CPU_TIME_BUDGET_S
    )  # fmt: skip
    mirror_axes, mirror_why = plan_mirror_axes(store, getattr(store, "label_names", {}))
    norms = store.attrs["plan"]["preprocessing"]["normalization"]
    anisotropy = float(target.max() / target.min())
    why = {
        "dataset": f"{len(shapes)} cases, median stored shape {[int(v) for v in median]} "
        f"(z, y, x) at the store's target spacing {[float(v) for v in target]} mm "
        f"(anisotropy {anisotropy:.2f})",
        "budget": f"{device}: {mem_gb:g} GB"
        + ("" if gpu else f", {CPU_FLOPS_PER_ITERATION:.0e} FLOP per iteration"),
        "patch_size": why3[0],
        "strides": why3[1],
        "widths": why3[2],
        "batch_size": why3[3],
        "oversample_foreground": "a third of each batch is centred on foreground (nnU-Net)",
        "mirror_axes": mirror_why,
        "normalization": "as the store recorded: " + ", ".join(str(n.get("scheme")) for n in norms),
        "time_budget_s": f"{seconds:g} s of training"
        + (" (CPU default: ~40 min)" if time_budget_s is None and not gpu else ""),
        "alternatives": "2d: " + "; ".join(why2),
    }
    return {
        "model": model3,
        "data": {**data3, "workers": 4 if gpu else 1, "mirror_axes": mirror_axes},
        "schedule": {"time_budget_s": seconds, "max_iterations": None},
        "training": {"device": device},
        "alternatives": {"2d": {"model": model2, "data": {**data2, "mirror_axes": mirror_axes}}},
        "rationale": why,
    }


def write_plan(store: Any, plan: dict[str, Any]) -> None:
    """Store ``plan`` as ``store``'s root attribute ``training_plan`` (atomic)."""
    from fastseg.store import Store

    if isinstance(store, (str, os.PathLike)):
        store = Store.open(store)
    store.write_training_plan(plan)


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as readable text (sections, then the reasons)."""
    lines = []
    for section in ("model", "data", "schedule", "training"):
        lines.append(f"{section}:")
        lines += [f"  {k}: {v}" for k, v in plan[section].items()]
    for name, alt in plan.get("alternatives", {}).items():
        lines.append(f"alternative {name}:")
        lines += [f"  {s}.{k}: {v}" for s in alt for k, v in alt[s].items()]
    lines.append("rationale:")
    lines += [f"  {k}: {v}" for k, v in plan.get("rationale", {}).items()]
    return "\n".join(lines)
