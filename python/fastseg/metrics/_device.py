"""The metrics of one pair on a torch device (a GPU): the same numbers as the native CPU engine.

Every step is the CPU engine's (cpp/include/fastseg/metrics.h), written with tensor operations so
that it runs where the label maps already are:

- per label, A = pred == label and M = ref == label, counted and cut to B = bbox(A ∪ M);
- voxel surfaces ∂A, ∂M (6-neighbourhood, outside B counts as outside: B holds both masks);
- exact squared Euclidean distance transforms to ∂M and ∂A over B, separable and in float64:
  along z, then y, then x, the minimum over the line of ``D(q) + (s (i − q))²`` (sums formed
  ((z) + (y)) + (x) as on the CPU): on a GPU with fastseg's CUDA kernels by the CPU's own
  lower-envelope routine (fastseg/edt_line.h), one thread per line; elsewhere over all q of a
  line at once with tensor operations (O(n²) per line, chunked to bound memory);
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
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fastseg import _native

MAX_LINE_ELEMENTS = 1 << 25
"""Largest (lines × n × n) block of one transform pass (256 MiB of float64)."""


def squared_edt(features: torch.Tensor, spacing: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Squared distance (mm²) of every voxel to the nearest True voxel of a ``(z, y, x)`` bool
    tensor — or of each item of a ``(B, z, y, x)`` stack, ``spacing`` then ``(B, 3)`` — +inf
    without any. float64, on the tensor's device."""
    single = features.dim() == 3
    stack = features[None] if single else features
    sp = torch.as_tensor(spacing, dtype=torch.float64, device=features.device).reshape(-1, 3)
    sp = sp.expand(stack.shape[0], 3)
    inf = torch.tensor(math.inf, dtype=torch.float64, device=features.device)
    zero = torch.zeros((), dtype=torch.float64, device=features.device)
    d = torch.where(stack, zero, inf)
    for axis in range(3):
        d = _line_pass(d, axis, sp[:, axis])
    return d[0] if single else d


def _line_pass(d: torch.Tensor, axis: int, s: torch.Tensor) -> torch.Tensor:
    """``out[b, ..., i] = min_q d[b, ..., q] + (s[b] (i − q))²`` along spatial ``axis`` of a
    ``(B, z, y, x)`` stack (an all-inf line stays inf): on a GPU with fastseg's CUDA kernels the
    lower envelope per line (O(n)), elsewhere the minimum over the whole line (O(n²))."""
    if d.is_cuda and _native.core.cuda is not None:
        return _envelope_pass_cuda(d, axis, s)
    n = d.shape[axis + 1]
    moved = d.movedim(axis + 1, -1)
    lines = moved.reshape(d.shape[0], -1, n)  # (B, L, n)
    offsets = torch.arange(n, device=d.device, dtype=torch.float64)
    t = s[:, None, None] * (offsets[:, None] - offsets[None, :])[None]  # (B, i, q)
    cost = t * t
    out = torch.empty_like(lines)
    step = max(1, MAX_LINE_ELEMENTS // max(1, d.shape[0] * n * n))
    for start in range(0, lines.shape[1], step):
        block = lines[:, start : start + step]
        out[:, start : start + step] = (block[:, :, None, :] + cost[:, None]).amin(dim=3)
    return out.reshape(moved.shape).movedim(-1, axis + 1)


def _envelope_pass_cuda(d: torch.Tensor, axis: int, s: torch.Tensor) -> torch.Tensor:
    """:func:`_line_pass` by ``_core.cuda.edt_envelope_pass``, one thread per line, the lines
    in chunks whose scratch fits :data:`MAX_LINE_ELEMENTS` doubles."""
    out = d.contiguous().clone()
    spacing = s.to(device=d.device, dtype=torch.float64).contiguous()
    items, shape = int(d.shape[0]), [int(v) for v in d.shape[1:]]
    n = shape[axis]
    lines = items * math.prod(shape) // n
    chunk = max(1, min(lines, MAX_LINE_ELEMENTS // (5 * n + 2)))
    scratch = torch.empty(chunk * (4 * n + 2), dtype=torch.float64, device=d.device)
    positions = torch.empty(chunk * n, dtype=torch.int64, device=d.device)
    stream = int(torch.cuda.current_stream(d.device).cuda_stream)
    with _native.on_device_of(d):
        for begin in range(0, lines, chunk):
            _native.core.cuda.edt_envelope_pass(
                out.data_ptr(), spacing.data_ptr(), items, shape, axis, begin,
                min(chunk, lines - begin), scratch.data_ptr(), positions.data_ptr(), stream,
            )  # fmt: skip
    return out


def voxel_surface(mask: torch.Tensor) -> torch.Tensor:
    """True on the voxels of a ``(z, y, x)`` (or ``(B, z, y, x)``) bool tensor with a
    6-neighbour outside it (outside the array counts as outside)."""
    single = mask.dim() == 3
    m = mask[None] if single else mask
    p = torch.nn.functional.pad(m[:, None].to(torch.uint8), (1, 1, 1, 1, 1, 1))[:, 0].bool()
    inner = (
        p[:, :-2, 1:-1, 1:-1]
        & p[:, 2:, 1:-1, 1:-1]
        & p[:, 1:-1, :-2, 1:-1]
        & p[:, 1:-1, 2:, 1:-1]
        & p[:, 1:-1, 1:-1, :-2]
        & p[:, 1:-1, 1:-1, 2:]
    )
    out = m & ~inner
    return out[0] if single else out


def corner_codes(mask: torch.Tensor) -> torch.Tensor:
    """The 8-bit 2x2x2 neighbour code of every corner of a ``(z, y, x)`` (or ``(B, z, y, x)``)
    bool tensor's grid, shape ``(z + 1, y + 1, x + 1)`` per item (int64), numbered as
    ``fastseg._core.corner_codes`` does."""
    single = mask.dim() == 3
    m = mask[None] if single else mask
    p = torch.nn.functional.pad(m[:, None].to(torch.int64), (1, 1, 1, 1, 1, 1))[:, 0]
    nb, nz, ny, nx = m.shape
    codes = torch.zeros((nb, nz + 1, ny + 1, nx + 1), dtype=torch.int64, device=mask.device)
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                bit = 128 >> (4 * a + 2 * b + c)
                codes += p[:, a : a + nz + 1, b : b + ny + 1, c : c + nx + 1] * bit
    return codes[0] if single else codes


STACK_VOXELS = 1 << 24
"""Largest stack of label boxes (items × padded box voxels) computed together."""


@dataclass
class _Item:
    """One label of one pair with both masks non-empty: the masks cut to bbox(A ∪ M)."""

    row: dict[str, float]
    a: torch.Tensor  # (z, y, x) bool
    m: torch.Tensor
    spacing: tuple[float, float, float]


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else 0.0


def _counts_row(
    p: torch.Tensor, r: torch.Tensor, label: int, want_nsd: bool
) -> tuple[dict[str, float], torch.Tensor | None, torch.Tensor | None]:
    """The row of ``label`` as far as counts decide it, and A, M cut to bbox(A ∪ M) when both
    are non-empty (the distances are then still to compute)."""
    a_full, m_full = p == label, r == label
    counts = torch.stack([a_full.sum(), m_full.sum(), (a_full & m_full).sum()])
    na, nm, inter = (int(v) for v in counts.tolist())  # one read-back for the three counts
    row: dict[str, float] = {"label": label, "pred_voxels": na, "ref_voxels": nm,
                             "inter_voxels": inter}  # fmt: skip
    if na == 0 and nm == 0:
        row.update(dice=1.0, jaccard=1.0, vs=1.0, hd=0.0, hd95=0.0, avd=0.0, assd=0.0)
        row["nsd"] = 1.0 if want_nsd else math.nan
        return row, None, None
    a, m, i = float(na), float(nm), float(inter)
    row.update(dice=2.0 * i / (a + m), jaccard=i / (a + m - i), vs=1.0 - abs(a - m) / (a + m))
    if na == 0 or nm == 0:
        row.update(hd=math.inf, hd95=math.inf, avd=math.inf, assd=math.inf)
        row["nsd"] = 0.0 if want_nsd else math.nan
        return row, None, None
    either = a_full | m_full
    # the three axis projections in one read-back, the box's bounds found on the host
    profiles = (
        torch.cat(
            [
                either.any(dim=2).any(dim=1),
                either.any(dim=2).any(dim=0),
                either.any(dim=1).any(dim=0),
            ]
        )
        .cpu()
        .numpy()
    )
    box = []
    start = 0
    for n in either.shape:
        hits = np.flatnonzero(profiles[start : start + n])
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
        start += n
    # copies, so that the full-size masks are freed before the boxes are stacked
    return row, a_full[tuple(box)].clone(), m_full[tuple(box)].clone()


def _stacks(items: list[_Item]) -> list[list[_Item]]:
    """Items grouped, smallest boxes first, so that each group's padded stack stays within
    :data:`STACK_VOXELS` (an item larger than that is a group of its own)."""
    order = sorted(items, key=lambda it: it.a.numel())
    groups: list[list[_Item]] = []
    current: list[_Item] = []
    shape = [0, 0, 0]
    for item in order:
        grown = [max(s, n) for s, n in zip(shape, item.a.shape, strict=True)]
        if current and (len(current) + 1) * math.prod(grown) > STACK_VOXELS:
            groups.append(current)
            current, grown = [], list(item.a.shape)
        current.append(item)
        shape = grown
    if current:
        groups.append(current)
    return groups


def _pad_stack(masks: list[torch.Tensor]) -> torch.Tensor:
    """``(B, Z, Y, X)`` bool stack of the masks, each padded with False at the far ends."""
    shape = [max(m.shape[k] for m in masks) for k in range(3)]
    out = torch.zeros((len(masks), *shape), dtype=torch.bool, device=masks[0].device)
    for k, m in enumerate(masks):
        out[k, : m.shape[0], : m.shape[1], : m.shape[2]] = m
    return out


def _per_item(values: torch.Tensor, where: torch.Tensor) -> list[np.ndarray]:
    """``values[where]`` split by item (host arrays), for a ``(B, ...)`` stack."""
    sizes = where.flatten(1).sum(dim=1).tolist()
    flat = values[where].cpu().numpy()
    return list(np.split(flat, np.cumsum(sizes)[:-1]))


def _stack_distances(
    group: list[_Item], pooled: bool, tolerance: float, areas: dict[tuple[float, ...], Any]
) -> None:
    """Fill hd, hd95, assd, avd and nsd of every item of ``group`` (computed together)."""
    A, M = _pad_stack([it.a for it in group]), _pad_stack([it.m for it in group])
    spacing = torch.tensor([it.spacing for it in group], dtype=torch.float64, device=A.device)
    dims = (1, 2, 3)
    surf_a, surf_m = voxel_surface(A), voxel_surface(M)
    to_m = torch.sqrt(squared_edt(surf_m, spacing))  # d(., ∂M)
    to_a = torch.sqrt(squared_edt(surf_a, spacing))  # d(., ∂A)
    a_to_m, m_to_a = _per_item(to_m, surf_a), _per_item(to_a, surf_m)
    zero = torch.zeros((), dtype=torch.float64, device=A.device)
    avd_a = torch.where(A & ~M, to_m, zero).sum(dim=dims).tolist()  # d(a, M) = d(a, ∂M) off M
    avd_m = torch.where(M & ~A, to_a, zero).sum(dim=dims).tolist()
    nsd = _surface_dice(A, M, spacing, tolerance, group, areas)
    for k, it in enumerate(group):
        d1, d2 = a_to_m[k], m_to_a[k]
        if pooled:
            hd95 = _percentile(np.concatenate([d1, d2]), 95)
        else:
            hd95 = max(_percentile(d1, 95), _percentile(d2, 95))
        it.row.update(
            hd=max(float(d1.max()), float(d2.max())),
            hd95=hd95,
            assd=(float(d1.mean()) + float(d2.mean())) / 2.0,
            avd=max(avd_a[k] / it.row["pred_voxels"], avd_m[k] / it.row["ref_voxels"]),
            nsd=nsd[k],
        )


def _surface_dice(
    A: torch.Tensor,
    M: torch.Tensor,
    spacing: torch.Tensor,
    tolerance: float,
    group: list[_Item],
    areas: dict[tuple[float, ...], Any],
) -> list[float]:
    """DeepMind's surface Dice of each item of the stacks (NaN for all when no tolerance)."""
    if math.isnan(tolerance):
        return [math.nan] * len(group)
    table = torch.stack([areas[it.spacing] for it in group])  # (B, 256)
    codes_a, codes_m = corner_codes(A), corner_codes(M)
    border_a = (codes_a != 0) & (codes_a != 255)
    border_m = (codes_m != 0) & (codes_m != 255)
    item = torch.arange(len(group), device=A.device)[:, None, None, None]
    area_a = torch.where(border_a, table[item, codes_a], 0.0)
    area_m = torch.where(border_m, table[item, codes_m], 0.0)
    near_a = torch.sqrt(squared_edt(border_m, spacing)) <= tolerance
    near_m = torch.sqrt(squared_edt(border_a, spacing)) <= tolerance
    dims = (1, 2, 3)
    total = area_a.sum(dim=dims) + area_m.sum(dim=dims)
    near = torch.where(near_a, area_a, 0.0).sum(dim=dims) + torch.where(near_m, area_m, 0.0).sum(
        dim=dims
    )
    return (near / total).tolist()


def pairs_metrics(
    pairs: Sequence[tuple[Any, Any]],
    spacings: Sequence[Sequence[float]],
    labels: Sequence[int] | None,
    hd95: str,
    nsd_tolerance: float,
    device: str | torch.device,
) -> list[dict[str, np.ndarray]]:
    """Per pair, the native engine's result dict (``label``, ``pred_voxels``, ``ref_voxels``,
    ``inter_voxels`` and the metrics, one entry per label) for pairs of ``(z, y, x)`` label maps
    (NumPy arrays or tensors) with spacings ``(z, y, x)`` mm, computed on ``device``: the label
    boxes of all pairs go through the distance transforms in stacks. ``labels`` None: every
    non-zero label of either map; ``hd95`` ``"max_directed"``/``"pooled"``; ``nsd_tolerance``
    NaN for none."""
    want_nsd = not math.isnan(nsd_tolerance)
    rows: list[list[dict[str, float]]] = []
    items: list[_Item] = []
    areas: dict[tuple[float, ...], Any] = {}
    for (pred, ref), spacing in zip(pairs, spacings, strict=True):
        sp = (float(spacing[0]), float(spacing[1]), float(spacing[2]))
        p, r = _label_map_on(pred, device), _label_map_on(ref, device)
        if labels is None:
            present = torch.unique(torch.cat([torch.unique(p), torch.unique(r)]))
            wanted = [int(v) for v in present.tolist() if v != 0]
        else:
            wanted = [int(v) for v in labels]
        pair_rows = []
        for label in wanted:
            row, a, m = _counts_row(p, r, label, want_nsd)
            pair_rows.append(row)
            if a is not None and m is not None:
                items.append(_Item(row, a, m, sp))
                if want_nsd and sp not in areas:
                    table = _native.surfel_areas(sp)
                    areas[sp] = torch.as_tensor(table, dtype=torch.float64, device=p.device)
        rows.append(pair_rows)
    for group in _stacks(items):
        _stack_distances(group, hd95 == "pooled", nsd_tolerance, areas)
    return [_result_dict(pair_rows) for pair_rows in rows]


_COPY_DTYPES = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _label_map_on(x: Any, device: str | torch.device) -> torch.Tensor:
    """A label map (NumPy array or tensor) as int64 on ``device``: host maps go to a GPU in
    their own dtype (uint8: 8x fewer bytes than int64) from pinned memory without a host sync,
    and are widened there."""
    t = torch.as_tensor(x)
    dev = torch.device(device)
    if t.dtype not in _COPY_DTYPES:  # unsigned 16/32/64-bit: widened on the host
        t = t.to(torch.int64)
    if t.device != dev:
        if dev.type == "cuda" and t.device.type == "cpu":
            t = t.contiguous().pin_memory().to(dev, non_blocking=True)
        else:
            t = t.to(dev)
    return t.to(torch.int64)


def _result_dict(rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
    keys = ("label", "pred_voxels", "ref_voxels", "inter_voxels")
    out = {k: np.array([row[k] for row in rows], dtype=np.int64) for k in keys}
    for name in ("dice", "jaccard", "vs", "hd", "hd95", "avd", "assd", "nsd"):
        out[name] = np.array([row[name] for row in rows], dtype=np.float64)
    return out


def pair_metrics(
    pred: Any,
    ref: Any,
    spacing: Sequence[float],
    labels: Sequence[int] | None,
    hd95: str,
    nsd_tolerance: float,
    device: str | torch.device,
) -> dict[str, np.ndarray]:
    """:func:`pairs_metrics` of one pair."""
    return pairs_metrics([(pred, ref)], [spacing], labels, hd95, nsd_tolerance, device)[0]
