"""The metrics engine on a torch device (``evaluate_batch(device="cuda")``): the same numbers as
the native CPU engine. The tensor code runs on the CPU here (torch's CPU device) against the
native engine; the CUDA tests run the same pairs on a GPU (benchmarks/gpu_check.sh)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from metrics_strategies import label_map_pairs, mask_pairs, shapes, spacings

from fastseg import _native
from fastseg.errors import InputError
from fastseg.metrics import evaluate_batch
from fastseg.metrics._device import (
    corner_codes,
    pair_metrics,
    pairs_metrics,
    squared_edt,
    voxel_surface,
)

INT_KEYS = ("label", "pred_voxels", "ref_voxels", "inter_voxels")
FLOAT_KEYS = ("dice", "jaccard", "vs", "hd", "hd95", "avd", "assd", "nsd")


def assert_same_result(native: dict[str, np.ndarray], ours: dict[str, np.ndarray]) -> None:
    for key in INT_KEYS:
        np.testing.assert_array_equal(ours[key], native[key], err_msg=key)
    for key in FLOAT_KEYS:
        np.testing.assert_allclose(ours[key], native[key], rtol=1e-9, atol=1e-12, err_msg=key)


@settings(max_examples=60, deadline=None)
@given(
    maps=label_map_pairs(),
    spacing=spacings,
    hd95=st.sampled_from(["max_directed", "pooled"]),
    tolerance=st.sampled_from([0.5, 1.0, 2.7, math.nan]),
    labels=st.sampled_from([None, [1], [5, 2], [1, 7], [-3, 2, 1]]),
)
def test_label_maps_match_the_native_engine(
    maps: tuple[np.ndarray, np.ndarray],
    spacing: tuple[float, float, float],
    hd95: str,
    tolerance: float,
    labels: list[int] | None,
) -> None:
    pred, ref = maps
    native = _native.label_metrics(pred, ref, spacing, labels, hd95, tolerance)
    ours = pair_metrics(pred, ref, spacing, labels, hd95, tolerance, "cpu")
    assert_same_result(native, ours)


@settings(max_examples=40, deadline=None)
@given(masks=mask_pairs(nonempty=False), spacing=spacings)
def test_binary_masks_including_empty_ones(
    masks: tuple[np.ndarray, np.ndarray], spacing: tuple[float, float, float]
) -> None:
    a, b = (m.astype(np.uint8) for m in masks)
    native = _native.label_metrics(a, b, spacing, [1], "max_directed", 1.0)
    ours = pair_metrics(a, b, spacing, [1], "max_directed", 1.0, "cpu")
    assert_same_result(native, ours)


def test_adversarial_shapes() -> None:
    """Single voxels, thin shells, masks on the array edge, one-voxel-thick arrays, far apart."""
    cases: list[tuple[np.ndarray, np.ndarray]] = []
    one = np.zeros((9, 8, 7), np.uint8)
    two = one.copy()
    one[0, 0, 0], two[8, 7, 6] = 1, 1  # opposite corners
    cases.append((one, two))
    shell = np.zeros((12, 12, 12), np.uint8)
    shell[2:10, 2:10, 2:10] = 1
    shell[3:9, 3:9, 3:9] = 0
    cases.append((shell, np.pad(np.ones((8, 8, 8), np.uint8), 2)))
    cases.append((np.ones((1, 1, 5), np.uint8), np.eye(1, 5, 2, dtype=np.uint8)[None]))
    full = np.ones((4, 5, 6), np.uint8)
    edge = full.copy()
    edge[:, :, 3:] = 0
    cases.append((full, edge))
    for a, b in cases:
        for spacing in ((1.0, 1.0, 1.0), (2.5, 0.8, 0.8)):
            native = _native.label_metrics(a, b, spacing, None, "pooled", 1.5)
            assert_same_result(native, pair_metrics(a, b, spacing, None, "pooled", 1.5, "cpu"))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, spacing=spacings, seed=st.integers(0, 2**32 - 1), density=st.floats(0, 0.3))
def test_building_blocks_match_the_native_ones(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], seed: int, density: float
) -> None:
    mask = np.random.default_rng(seed).random(shape) < density
    t = torch.from_numpy(mask)
    np.testing.assert_array_equal(
        voxel_surface(t).numpy(), _native.voxel_surface(mask.astype(np.uint8)) != 0
    )
    np.testing.assert_array_equal(corner_codes(t).numpy(), _native.corner_codes(mask))
    np.testing.assert_allclose(
        squared_edt(t, spacing).numpy(), _native.squared_edt(mask.astype(np.uint8), spacing),
        rtol=1e-12,
    )  # fmt: skip


@pytest.mark.parametrize("stack_voxels", [1, 3000, 1 << 24])
@pytest.mark.parametrize("pair_voxels", [1, 5000, 1 << 28])
def test_many_pairs_in_stacks_match_pair_by_pair(
    stack_voxels: int, pair_voxels: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Label boxes of different shapes and spacings computed together (padded stacks, one or
    several), pairs counted together (in runs of one, a few or all), give each pair's own
    result."""
    import fastseg.metrics._device as device

    monkeypatch.setattr(device, "STACK_VOXELS", stack_voxels)
    monkeypatch.setattr(device, "PAIR_VOXELS", pair_voxels)
    rng = np.random.default_rng(7)
    pairs, spacings = [], []
    for _ in range(7):
        shape = tuple(int(v) for v in rng.integers(1, 16, 3))
        pred = rng.choice(np.array([0, 1, 2], np.int16), size=shape, p=[0.5, 0.3, 0.2])
        ref = np.where(rng.random(shape) < 0.6, pred, np.int16(1)).astype(np.int16)
        pairs.append((pred, ref))
        spacings.append(tuple(float(v) for v in rng.uniform(0.4, 3.0, 3)))
    spacings[3] = spacings[1]  # a shared spacing shares its surfel table
    ours = pairs_metrics(pairs, spacings, None, "max_directed", 1.2, "cpu")
    for (pred, ref), sp, mine in zip(pairs, spacings, ours, strict=True):
        assert_same_result(_native.label_metrics(pred, ref, sp, None, "max_directed", 1.2), mine)


@pytest.mark.parametrize(
    ("few_values", "max_bins", "sub_bins"),
    [(0, 4, 1), (0, 4, 3), (0, 1 << 16, 1), (0, 1 << 16, 3), (0, 1 << 16, 256), (8, 1 << 16, 256),
     (20, 1 << 16, 256)],
)  # fmt: skip
def test_label_values_of_any_range_and_sign(
    few_values: int, max_bins: int, sub_bins: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Negative labels, labels far apart (2**40, the range numbered by torch.unique), bool and
    int8 tensors passed as they are, an empty grid: the native engine's counts and metrics,
    whether counted value by value or in a histogram, whatever its bin layout."""
    import fastseg.metrics._device as device

    monkeypatch.setattr(device, "FEW_VALUES", few_values)
    monkeypatch.setattr(device, "MAX_BINS", max_bins)
    monkeypatch.setattr(device, "SUB_BINS", sub_bins)
    rng = np.random.default_rng(11)
    shape = (5, 6, 7)
    far = rng.choice(np.array([0, 3, -2, 2**40, -(2**40)], np.int64), size=shape)
    small = rng.choice(np.array([0, -1, -5, 4], np.int8), size=shape)
    mask = rng.random(shape) < 0.4
    host = [
        (far, np.where(rng.random(shape) < 0.7, far, 3)),
        (small, np.where(rng.random(shape) < 0.7, small, np.int8(-5)).astype(np.int8)),
        (mask, rng.random(shape) < 0.5),
        (np.zeros((0, 3, 4), np.int16), np.zeros((0, 3, 4), np.int16)),
        (np.full(shape, 7, np.int16), np.full(shape, 7, np.int16)),
    ]
    given = [(torch.from_numpy(p), torch.from_numpy(r)) for p, r in host]
    spacing = [(1.0, 0.8, 1.3)] * len(host)
    for labels in (None, [-5, 3, 2**40, 7]):
        for pairs in (host, given):
            ours = pairs_metrics(pairs, spacing, labels, "pooled", 1.0, "cpu")
            for (p, r), mine in zip(host, ours, strict=True):
                p8, r8 = (x.astype(np.uint8) if x.dtype == np.bool_ else x for x in (p, r))
                native = _native.label_metrics(p8, r8, spacing[0], labels, "pooled", 1.0)
                assert_same_result(native, mine)


READ_BACK_METHODS = ("tolist", "cpu", "item", "numpy", "nonzero", "unique", "masked_select",
                     "bincount", "__int__", "__float__", "__bool__", "__index__")  # fmt: skip
READ_BACK_FUNCTIONS = ("unique", "nonzero", "masked_select", "bincount", "argwhere")


def count_read_backs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the name of every tensor operation that reads a device tensor back to the
    host (and so waits for the device) is appended to the returned list: the conversions to
    host values, unique/nonzero/bincount (sized by the data) and indexing with a bool mask."""
    calls: list[str] = []

    def counted(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    for name in READ_BACK_METHODS:
        counted(torch.Tensor, name)
    for name in READ_BACK_FUNCTIONS:
        counted(torch, name)
    getitem = torch.Tensor.__getitem__

    def indexed(self: torch.Tensor, index: Any) -> Any:
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in parts):
            calls.append("bool mask")
        return getitem(self, index)

    monkeypatch.setattr(torch.Tensor, "__getitem__", indexed)
    return calls


def test_read_backs_do_not_grow_with_pairs_or_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    """The device path waits for the device a fixed number of times per call (value ranges,
    counts, box profiles, one stack's surface positions and numbers), not once per pair or
    label: 2 pairs, 8 pairs, 8 pairs with four labels each read back equally often."""
    rng = np.random.default_rng(4)

    def pairs(n: int, values: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for _ in range(n):
            pred = rng.choice(np.array(values, np.int16), size=(6, 7, 8))
            ref = np.where(rng.random((6, 7, 8)) < 0.7, pred, np.int16(values[1]))
            out.append((pred, ref.astype(np.int16)))
        return out

    cases = [pairs(2, [0, 1]), pairs(8, [0, 1]), pairs(8, [0, 1, 2, 5, -3])]
    for labels in (None, [1, 2]):
        for tolerance in (1.0, math.nan):
            counts = []
            for case in cases:
                with monkeypatch.context() as patch:
                    calls = count_read_backs(patch)
                    pairs_metrics(case, [(1.0, 1.0, 2.0)] * len(case), labels, "pooled",
                                  tolerance, "cpu")  # fmt: skip
                counts.append(len(calls))
            assert counts[0] == counts[1] == counts[2], counts
            assert 0 < counts[0] <= 8, counts


def test_long_lines_are_chunked(monkeypatch: pytest.MonkeyPatch) -> None:
    import fastseg.metrics._device as device

    monkeypatch.setattr(device, "MAX_LINE_ELEMENTS", 50)  # a few lines per block
    mask = np.random.default_rng(1).random((7, 9, 11)) < 0.05
    spacing = (1.5, 0.7, 1.1)
    np.testing.assert_allclose(
        squared_edt(torch.from_numpy(mask), spacing).numpy(),
        _native.squared_edt(mask.astype(np.uint8), spacing),
        rtol=1e-12,
    )


def test_tensor_pairs_are_checked() -> None:
    """Label maps passed as tensors (the device path takes them as they are) are checked: an
    integer (z, y, x) map of one shape, spacing from the argument."""
    from fastseg.errors import GeometryMismatchError
    from fastseg.metrics._batch import _tensor_pair

    ok = torch.zeros((3, 4, 5), dtype=torch.int16)
    assert _tensor_pair(ok, ok, (2.0, 1.0, 1.0), "c")[2] == (2.0, 1.0, 1.0)
    assert _tensor_pair(ok, ok, None, "c")[2] == (1.0, 1.0, 1.0)
    with pytest.raises(InputError, match="c: pred: expected an integer"):
        _tensor_pair(ok.float(), ok, None, "c")
    with pytest.raises(InputError, match="c: ref: expected an integer"):
        _tensor_pair(ok, ok[0], None, "c")
    with pytest.raises(GeometryMismatchError, match="c: ref"):
        _tensor_pair(ok, ok[:, :3], None, "c")
    with pytest.raises(InputError, match="spacing"):
        _tensor_pair(ok, ok, (1.0, -1.0, 1.0), "c")


def test_device_argument_errors() -> None:
    pair = [(np.ones((3, 3, 3), np.uint8), np.ones((3, 3, 3), np.uint8))]
    with pytest.raises(InputError, match="device"):
        evaluate_batch(pair, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            evaluate_batch(pair, device="cuda")


@pytest.mark.cuda
def test_cuda_batch_equals_the_cpu_batch() -> None:
    rng = np.random.default_rng(3)
    pairs: dict[str, tuple[Any, Any]] = {}
    for k in range(6):
        shape = tuple(int(v) for v in rng.integers(8, 40, 3))
        pred = (rng.random(shape) < 0.3).astype(np.uint8) + (rng.random(shape) < 0.1)
        ref = np.where(rng.random(shape) < 0.8, pred, 0).astype(np.uint8)
        pairs[f"c{k}"] = (pred.astype(np.uint8), ref)
    spacing = (2.5, 0.8, 0.8)
    cpu = evaluate_batch(pairs, spacing=spacing)
    gpu = evaluate_batch(pairs, spacing=spacing, device="cuda")
    on_device = evaluate_batch(
        {
            c: (torch.from_numpy(p).cuda(), torch.from_numpy(r).cuda())
            for c, (p, r) in pairs.items()
        },
        spacing=spacing,
        device="cuda",
    )
    for rows in (gpu, on_device):
        assert [(r["case"], r["label"]) for r in rows] == [(r["case"], r["label"]) for r in cpu]
        for mine, ref_row in zip(rows, cpu, strict=True):
            for key in FLOAT_KEYS:
                assert mine[key] == pytest.approx(ref_row[key], rel=1e-6, abs=1e-9), key
            assert mine["pred_voxels"] == ref_row["pred_voxels"]
            assert mine["empty"] == ref_row["empty"]


@pytest.mark.cuda
def test_cuda_envelope_pass_equals_the_line_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA kernel (the CPU's envelope routine, one thread per line) against the O(n²)
    line minimum, every axis, a stack of items with their own spacings, chunked lines."""
    import fastseg.metrics._device as device

    rng = np.random.default_rng(5)
    stack = torch.from_numpy(rng.random((3, 9, 13, 6)) < 0.08).cuda()
    spacing = torch.tensor([[2.5, 0.8, 0.8], [1.0, 1.0, 1.0], [0.7, 3.1, 1.3]], device="cuda")
    monkeypatch.setattr(device, "MAX_LINE_ELEMENTS", 200)  # several chunks of lines
    kernel = squared_edt(stack, spacing).cpu()
    monkeypatch.setattr(device._native.core, "cuda", None)  # the tensor-operation path
    reference = squared_edt(stack, spacing).cpu()
    np.testing.assert_allclose(kernel.numpy(), reference.numpy(), rtol=1e-12)
    for k in range(3):
        mask = stack[k].cpu().numpy().astype(np.uint8)
        sp = tuple(float(v) for v in spacing[k].tolist())
        np.testing.assert_allclose(kernel[k].numpy(), _native.squared_edt(mask, sp), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.int16, np.int64, np.bool_])
def test_label_maps_reach_the_device_as_int64(dtype: Any) -> None:
    """Host label maps of every integer dtype arrive as int64 with their values (on a GPU they
    travel in their own dtype from pinned memory and are widened there)."""
    from fastseg.metrics._device import _label_map_on

    host = (np.arange(60).reshape(3, 4, 5) % 3).astype(dtype)
    got = _label_map_on(host, "cpu")
    assert got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), host.astype(np.int64))
