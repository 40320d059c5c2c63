"""The metrics of one pair on a torch device (a GPU): the same numbers as the native CPU engine.

Every step is the CPU engine's (cpp/include/fastseg/metrics.h), written with tensor operations so
that it runs where the label maps already are:

- per label, A = pred == label and M = ref == label (any integer labels, negative ones
  included): |A|, |M|, |A ∩ M| of every label of a pair counted without a host wait
  (reductions for a few label values, else a histogram of atomic adds), then A and M cut to
  B = bbox(A ∪ M);
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

The host waits for the device a fixed number of times per call, not per pair or label (the
counts, box profiles and results of many pairs and labels travel together), see
:func:`pairs_metrics`.

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
    inf = torch.full((), math.inf, dtype=torch.float64, device=features.device)
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

PAIR_VOXELS = 1 << 28
"""Largest number of voxels (pred and ref of a run of pairs, int64) held on the device at once;
each run costs three read-backs (a larger pair is a run of its own)."""

MAX_BINS = 1 << 16
"""Widest label-value range (max − min + 1) of a pair counted in direct bins; a wider one is
first numbered by ``torch.unique`` (one read-back more for that pair)."""

FEW_VALUES = 8
"""Label-value ranges at most this wide are counted value by value with reductions, wider ones in
a histogram."""

SUB_BINS = 256
"""Copies of each count bin, voxel i adding to copy i mod SUB_BINS, so that the atomic adds of a
GPU histogram do not all meet on the background's bin."""


@dataclass
class _Item:
    """One label of one pair with both masks non-empty: the masks cut to bbox(A ∪ M)."""

    row: dict[str, float]
    a: torch.Tensor  # (z, y, x) bool
    m: torch.Tensor
    spacing: tuple[float, float, float]


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else 0.0


def _to_device(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``: to a GPU from pinned memory, without a host sync."""
    if device.type == "cuda":
        return host.pin_memory().to(device, non_blocking=True)
    return host.to(device)


def _counts_row(label: int, na: int, nm: int, inter: int, want_nsd: bool) -> dict[str, float]:
    """The row of ``label`` as far as its counts |A|, |M|, |A ∩ M| decide it (the distances of
    a label with both masks non-empty are filled in later)."""
    row: dict[str, float] = {"label": label, "pred_voxels": na, "ref_voxels": nm,
                             "inter_voxels": inter}  # fmt: skip
    if na == 0 and nm == 0:
        row.update(dice=1.0, jaccard=1.0, vs=1.0, hd=0.0, hd95=0.0, avd=0.0, assd=0.0)
        row["nsd"] = 1.0 if want_nsd else math.nan
        return row
    a, m, i = float(na), float(nm), float(inter)
    row.update(dice=2.0 * i / (a + m), jaccard=i / (a + m - i), vs=1.0 - abs(a - m) / (a + m))
    if na == 0 or nm == 0:
        row.update(hd=math.inf, hd95=math.inf, avd=math.inf, assd=math.inf)
        row["nsd"] = 0.0 if want_nsd else math.nan
    return row


def _value_ranges(maps: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[int, int]]:
    """(smallest, largest) value of each pair's two maps, in one read-back ((0, 0) for empty
    maps)."""
    full = [k for k, (p, _) in enumerate(maps) if p.numel()]
    out = [(0, 0)] * len(maps)
    if not full:
        return out
    ends = torch.stack(
        [torch.stack([*torch.aminmax(maps[k][0]), *torch.aminmax(maps[k][1])]) for k in full]
    ).tolist()
    for k, (p_lo, p_hi, r_lo, r_hi) in zip(full, ends, strict=True):
        out[k] = (min(p_lo, r_lo), max(p_hi, r_hi))
    return out


def _histogram(
    p: torch.Tensor, r: torch.Tensor, lo: int, hi: int, cache: dict[tuple[int, int], Any]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Counts ``(3, K)`` (int64, on the device) of every value of a pair's maps in pred, in ref
    and in both at one voxel, and the values they count: ``lo..hi`` (None returned) when that
    range is at most :data:`MAX_BINS` wide, else ``torch.unique``'s (one read-back). Up to
    :data:`FEW_VALUES` values by reductions (0, the background, not counted), else by atomic
    adds into :data:`SUB_BINS` copies of each bin (no read-back)."""
    if hi - lo + 1 <= FEW_VALUES:
        columns = []
        for value in range(lo, hi + 1):
            if value == 0:
                columns.append(torch.zeros(3, dtype=torch.int64, device=p.device))
                continue
            a, m = p == value, r == value
            columns.append(torch.stack([a.sum(), m.sum(), (a & m).sum()]))
        return torch.stack(columns, dim=1), None
    pf, rf = p.reshape(-1), r.reshape(-1)
    n = pf.numel()
    values: torch.Tensor | None = None
    if hi - lo + 1 <= MAX_BINS:
        k = hi - lo + 1
        code_p, code_r = pf - lo, rf - lo
    else:
        values, inverse = torch.unique(torch.cat([pf, rf]), return_inverse=True)
        k = int(values.numel())
        code_p, code_r = inverse[:n], inverse[n:]
    sub = max(1, min(SUB_BINS, MAX_BINS // k))
    if (n, sub) not in cache:
        lane = torch.arange(n, dtype=torch.int64, device=p.device) % sub
        cache[(n, sub)] = (lane, torch.ones(n, dtype=torch.int64, device=p.device))
    lane, ones = cache[(n, sub)]
    span = (k + 1) * sub  # bin k: voxels of pred where ref differs (not counted)
    bins = torch.zeros(3 * span, dtype=torch.int64, device=p.device)
    bins.index_add_(0, code_p * sub + lane, ones)
    bins.index_add_(0, code_r * sub + (lane + span), ones)
    inter = torch.where(pf == rf, code_p, k)
    bins.index_add_(0, inter * sub + (lane + 2 * span), ones)
    return bins.view(3, k + 1, sub).sum(dim=2)[:, :k], values


def _count_rows(
    maps: list[tuple[torch.Tensor, torch.Tensor]], labels: Sequence[int] | None, want_nsd: bool
) -> list[list[dict[str, float]]]:
    """Each pair's rows as far as the counts decide them (:func:`_counts_row`): the counts of
    every pair and label read back together."""
    ranges = _value_ranges(maps)
    cache: dict[tuple[int, int], Any] = {}
    hists = [
        _histogram(p, r, lo, hi, cache) if p.numel() else None
        for (p, r), (lo, hi) in zip(maps, ranges, strict=True)
    ]
    parts: list[torch.Tensor] = []
    for h in hists:
        if h is not None:
            parts.append(h[0].reshape(-1))
            if h[1] is not None:
                parts.append(h[1])
    flat = torch.cat(parts).tolist() if parts else []
    rows = []
    at = 0
    for h, (lo, _) in zip(hists, ranges, strict=True):
        table: dict[int, tuple[int, int, int]] = {}
        if h is not None:
            k = int(h[0].shape[1])
            counts = flat[at : at + 3 * k]
            at += 3 * k
            if h[1] is None:
                values = list(range(lo, lo + k))
            else:
                values = flat[at : at + k]
                at += k
            for j, value in enumerate(values):
                na, nm, inter = counts[j], counts[k + j], counts[2 * k + j]
                if value != 0 and (na or nm):  # 0, the background, is never counted
                    table[value] = (na, nm, inter)
        wanted = sorted(table) if labels is None else labels
        rows.append([_counts_row(int(v), *table.get(int(v), (0, 0, 0)), want_nsd) for v in wanted])
    return rows


def _cut_boxes(
    maps: list[tuple[torch.Tensor, torch.Tensor]],
    rows: list[list[dict[str, float]]],
    spacings: list[tuple[float, float, float]],
) -> list[_Item]:
    """The items (labels with both masks non-empty) of the pairs, A and M cut to bbox(A ∪ M):
    the three axis profiles of every item's A ∪ M read back together, the bounds found on the
    host."""
    wanted = [
        (k, row)
        for k, pair_rows in enumerate(rows)
        for row in pair_rows
        if row["pred_voxels"] and row["ref_voxels"]
    ]
    if not wanted:
        return []
    profiles = []
    for k, row in wanted:
        p, r = maps[k]
        either = (p == int(row["label"])) | (r == int(row["label"]))
        profiles += [either.any(dim=(1, 2)), either.any(dim=(0, 2)), either.any(dim=(0, 1))]
    flat = torch.cat(profiles).cpu().numpy()
    items = []
    start = 0
    for k, row in wanted:
        p, r = maps[k]
        box = []
        for n in p.shape:
            hits = np.flatnonzero(flat[start : start + n])
            box.append(slice(int(hits[0]), int(hits[-1]) + 1))
            start += n
        label = int(row["label"])
        items.append(_Item(row, p[tuple(box)] == label, r[tuple(box)] == label, spacings[k]))
    return items


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


def _at_surfaces(
    to_m: torch.Tensor, surf_a: torch.Tensor, to_a: torch.Tensor, surf_m: torch.Tensor
) -> torch.Tensor:
    """``cat(to_m[surf_a], to_a[surf_m])`` of ``(B, ...)`` stacks (item by item, in voxel order)
    with one read-back (the positions)."""
    at = torch.stack([surf_a, surf_m]).nonzero().unbind(dim=1)  # (side, item, z, y, x)
    return torch.where(at[0] == 0, to_m[at[1:]], to_a[at[1:]])


def _stack_distances(
    group: list[_Item], pooled: bool, tolerance: float, areas: dict[tuple[float, ...], Any]
) -> None:
    """Fill hd, hd95, assd, avd and nsd of every item of ``group`` (computed together; two
    read-backs: the surface positions, then every number)."""
    A, M = _pad_stack([it.a for it in group]), _pad_stack([it.m for it in group])
    host_spacing = torch.tensor([it.spacing for it in group], dtype=torch.float64)
    spacing = _to_device(host_spacing, A.device)
    dims = (1, 2, 3)
    surf_a, surf_m = voxel_surface(A), voxel_surface(M)
    to_m = torch.sqrt(squared_edt(surf_m, spacing))  # d(., ∂M)
    to_a = torch.sqrt(squared_edt(surf_a, spacing))  # d(., ∂A)
    zero = torch.zeros((), dtype=torch.float64, device=A.device)
    summary = torch.cat(
        [
            torch.where(A & ~M, to_m, zero).sum(dim=dims),  # d(a, M) = d(a, ∂M) off M
            torch.where(M & ~A, to_a, zero).sum(dim=dims),
            surf_a.sum(dim=dims).to(torch.float64),
            surf_m.sum(dim=dims).to(torch.float64),
            _surface_dice(A, M, spacing, tolerance, group, areas),
        ]
    )
    host = torch.cat([summary, _at_surfaces(to_m, surf_a, to_a, surf_m)]).cpu().numpy()
    b = len(group)
    avd_a, avd_m, size_a, size_m, nsd = (host[j * b : (j + 1) * b] for j in range(5))
    sizes = np.concatenate([size_a, size_m]).astype(np.int64)
    per_item = np.split(host[5 * b :], np.cumsum(sizes)[:-1])
    a_to_m, m_to_a = per_item[:b], per_item[b:]
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
            avd=max(
                float(avd_a[k]) / it.row["pred_voxels"], float(avd_m[k]) / it.row["ref_voxels"]
            ),
            nsd=float(nsd[k]),
        )


def _surface_dice(
    A: torch.Tensor,
    M: torch.Tensor,
    spacing: torch.Tensor,
    tolerance: float,
    group: list[_Item],
    areas: dict[tuple[float, ...], Any],
) -> torch.Tensor:
    """DeepMind's surface Dice of each item of the stacks, ``(B,)`` float64 on the device (NaN
    for all when no tolerance)."""
    if math.isnan(tolerance):
        return torch.full((len(group),), math.nan, dtype=torch.float64, device=A.device)
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
    return near / total


def _runs(voxels: list[int]) -> list[range]:
    """Consecutive pairs whose maps hold at most :data:`PAIR_VOXELS` voxels together."""
    runs: list[range] = []
    start, total = 0, 0
    for k, n in enumerate(voxels):
        if k > start and total + n > PAIR_VOXELS:
            runs.append(range(start, k))
            start, total = k, 0
        total += n
    if start < len(voxels):
        runs.append(range(start, len(voxels)))
    return runs


def pairs_metrics(
    pairs: Sequence[tuple[Any, Any]],
    spacings: Sequence[Sequence[float]],
    labels: Sequence[int] | None,
    hd95: str,
    nsd_tolerance: float,
    device: str | torch.device,
) -> list[dict[str, np.ndarray]]:
    """Per pair, the native engine's result dict (``label``, ``pred_voxels``, ``ref_voxels``,
    ``inter_voxels`` and the metrics, one entry per label) for pairs of ``(z, y, x)`` integer
    label maps (NumPy arrays or tensors; any integer values, negative ones included) with
    spacings ``(z, y, x)`` mm, computed on ``device``: the label boxes of all pairs go through
    the distance transforms in stacks. ``labels`` None: every non-zero label of either map;
    ``hd95`` ``"max_directed"``/``"pooled"``; ``nsd_tolerance`` NaN for none.

    Device-to-host read-backs: three per run of pairs (:data:`PAIR_VOXELS`: value ranges,
    counts of every label, box profiles), two per stack of boxes (:data:`STACK_VOXELS`), and
    one per pair whose label values span more than :data:`MAX_BINS`."""
    want_nsd = not math.isnan(nsd_tolerance)
    work = [
        (pred, ref, (float(sp[0]), float(sp[1]), float(sp[2])))
        for (pred, ref), sp in zip(pairs, spacings, strict=True)
    ]
    rows: list[list[dict[str, float]]] = []
    items: list[_Item] = []
    areas: dict[tuple[float, ...], Any] = {}
    for run in _runs([2 * math.prod(np.shape(pred)) for pred, _, _ in work]):
        maps = [(_label_map_on(work[k][0], device), _label_map_on(work[k][1], device)) for k in run]
        run_rows = _count_rows(maps, labels, want_nsd)
        run_items = _cut_boxes(maps, run_rows, [work[k][2] for k in run])
        del maps
        rows += run_rows
        items += run_items
    for it in items:
        if want_nsd and it.spacing not in areas:
            table = torch.as_tensor(_native.surfel_areas(it.spacing), dtype=torch.float64)
            areas[it.spacing] = _to_device(table, it.a.device)
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
