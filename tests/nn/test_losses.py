"""DiceLoss and DiceCELoss against slow loop formulas; gradients by gradcheck."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastseg.errors import InputError
from fastseg.nn import DiceCELoss, DiceLoss


def slow_dice_loss(
    logits: np.ndarray,
    target: np.ndarray,
    smooth: float = 1e-5,
    squared: bool = True,
    include_background: bool = True,
    batch_dice: bool = False,
) -> float:
    """The paper's formula with explicit loops over samples and classes."""
    n, c = logits.shape[:2]
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    groups = [list(range(n))] if batch_dice else [[i] for i in range(n)]
    scores = []
    for samples in groups:
        for k in range(0 if include_background else 1, c):
            inter = p_sum = t_sum = 0.0
            for i in samples:
                p = probs[i, k].ravel()
                t = (target[i].ravel() == k).astype(np.float64)
                inter += float(np.sum(p * t))
                p_sum += float(np.sum(p * p)) if squared else float(np.sum(p))
                t_sum += float(np.sum(t))
            scores.append((2 * inter + smooth) / (p_sum + t_sum + smooth))
    return 1.0 - float(np.mean(scores))


def slow_cross_entropy(logits: np.ndarray, target: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    picked = np.take_along_axis(log_probs, target[:, None], axis=1)
    return float(-picked.mean())


@given(
    n=st.integers(1, 3),
    c=st.integers(2, 4),
    spatial=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    seed=st.integers(0, 2**31 - 1),
    squared=st.booleans(),
    include_background=st.booleans(),
    batch_dice=st.booleans(),
    scale=st.sampled_from([0.1, 1.0, 10.0]),
)
def test_dice_loss_matches_slow_formula(
    n: int,
    c: int,
    spatial: list[int],
    seed: int,
    squared: bool,
    include_background: bool,
    batch_dice: bool,
    scale: float,
) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, scale, size=(n, c, *spatial))
    target = rng.integers(0, c, size=(n, *spatial))
    loss = DiceLoss(squared=squared, include_background=include_background, batch_dice=batch_dice)
    got = float(loss(torch.from_numpy(logits), torch.from_numpy(target)))
    expected = slow_dice_loss(logits, target, 1e-5, squared, include_background, batch_dice)
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_defaults_follow_the_contract() -> None:
    loss = DiceLoss()
    assert (loss.smooth, loss.squared, loss.include_background, loss.batch_dice) == (
        1e-5,
        True,
        True,
        False,
    )


def test_empty_class_counts_with_smoothing_only() -> None:
    # class 2 is absent from the target: its Dice is smooth / (Σp² + smooth), pushing p to 0.
    logits = torch.zeros(1, 3, 2, 2, 2, dtype=torch.float64)
    target = torch.zeros(1, 2, 2, 2, dtype=torch.long)
    target[0, 1] = 1
    got = float(DiceLoss()(logits, target))
    p = 1 / 3
    fg = (2 * 4 * p + 1e-5) / (8 * p * p + 4 + 1e-5)
    empty = 1e-5 / (8 * p * p + 1e-5)
    assert got == pytest.approx(1 - (fg + fg + empty) / 3, rel=1e-12)
    assert got == pytest.approx(slow_dice_loss(logits.numpy(), target.numpy()), rel=1e-12)


def test_all_empty_target_and_perfect_prediction() -> None:
    target = torch.zeros(2, 3, 4, 5, dtype=torch.long)
    target[1, :, 2:] = 1
    perfect = torch.nn.functional.one_hot(target, 2).movedim(-1, 1).double() * 60 - 30
    assert float(DiceLoss()(perfect, target)) == pytest.approx(0.0, abs=1e-9)
    assert float(DiceLoss()(-perfect, target)) > 0.99


def test_channel_axis_on_target_is_accepted() -> None:
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(size=(2, 3, 4, 4, 4)))
    target = torch.from_numpy(rng.integers(0, 3, size=(2, 4, 4, 4)))
    assert float(DiceLoss()(logits, target[:, None])) == float(DiceLoss()(logits, target))


@pytest.mark.parametrize(
    "kwargs", [{}, {"squared": False}, {"include_background": False}, {"batch_dice": True}]
)
def test_dice_loss_gradcheck(kwargs: dict[str, bool]) -> None:
    rng = np.random.default_rng(1)
    logits = torch.from_numpy(rng.normal(size=(2, 3, 3, 2, 3))).requires_grad_()
    target = torch.from_numpy(rng.integers(0, 2, size=(2, 3, 2, 3)))  # class 2 empty
    loss = DiceLoss(**kwargs)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,), eps=1e-6, atol=1e-6)


def test_dice_ce_loss_matches_slow_formula_and_gradcheck() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, size=(2, 4, 3, 5, 2))
    target = rng.integers(0, 4, size=(2, 3, 5, 2))
    loss = DiceCELoss(dice_weight=0.7, ce_weight=1.3)
    got = float(loss(torch.from_numpy(logits), torch.from_numpy(target)))
    expected = 0.7 * slow_dice_loss(logits, target) + 1.3 * slow_cross_entropy(logits, target)
    assert got == pytest.approx(expected, rel=1e-9)
    x = torch.from_numpy(logits[:1, :, :2, :2, :2].copy()).requires_grad_()
    t = torch.from_numpy(target[:1, :2, :2, :2].copy())
    assert torch.autograd.gradcheck(lambda v: loss(v, t), (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("logits_shape", "target", "match"),
    [
        ((2, 3, 4, 4), torch.full((2, 4, 4), 3), r"labels must lie in \[0, 2\]"),
        ((2, 3, 4, 4), torch.full((2, 4, 4), -1), r"labels must lie in \[0, 2\]"),
        ((2, 3, 4, 4), torch.zeros(2, 4, 5, dtype=torch.long), "target: expected shape"),
        ((2, 3, 4, 4), torch.zeros(2, 4, 4), "integer label map"),
        ((2, 3), torch.zeros(2, dtype=torch.long), "logits: expected"),
    ],
)
def test_bad_inputs_raise_input_error(
    logits_shape: tuple[int, ...], target: torch.Tensor, match: str
) -> None:
    with pytest.raises(InputError, match=match):
        DiceLoss()(torch.zeros(logits_shape), target)
    with pytest.raises(InputError, match=match):
        DiceCELoss()(torch.zeros(logits_shape), target)


def test_class_weights_are_checked_when_the_loss_is_made() -> None:
    """A weight vector whose counted classes sum to 0 is refused by the constructor (a check in
    forward would read a GPU buffer back every call); a wrong length by forward."""
    with pytest.raises(InputError, match="sum to 0"):
        DiceLoss(include_background=False, weight=[1.0, 0.0, 0.0])
    with pytest.raises(InputError, match="sum to 0"):
        DiceCELoss(weight=[0.0, 0.0])
    DiceLoss(weight=[1.0, 0.0, 0.0])  # background counts: fine
    with pytest.raises(InputError, match="expected 3 values"):
        DiceLoss(weight=[1.0, 1.0])(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(InputError, match="expected 3 values"):
        DiceCELoss(weight=[1.0, 1.0])(
            torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)
        )


@pytest.mark.parametrize("loss", [DiceLoss, DiceCELoss])
def test_cpu_kernels_check_labels_even_when_told_not_to(loss: Any) -> None:
    logits = torch.zeros(2, 3, 4, 4)
    with pytest.raises(InputError, match=r"labels must lie in \[0, 2\]"):
        loss(check_labels=False)(logits, torch.full((2, 4, 4), 3))
