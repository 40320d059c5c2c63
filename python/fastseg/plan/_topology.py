"""U-Net topology for a patch: per-axis pooling (nnU-Net's rule), widths, and the cost model
(activation memory and convolution FLOPs) the planner fits to a budget.

Shapes and spacings are ``(z, y, x)`` voxels / mm.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_EDGE = 4
"""Smallest feature-map edge at the bottleneck (nnU-Net's ``featuremap_min_edge_length``)."""
MAX_POOLS = 5
"""At most this many poolings per axis (nnU-Net caps 3D networks at 6-7 stages)."""
ACTIVATION_TENSORS = 13
"""Feature maps of one level kept for the backward pass, in units of ``width x voxels``:
encoder 2 x (conv, norm, activation), decoder transposed conv + concatenation (2x) + 2 x 3."""


@dataclass(frozen=True)
class Topology:
    """Strides per level below the first (``[sz, sy, sx]``), the divisor every patch axis must
    have, and the feature-map shape of each level."""

    strides: list[list[int]]
    divisor: tuple[int, int, int]
    level_shapes: list[tuple[int, int, int]]


def topology(patch: Sequence[int], spacing: Sequence[float]) -> Topology:
    """nnU-Net's ``get_pool_and_conv_props``: at each level pool (stride 2) every axis whose
    current spacing is less than twice the finest current spacing and whose size stays
    ``>= MIN_EDGE`` after pooling; anisotropic (coarse) axes are pooled only once the others
    have caught up. Axes of size 1 (2D patches) are never pooled."""
    size = [float(v) for v in patch]
    sp = [float(v) for v in spacing]
    counts = [0, 0, 0]
    strides: list[list[int]] = []
    shapes = [(int(patch[0]), int(patch[1]), int(patch[2]))]
    while True:
        candidates = [a for a in range(3) if size[a] >= 2 * MIN_EDGE and counts[a] < MAX_POOLS]
        if not candidates:
            break
        finest = min(sp[a] for a in candidates)
        axes = [a for a in candidates if sp[a] / finest < 2]
        if len(axes) == 1 and size[axes[0]] < 3 * MIN_EDGE:
            break  # nnU-Net: a lone axis is pooled only while it stays >= 1.5 x the minimum
        step = [2 if a in axes else 1 for a in range(3)]
        strides.append(step)
        for a in axes:
            size[a] /= 2
            sp[a] *= 2
            counts[a] += 1
        last = shapes[-1]
        shapes.append((last[0] // step[0], last[1] // step[1], last[2] // step[2]))
    divisor = (2 ** counts[0], 2 ** counts[1], 2 ** counts[2])
    return Topology(strides, divisor, shapes)


def round_up(patch: Sequence[int], divisor: Sequence[int]) -> tuple[int, int, int]:
    """Each axis rounded up to a multiple of ``divisor``."""
    out = [int(math.ceil(p / d) * d) for p, d in zip(patch, divisor, strict=True)]
    return (out[0], out[1], out[2])


def fit_topology(
    patch: Sequence[int], spacing: Sequence[float]
) -> tuple[tuple[int, int, int], Topology]:
    """The patch rounded up so every pooling divides it, and its topology (repeated until the
    topology of the rounded patch gives the same divisor)."""
    current = (int(patch[0]), int(patch[1]), int(patch[2]))
    for _ in range(8):
        topo = topology(current, spacing)
        rounded = round_up(current, topo.divisor)
        if rounded == current:
            return current, topo
        current = rounded
    topo = topology(current, spacing)
    return round_up(current, topo.divisor), topo


def widths(levels: int, base: int, cap: int) -> list[int]:
    """``base * 2**k`` per level, capped at ``cap``."""
    return [min(base * 2**k, cap) for k in range(levels)]


def activation_bytes(
    topo: Topology, feature_widths: Sequence[int], bytes_per_value: float
) -> float:
    """Activation memory of one sample for a training step (forward maps kept for backward)."""
    total = 0.0
    for shape, w in zip(topo.level_shapes, feature_widths, strict=True):
        total += math.prod(shape) * w * ACTIVATION_TENSORS
    return total * bytes_per_value


def parameter_count(feature_widths: Sequence[int], in_channels: int, dims: int) -> int:
    """Weights of the U-Net (two 3^d convolutions per level and decoder stage)."""
    k = 3**dims
    n = 0
    prev = in_channels
    for w in feature_widths:
        n += k * prev * w + k * w * w
        prev = w
    for lo, hi in itertools.pairwise(feature_widths):
        n += 2**dims * hi * lo + k * 2 * lo * lo + k * lo * lo
    return n


def forward_flops(
    topo: Topology, feature_widths: Sequence[int], in_channels: int, dims: int
) -> float:
    """Multiply-adds x 2 of one sample's forward pass (convolutions only)."""
    k = 3**dims
    total = 0.0
    prev = in_channels
    for shape, w in zip(topo.level_shapes, feature_widths, strict=True):
        v = math.prod(shape)
        total += 2 * k * v * (prev * w + w * w)
        prev = w
    for shape, lo in zip(topo.level_shapes[:-1], feature_widths[:-1], strict=True):
        v = math.prod(shape)
        total += 2 * k * v * (2 * lo * lo + lo * lo)
    return total
