"""The metrics of one pair on a torch device (a GPU): the same numbers as the native CPU engine.

Every step is the CPU engine's (cpp/include/fastseg/metrics.h), written with tensor operations so
that it runs where the label maps already are:

- per label, A = pred == label and M = ref == label, counted and cut to B = bbox(A ∪ M);
- voxel surfaces ∂A, ∂M (6-neighbourhood, outside B counts as outside: B holds both masks);
- exact squared Euclidean distance transforms to ∂M and ∂A over B, separable and in float64:
  along z the distance to the nearest feature of the column, then along y and x the minimum over
  the line of ``D(q) + (s (i − q))²`` — the value the lower envelope of parabolas gives, here
  taken over all q of a line at once (O(n²) per line, chunked to bound memory; the lines of B are
  short); sums formed ((z) + (y)) + (x) as on the CPU;
- hd, hd95 (both conventions), assd from the distances at ∂A and ∂M, avd from the distances of
  A \\ M to ∂M and of M \\ A to ∂A (the nearest voxel of a set from outside it lies on its
  surface); the percentiles on the host with NumPy's linear interpolation, as the CPU engine;
- nsd as DeepMind's surface-distance: 2x2x2 neighbour codes on the corner grid of B (bit of the
  voxel at offset (a − 1, b − 1, c − 1) is 128 >> (4a + 2b + c)), surfel areas from the native
  table, a corner counts when a border corner of the other surface lies within the tolerance
  (an exact transform of the corner grid).

Label maps are ``(z, y, x)`` integer tensors; spacing ``(z, y, x)`` mm; distances in mm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fastseg import _native

MAX_LINE_ELEMENTS = 1 << 25
"""Largest (lines × n × n) block of one transform pass (256 MiB of float64)."""


def squared_edt(features: torch.Tensor, spacing: Sequence[float]) -> torch.Tensor:
    """Squared distance (mm²) of every voxel of a ``(z, y, x)`` bool tensor's grid to its nearest
    True voxel; +inf everywhere without any. float64, on the tensor's device."""
    sz, sy, sx = (float(s) for s in spacing)
    inf = torch.tensor(math.inf, dtype=torch.float64, device=features.device)
    initial = torch.where(
        features, torch.zeros((), dtype=torch.float64, device=features.device), inf
    )
    d = _line_pass(initial, 0, sz)
    d = _line_pass(d, 1, sy)
    return _line_pass(d, 2, sx)


def _line_pass(d: torch.Tensor, axis: int, s: float) -> torch.Tensor:
    """``out[i] = min_q d[q] + (s (i − q))²`` along ``axis`` (an all-inf line stays inf)."""
    n = d.shape[axis]
    moved = d.movedim(axis, -1)
    lines = moved.reshape(-1, n)
    offsets = torch.arange(n, device=d.device, dtype=torch.float64)
    t = s * (offsets[:, None] - offsets[None, :])  # (i, q)
    cost = t * t
    out = torch.empty_like(lines)
    step = max(1, MAX_LINE_ELEMENTS // max(1, n * n))
    for start in range(0, lines.shape[0], step):
        block = lines[start : start + step]
        out[start : start + step] = (block[:, None, :] + cost[None]).amin(dim=2)
    return out.reshape(moved.shape).movedim(-1, axis)


def voxel_surface(mask: torch.Tensor) -> torch.Tensor:
    """True on the voxels of a ``(z, y, x)`` bool tensor with a 6-neighbour outside it (outside
    the array counts as outside)."""
    p = torch.nn.functional.pad(mask[None, None].to(torch.uint8), (1, 1, 1, 1, 1, 1))[0, 0].bool()
    inner = (
        p[:-2, 1:-1, 1:-1]
        & p[2:, 1:-1, 1:-1]
        & p[1:-1, :-2, 1:-1]
        & p[1:-1, 2:, 1:-1]
        & p[1:-1, 1:-1, :-2]
        & p[1:-1, 1:-1, 2:]
    )
    return mask & ~inner


def corner_codes(mask: torch.Tensor) -> torch.Tensor:
    """The 8-bit 2x2x2 neighbour code of every corner of a ``(z, y, x)`` bool tensor's grid,
    shape ``(z + 1, y + 1, x + 1)`` (int64), as ``fastseg._core.corner_codes`` numbers them."""
    p = torch.nn.functional.pad(mask[None, None].to(torch.int64), (1, 1, 1, 1, 1, 1))[0, 0]
    nz, ny, nx = mask.shape
    codes = torch.zeros((nz + 1, ny + 1, nx + 1), dtype=torch.int64, device=mask.device)
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                bit = 128 >> (4 * a + 2 * b + c)
                codes += p[a : a + nz + 1, b : b + ny + 1, c : c + nx + 1] * bit
    return codes


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else 0.0


def _label_row(
    pred: torch.Tensor,
    ref: torch.Tensor,
    label: int,
    spacing: Sequence[float],
    pooled: bool,
    tolerance: float,
    areas: torch.Tensor | None,
) -> dict[str, float]:
    a_full, m_full = pred == label, ref == label
    na, nm = int(a_full.sum()), int(m_full.sum())
    inter = int((a_full & m_full).sum())
    row = {"label": label, "pred_voxels": na, "ref_voxels": nm, "inter_voxels": inter}
    want_nsd = not math.isnan(tolerance)
    if na == 0 and nm == 0:
        nsd = 1.0 if want_nsd else math.nan
        return {**row, "dice": 1.0, "jaccard": 1.0, "vs": 1.0, "hd": 0.0, "hd95": 0.0,
                "avd": 0.0, "assd": 0.0, "nsd": nsd}  # fmt: skip
    a, m, i = float(na), float(nm), float(inter)
    row.update(dice=2.0 * i / (a + m), jaccard=i / (a + m - i), vs=1.0 - abs(a - m) / (a + m))
    if na == 0 or nm == 0:
        nsd = 0.0 if want_nsd else math.nan
        return {**row, "hd": math.inf, "hd95": math.inf, "avd": math.inf, "assd": math.inf,
                "nsd": nsd}  # fmt: skip

    either = a_full | m_full
    box = []
    for axis in range(3):
        other = tuple(k for k in range(3) if k != axis)
        hits = torch.nonzero(either.any(dim=other[1]).any(dim=other[0])).flatten()
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    A, M = a_full[tuple(box)], m_full[tuple(box)]
    surf_a, surf_m = voxel_surface(A), voxel_surface(M)
    to_m = squared_edt(surf_m, spacing)  # d²(., ∂M)
    to_a = squared_edt(surf_a, spacing)  # d²(., ∂A)
    a_to_m = torch.sqrt(to_m[surf_a]).cpu().numpy()
    m_to_a = torch.sqrt(to_a[surf_m]).cpu().numpy()
    hd = max(float(a_to_m.max()), float(m_to_a.max()))
    if pooled:
        hd95 = _percentile(np.concatenate([a_to_m, m_to_a]), 95)
    else:
        hd95 = max(_percentile(a_to_m, 95), _percentile(m_to_a, 95))
    assd = (float(a_to_m.mean()) + float(m_to_a.mean())) / 2.0
    avd_a = float(torch.sqrt(to_m[A & ~M]).sum()) / a
    avd_m = float(torch.sqrt(to_a[M & ~A]).sum()) / m
    row.update(hd=hd, hd95=hd95, assd=assd, avd=max(avd_a, avd_m))
    row["nsd"] = _surface_dice(A, M, spacing, tolerance, areas) if want_nsd else math.nan
    return row


def _surface_dice(
    A: torch.Tensor,
    M: torch.Tensor,
    spacing: Sequence[float],
    tolerance: float,
    areas: torch.Tensor | None,
) -> float:
    assert areas is not None
    codes_a, codes_m = corner_codes(A), corner_codes(M)
    border_a = (codes_a != 0) & (codes_a != 255)
    border_m = (codes_m != 0) & (codes_m != 255)
    area_a, area_m = areas[codes_a[border_a]], areas[codes_m[border_m]]
    near_a = torch.sqrt(squared_edt(border_m, spacing)[border_a]) <= tolerance
    near_m = torch.sqrt(squared_edt(border_a, spacing)[border_m]) <= tolerance
    total = float(area_a.sum()) + float(area_m.sum())
    return (float(area_a[near_a].sum()) + float(area_m[near_m].sum())) / total


def pair_metrics(
    pred: Any,
    ref: Any,
    spacing: Sequence[float],
    labels: Sequence[int] | None,
    hd95: str,
    nsd_tolerance: float,
    device: str | torch.device,
) -> dict[str, np.ndarray]:
    """The native engine's result dict (``label``, ``pred_voxels``, ``ref_voxels``,
    ``inter_voxels`` and the metrics, one entry per label) for one pair of ``(z, y, x)`` label
    maps (NumPy arrays or tensors), computed on ``device``. ``labels`` None: every non-zero label
    of either map; ``hd95`` ``"max_directed"``/``"pooled"``; ``nsd_tolerance`` NaN for none."""
    p = torch.as_tensor(pred).to(device=device, dtype=torch.int64, non_blocking=True)
    r = torch.as_tensor(ref).to(device=device, dtype=torch.int64, non_blocking=True)
    if labels is None:
        present = torch.unique(torch.cat([torch.unique(p), torch.unique(r)]))
        wanted = [int(v) for v in present.tolist() if v != 0]
    else:
        wanted = [int(v) for v in labels]
    areas = None
    if not math.isnan(nsd_tolerance):
        table = _native.surfel_areas(tuple(float(s) for s in spacing))  # type: ignore[arg-type]
        areas = torch.as_tensor(np.asarray(table), dtype=torch.float64, device=p.device)
    rows = [
        _label_row(p, r, label, spacing, hd95 == "pooled", nsd_tolerance, areas) for label in wanted
    ]
    keys = ("label", "pred_voxels", "ref_voxels", "inter_voxels")
    out = {k: np.array([row[k] for row in rows], dtype=np.int64) for k in keys}
    for name in ("dice", "jaccard", "vs", "hd", "hd95", "avd", "assd", "nsd"):
        out[name] = np.array([row[name] for row in rows], dtype=np.float64)
    return out
