"""CUDA kernels of the fused soft-Dice loss against the CPU kernels and the plain PyTorch formula.

Run on a GPU machine by benchmarks/gpu_check.sh; skipped elsewhere (``cuda`` mark).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastseg import _native
from fastseg.errors import InputError
from fastseg.nn import DiceCELoss, DiceLoss
from fastseg.nn._losses import cross_entropy_reference, dice_loss_reference

pytestmark = pytest.mark.cuda

LABEL_DTYPES = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]


def value_and_grad(
    loss: Any, logits: torch.Tensor, target: torch.Tensor
) -> tuple[float, np.ndarray]:
    x = logits.detach().clone().requires_grad_()
    value = loss(x, target)
    (grad,) = torch.autograd.grad(value, x)
    return float(value.detach()), grad.double().cpu().numpy()


def assert_close(
    got: tuple[float, np.ndarray],
    expected: tuple[float, np.ndarray],
    tol: float,
    float32: tuple[float, np.ndarray] | None = None,
) -> None:
    """As tests/nn/test_fused_dice.py: gradients relative to their largest entry, widened by 4x
    the float32 reference's own rounding error where one is given (saturated voxels)."""
    slack_value = slack_grad = 0.0
    if float32 is not None:
        slack_value = 4 * abs(float32[0] - expected[0])
        slack_grad = 4 * float(np.abs(float32[1] - expected[1]).max())
    assert got[0] == pytest.approx(expected[0], rel=tol, abs=tol + slack_value)
    scale = max(float(np.abs(expected[1]).max()), 1e-12)
    atol = tol * scale + slack_grad + 1e-15
    np.testing.assert_allclose(got[1], expected[1], rtol=tol, atol=atol)


@pytest.mark.parametrize(
    ("sigmoid", "c", "offset"), [(False, 2, 0), (False, 5, 0), (True, 3, 0), (True, 1, 1)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_sums_and_backward_match_cpu_kernels(
    sigmoid: bool, c: int, offset: int, dtype: torch.dtype, label_dtype: torch.dtype
) -> None:
    # 2 x 3001 voxels: several tiles of 1024 voxels and a ragged last one.
    gen = torch.Generator().manual_seed(c)
    logits = (torch.randn(2, c, 3001, generator=gen) * 4).to(dtype)
    target = torch.randint(0, c + offset, (2, 3001), generator=gen).to(label_dtype)
    grads = torch.randn(2, c, 4, generator=gen, dtype=torch.float64)
    kwargs = {"sigmoid": sigmoid, "label_offset": offset}
    cpu_sums = _native.dice_sums(logits.numpy(), target.numpy(), with_ce=True, **kwargs)
    gpu_sums = _native.dice_sums(logits.cuda(), target.cuda(), with_ce=True, **kwargs)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    np.testing.assert_allclose(gpu_sums.cpu().numpy(), cpu_sums, rtol=tol, atol=tol)
    cpu_grad = _native.dice_backward(logits.numpy(), target.numpy(), grads.numpy(), **kwargs)
    gpu_grad = _native.dice_backward(logits.cuda(), target.cuda(), grads.cuda(), **kwargs)
    assert gpu_grad.dtype == dtype
    np.testing.assert_allclose(
        gpu_grad.cpu().numpy(), cpu_grad, rtol=tol, atol=tol * float(np.abs(cpu_grad).max())
    )


@given(
    seed=st.integers(0, 2**31 - 1),
    sigmoid=st.booleans(),
    c=st.integers(1, 5),
    n=st.integers(1, 3),
    spatial=st.lists(st.integers(1, 17), min_size=1, max_size=3),
    squared=st.booleans(),
    batch_dice=st.booleans(),
    include_background=st.booleans(),
    weighted=st.booleans(),
)
def test_losses_on_cuda_match_reference(
    seed: int,
    sigmoid: bool,
    c: int,
    n: int,
    spatial: list[int],
    squared: bool,
    batch_dice: bool,
    include_background: bool,
    weighted: bool,
) -> None:
    if not sigmoid:
        c = max(c, 2)
    if c == 1:
        include_background = True
    rng = np.random.default_rng(seed)
    logits = torch.from_numpy(rng.normal(0, 3, size=(n, c, *spatial)).astype(np.float32))
    target = torch.from_numpy(rng.integers(0, 2 if sigmoid and c == 1 else c, size=(n, *spatial)))
    options: dict[str, Any] = {
        "activation": "sigmoid" if sigmoid else "softmax",
        "squared": squared,
        "batch_dice": batch_dice,
        "include_background": include_background,
        "weight": rng.uniform(0.5, 2, size=c).tolist() if weighted else None,
    }
    got = value_and_grad(DiceCELoss(0.7, 1.3, **options).cuda(), logits.cuda(), target.cuda())

    def reference(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        dice = dice_loss_reference(x, t, **options)
        ce = cross_entropy_reference(
            x, t, activation=options["activation"], weight=options["weight"]
        )
        return 0.7 * dice + 1.3 * ce

    expected = value_and_grad(reference, logits.double(), target)
    assert_close(got, expected, 1e-5, float32=value_and_grad(reference, logits, target))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits_accumulate_in_float32(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 4, 19, 23, 17, generator=gen).to(dtype)
    target = torch.randint(0, 4, (2, 19, 23, 17), generator=gen)
    x = logits.cuda().requires_grad_()
    loss = DiceCELoss()(x, target.cuda())
    loss.backward()
    assert loss.dtype == torch.float32 and x.grad is not None and x.grad.dtype == dtype
    expected = value_and_grad(DiceCELoss(fused=False), logits.double(), target)
    assert loss.item() == pytest.approx(expected[0], rel=1e-5)
    scale = float(np.abs(expected[1]).max())
    grad = x.grad.double().cpu().numpy()
    np.testing.assert_allclose(grad, expected[1], rtol=1e-2, atol=1e-2 * scale)


def test_multilabel_mask_on_cuda() -> None:
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 9, 8, 7, generator=gen)
    mask = torch.rand(2, 3, 9, 8, 7, generator=gen) < 0.4
    loss = DiceCELoss(activation="sigmoid")
    got = value_and_grad(loss, logits.cuda(), mask.cuda())
    assert_close(
        got,
        value_and_grad(DiceCELoss(activation="sigmoid", fused=False), logits.double(), mask),
        1e-5,
    )


def test_gradcheck_float64_on_cuda() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 3, 4, 2, generator=gen, dtype=torch.float64).cuda().requires_grad_()
    target = torch.randint(0, 2, (2, 3, 4, 2), generator=gen).cuda()  # class 2 empty
    for loss in (DiceLoss(), DiceCELoss(weight=[1.0, 2.0, 0.5]), DiceCELoss(activation="sigmoid")):
        loss = loss.cuda()
        assert torch.autograd.gradcheck(
            lambda x, f=loss: f(x, target), (logits,), eps=1e-6, atol=1e-7
        )


def test_deterministic_and_stream_aware() -> None:
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 3, 64, 48, 40, generator=gen).cuda()
    target = torch.randint(0, 3, (2, 64, 48, 40), generator=gen).cuda()
    first = value_and_grad(DiceCELoss(), logits, target)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        second = value_and_grad(DiceCELoss(), logits, target)
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    assert first[0] == second[0]
    np.testing.assert_array_equal(first[1], second[1])
    cpu = value_and_grad(DiceCELoss(), logits.cpu(), target.cpu())
    assert_close(first, cpu, 1e-5)


def test_bad_labels_on_cuda_raise_input_error() -> None:
    logits = torch.zeros(2, 3, 4, 4, device="cuda")
    with pytest.raises(InputError, match=r"target: labels must lie in \[0, 2\]"):
        DiceLoss()(logits, torch.full((2, 4, 4), 3, device="cuda"))
    with pytest.raises(InputError, match="target: expected a tensor on"):
        DiceLoss()(logits, torch.zeros(2, 4, 4, dtype=torch.long))


@pytest.mark.parametrize("loss", [DiceLoss, DiceCELoss])
def test_check_labels_off_gives_the_same_loss_without_the_range_read(loss: Any) -> None:
    gen = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 6, 5, 4, generator=gen).cuda()
    target = torch.randint(0, 3, (2, 6, 5, 4), generator=gen).cuda()
    checked = value_and_grad(loss(), logits, target)
    unchecked = value_and_grad(loss(check_labels=False), logits, target)
    assert checked[0] == unchecked[0]
    np.testing.assert_array_equal(checked[1], unchecked[1])


def test_cuda_boundary_checks_the_target_shape() -> None:
    """As the CPU binding: a target that does not match the logits is an InputError, not an
    out-of-bounds read on the device."""
    logits = torch.zeros(2, 3, 10, device="cuda")
    labels = torch.zeros(2, 9, dtype=torch.long, device="cuda")
    with pytest.raises(InputError, match=r"target: expected labels of shape \(2, 10\)"):
        _native.dice_sums(logits, labels, sigmoid=False, with_ce=False)
    with pytest.raises(InputError, match=r"target: expected labels of shape \(2, 10\)"):
        _native.dice_backward(logits, labels, torch.zeros(2, 3, 4, device="cuda"), sigmoid=False)
    mask = torch.zeros(2, 1, 10, dtype=torch.uint8, device="cuda")
    with pytest.raises(InputError, match="target: expected a uint8 mask of shape"):
        _native.dice_sums(logits, mask, sigmoid=True, with_ce=False)


OPTION_GRID: list[dict[str, Any]] = [
    {},
    {"squared": False, "smooth_nr": 0.0, "smooth_dr": 1e-3},
    {"include_background": False},
    {"batch_dice": True},
    {"batch_dice": True, "include_background": False, "weight": [0.0, 2.0, 0.5, 1.0]},
    {"weight": [0.5, 2.0, 1.0, 0.25], "smooth_nr": 1.0, "smooth_dr": 1.0},
    {"activation": "sigmoid"},
    {"activation": "sigmoid", "include_background": False, "batch_dice": True, "squared": False},
    {"activation": "sigmoid", "weight": [1.0, 0.5, 2.0, 3.0]},
]


@pytest.mark.parametrize("options", OPTION_GRID)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("with_ce", [False, True])
def test_option_grid_on_cuda_matches_reference(
    options: dict[str, Any], dtype: torch.dtype, with_ce: bool
) -> None:
    """The device finalize (loss) and the gradients kernel (the sums' gradients), option by
    option, against the plain PyTorch formula in float64, and the loss's dtype."""
    gen = torch.Generator().manual_seed(6)
    logits = (torch.randn(3, 4, 7, 9, 11, generator=gen) * 2).to(dtype)
    target = torch.randint(0, 4, (3, 7, 9, 11), generator=gen)
    target[1][target[1] == 2] = 3  # class 2 empty in one sample

    def reference(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        dice = dice_loss_reference(x, t, **options)
        if not with_ce:
            return dice
        activation = options.get("activation", "softmax")
        ce = cross_entropy_reference(x, t, activation=activation, weight=options.get("weight"))
        return 0.6 * dice + 1.7 * ce

    loss = DiceCELoss(0.6, 1.7, **options) if with_ce else DiceLoss(**options)
    x = logits.cuda().requires_grad_()
    value = loss.cuda()(x, target.cuda())
    assert value.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert value.shape == () and value.is_cuda
    (grad,) = torch.autograd.grad(value * 1.5, x)  # dL/dloss = 1.5, read on the device
    assert grad.dtype == dtype
    got = (float(value.detach()), grad.double().cpu().numpy() / 1.5)
    expected = value_and_grad(reference, logits.double(), target)
    if dtype == torch.bfloat16:
        assert got[0] == pytest.approx(expected[0], rel=1e-5, abs=1e-6)
        scale = float(np.abs(expected[1]).max())
        np.testing.assert_allclose(got[1], expected[1], rtol=2e-2, atol=2e-2 * scale)
        return
    float32 = value_and_grad(reference, logits.float(), target)
    tol = 1e-5 if dtype == torch.float32 else 1e-9
    assert_close(got, expected, tol, float32=float32 if dtype == torch.float32 else None)
    cpu = value_and_grad(loss.cpu(), logits, target)
    assert_close(got, cpu, max(tol, 1e-6))


@pytest.mark.parametrize("loss", [DiceLoss, DiceCELoss])
@pytest.mark.parametrize("activation", ["softmax", "sigmoid"])
def test_no_host_sync_with_check_labels_off(loss: Any, activation: str) -> None:
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(2, 3, 8, 9, 10, generator=gen).cuda().requires_grad_()
    target = torch.randint(0, 3, (2, 8, 9, 10), generator=gen).cuda()
    f = loss(activation=activation, weight=[1.0, 2.0, 0.5], check_labels=False).cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        value = f(logits, target)
        (grad,) = torch.autograd.grad(value, logits)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    expected = value_and_grad(f.cpu(), logits.detach().cpu(), target.cpu())
    assert_close((float(value), grad.double().cpu().numpy()), expected, 1e-5)


def test_forward_and_backward_in_a_cuda_graph() -> None:
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(2, 3, 6, 7, 8, generator=gen).cuda().requires_grad_()
    target = torch.randint(0, 3, (2, 6, 7, 8), generator=gen).cuda()
    f = DiceCELoss(batch_dice=True, check_labels=False).cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):  # warm-up outside the capture
            torch.autograd.grad(f(x, target), x)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        value = f(x, target)
        (grad,) = torch.autograd.grad(value, x)
    new = torch.randn(2, 3, 6, 7, 8, generator=gen)
    with torch.no_grad():
        x.copy_(new.cuda())
    graph.replay()
    torch.cuda.synchronize()
    expected = value_and_grad(DiceCELoss(batch_dice=True), new, target.cpu())
    assert_close((float(value), grad.double().cpu().numpy()), expected, 1e-5)
