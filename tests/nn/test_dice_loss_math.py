"""The native sums -> loss and sums -> gradients math (cpp/include/fastseg/dice_loss.h, run by the
CPU path and by the CUDA finalize and backward kernels) against the PyTorch autograd of
``dice_from_sums`` / ``ce_from_sums``, and by gradcheck."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastseg import _native
from fastseg.nn._fused_dice import ce_from_sums, dice_from_sums

GRADDED = [0, 1, 2, 4]  # Σpt, Σp, Σp², cross-entropy (Σt has no gradient)


@st.composite
def sums_problems(draw: st.DrawFn) -> dict[str, Any]:
    """Random positive sums (N, C, 5) and every option of the loss."""
    sigmoid = draw(st.booleans())
    c = draw(st.integers(1, 5) if sigmoid else st.integers(2, 5))
    n = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    voxels = draw(st.integers(1, 500))
    sums = rng.uniform(0.0, voxels, size=(n, c, 5))
    sums[..., 3] = rng.integers(0, voxels + 1, size=(n, c))  # Σt: voxel counts, some 0
    sums[..., 3].flat[0] = max(sums[..., 3].flat[0], 1.0)  # the CE denominator is never 0
    include_background = draw(st.booleans()) if c > 1 else True
    weighted = draw(st.booleans())
    weight = rng.uniform(0.1, 3.0, size=c) if weighted else None
    if weight is not None and draw(st.booleans()):
        weight[rng.integers(0, c)] = 0.0  # a class left out of the loss
        if weight[0 if include_background else 1 :].sum() == 0:
            weight[-1] = 1.0
        if weight.sum() == 0:
            weight[0] = 1.0
    with_ce = draw(st.booleans())
    options = (
        draw(st.booleans()),  # squared
        include_background,
        draw(st.booleans()),  # batch_dice
        draw(st.sampled_from([1e-5, 0.0, 1.0])),  # smooth_nr
        draw(st.sampled_from([1e-5, 1.0])),  # smooth_dr
        draw(st.floats(0.0, 2.0)),  # dice_weight
        draw(st.floats(0.0, 2.0)) if with_ce else 0.0,  # ce_weight
    )
    return {
        "sums": sums,
        "weight": weight,
        "sigmoid": sigmoid,
        "with_ce": with_ce,
        "voxels": voxels,
        "options": options,
        "scale": draw(st.sampled_from([1.0, -0.5, 3.0])),
    }


def torch_loss(p: dict[str, Any], sums: torch.Tensor) -> torch.Tensor:
    squared, include_background, batch_dice, smooth_nr, smooth_dr, dice_w, ce_w = p["options"]
    weight = None if p["weight"] is None else torch.from_numpy(p["weight"])
    dice = dice_from_sums(
        sums,
        squared=squared,
        include_background=include_background,
        batch_dice=batch_dice,
        weight=weight,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
    )
    loss = dice_w * dice
    if p["with_ce"]:
        ce = ce_from_sums(sums, sigmoid=p["sigmoid"], weight=weight, voxels=p["voxels"])
        loss = loss + ce_w * ce
    return loss


def native(p: dict[str, Any], sums: np.ndarray, scale: float = 1.0) -> tuple[float, np.ndarray]:
    return _native.dice_loss_from_sums(
        sums,
        p["weight"],
        sigmoid=p["sigmoid"],
        with_ce=p["with_ce"],
        voxels=p["voxels"],
        options=p["options"],
        scale=scale,
    )


@given(sums_problems())
def test_native_loss_and_gradients_match_torch_autograd(p: dict[str, Any]) -> None:
    sums = torch.from_numpy(p["sums"]).requires_grad_()
    expected = torch_loss(p, sums)
    (grad,) = torch.autograd.grad(expected, sums)
    value, grads = native(p, p["sums"], p["scale"])
    assert value == pytest.approx(float(expected.detach()), rel=1e-12, abs=1e-14)
    assert grads.shape == (*p["sums"].shape[:2], 4)
    want = p["scale"] * grad.numpy()[..., GRADDED]
    np.testing.assert_allclose(grads, want, rtol=1e-10, atol=1e-14 * max(1.0, np.abs(want).max()))


class _NativeLoss(torch.autograd.Function):
    """The native loss as a function of the sums' differentiable columns (Σt held fixed)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: dict[str, Any]) -> torch.Tensor:
        sums = p["sums"].copy()
        sums[..., GRADDED] = x.detach().numpy()
        value, grads = native(p, sums)
        ctx.grads = torch.from_numpy(grads)
        return torch.tensor(value, dtype=torch.float64)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_out * ctx.grads, None


@pytest.mark.parametrize(
    "options",
    [
        (True, True, False, 1e-5, 1e-5, 1.0, 0.0),
        (False, False, True, 0.0, 1e-3, 0.7, 1.3),
        (True, False, False, 1.0, 1.0, 1.0, 2.0),
        (False, True, True, 1e-5, 1.0, 2.0, 0.5),
    ],
)
@pytest.mark.parametrize("sigmoid", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradcheck_float64_of_the_native_math(
    options: tuple[Any, ...], sigmoid: bool, weighted: bool
) -> None:
    rng = np.random.default_rng(11)
    sums = rng.uniform(0.5, 20.0, size=(3, 4, 5))
    sums[..., 3] = rng.integers(0, 20, size=(3, 4))
    sums[0, 0, 3] = 5.0
    p = {
        "sums": sums,
        "weight": rng.uniform(0.2, 2.0, size=4) if weighted else None,
        "sigmoid": sigmoid,
        "with_ce": options[6] != 0.0,
        "voxels": 20,
        "options": options,
    }
    x = torch.from_numpy(sums[..., GRADDED].copy()).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: _NativeLoss.apply(v, p), (x,), eps=1e-6, atol=1e-8)


def test_bad_sums_and_weight_name_the_argument() -> None:
    options = (True, True, False, 1e-5, 1e-5, 1.0, 0.0)
    kwargs: dict[str, Any] = {"sigmoid": False, "with_ce": False, "voxels": 4, "options": options}
    with pytest.raises(ValueError, match=r"sums: expected shape \(2, 3, 5\)"):
        _native.dice_loss_from_sums(np.zeros((2, 3, 4)), None, **kwargs)
    with pytest.raises(ValueError, match=r"weight: expected shape \(3\)"):
        _native.dice_loss_from_sums(np.zeros((2, 3, 5)), np.ones(2), **kwargs)
    with pytest.raises(ValueError, match="options: expected"):
        _native.dice_loss_from_sums(np.zeros((2, 3, 5)), None, **{**kwargs, "options": (True,)})
