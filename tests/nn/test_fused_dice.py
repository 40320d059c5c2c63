"""The fused native soft-Dice (+ CE) loss against the plain PyTorch formulas and a NumPy formula;
gradients by comparison and by gradcheck; determinism; bad input."""

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

LABEL_DTYPES = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]


@st.composite
def problems(draw: st.DrawFn) -> dict[str, Any]:
    """Random logits, a label map (some classes left empty) and loss options."""
    sigmoid = draw(st.booleans())
    c = draw(st.integers(1, 5) if sigmoid else st.integers(2, 5))
    n = draw(st.integers(1, 3))
    spatial = draw(st.lists(st.integers(1, 9), min_size=1, max_size=3))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([0.1, 1.0, 5.0, 30.0]))
    logits = rng.normal(0, scale, size=(n, c, *spatial)).astype(np.float32)
    top = 2 if sigmoid and c == 1 else c
    present = draw(st.lists(st.integers(0, top - 1), min_size=1, max_size=top, unique=True))
    target = rng.choice(np.array(present), size=(n, *spatial))
    weighted = draw(st.booleans())
    include_background = draw(st.booleans()) if c > 1 else True
    options = {
        "activation": "sigmoid" if sigmoid else "softmax",
        "squared": draw(st.booleans()),
        "include_background": include_background,
        "batch_dice": draw(st.booleans()),
        "weight": rng.uniform(0.2, 3.0, size=c).tolist() if weighted else None,
        "smooth_nr": draw(st.sampled_from([1e-5, 0.0, 1.0])),
        "smooth_dr": draw(st.sampled_from([1e-5, 1.0])),
    }
    dtype = draw(st.sampled_from(LABEL_DTYPES))
    return {"logits": logits, "target": torch.from_numpy(target).to(dtype), "options": options}


def value_and_grad(
    loss: torch.nn.Module | Any, logits: torch.Tensor, target: torch.Tensor
) -> tuple[float, np.ndarray]:
    x = logits.clone().requires_grad_()
    value = loss(x, target)
    (grad,) = torch.autograd.grad(value, x)
    return float(value.detach()), grad.double().numpy()


def assert_close_to_reference(
    got: tuple[float, np.ndarray],
    expected: tuple[float, np.ndarray],
    tol: float = 1e-5,
    float32: tuple[float, np.ndarray] | None = None,
) -> None:
    """Value and gradient within ``tol`` (gradients relative to their largest entry, plus 1e-15:
    where every voxel saturates, the float64 reference itself rounds 1 - p to 0). ``float32``,
    the same reference evaluated in float32, widens the tolerance by 4x that run's own rounding
    error: float32 inputs at the optimum of saturated voxels (p -> 1) carry an error that no
    float32 formula avoids, and the fused kernels must then be as accurate as plain PyTorch."""
    slack_value = slack_grad = 0.0
    if float32 is not None:
        slack_value = 4 * abs(float32[0] - expected[0])
        slack_grad = 4 * float(np.abs(float32[1] - expected[1]).max())
    assert got[0] == pytest.approx(expected[0], rel=tol, abs=tol + slack_value)
    scale = max(float(np.abs(expected[1]).max()), 1e-12)
    np.testing.assert_allclose(got[1], expected[1], rtol=tol, atol=tol * scale + slack_grad + 1e-15)


@given(problems())
def test_dice_loss_matches_reference_float32(p: dict[str, Any]) -> None:
    logits, target, options = torch.from_numpy(p["logits"]), p["target"], p["options"]
    got = value_and_grad(DiceLoss(**options), logits, target)
    assert got[1].dtype == np.float64 and np.isfinite(got[1]).all()

    def reference(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return dice_loss_reference(x, t, **options)

    expected = value_and_grad(reference, logits.double(), target)
    float32 = value_and_grad(reference, logits, target)
    assert_close_to_reference(got, expected, float32=float32)


@given(problems(), st.floats(0.0, 2.0), st.floats(0.0, 2.0))
def test_dice_ce_loss_matches_reference_float32(
    p: dict[str, Any], dice_weight: float, ce_weight: float
) -> None:
    logits, target, options = torch.from_numpy(p["logits"]), p["target"], p["options"]
    loss = DiceCELoss(dice_weight, ce_weight, **options)
    got = value_and_grad(loss, logits, target)

    def reference(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        dice = dice_loss_reference(x, t, **options)
        ce = cross_entropy_reference(
            x, t, activation=options["activation"], weight=options["weight"]
        )
        return dice_weight * dice + ce_weight * ce

    expected = value_and_grad(reference, logits.double(), target)
    float32 = value_and_grad(reference, logits, target)
    assert_close_to_reference(got, expected, float32=float32)


@given(problems())
def test_float64_matches_reference_to_rounding(p: dict[str, Any]) -> None:
    # |x| <= 4: no voxel saturates, where the plain formula itself loses digits to 1 - p (the fused
    # backward does not; saturated voxels are covered by the float32 tests).
    x = p["logits"].astype(np.float64)
    logits, target, options = (
        torch.from_numpy(x / max(1.0, np.abs(x).max() / 4)),
        p["target"],
        p["options"],
    )
    got = value_and_grad(DiceCELoss(0.6, 1.4, **options), logits, target)
    expected = value_and_grad(DiceCELoss(0.6, 1.4, fused=False, **options), logits, target)
    assert_close_to_reference(got, expected, tol=1e-9)


def numpy_sums(logits: np.ndarray, target: np.ndarray, sigmoid: bool, offset: int) -> np.ndarray:
    """The five sums per (sample, class), written out with NumPy in float64."""
    x = logits.astype(np.float64)
    c = x.shape[1]
    if sigmoid:
        p = 1 / (1 + np.exp(-x))
    else:
        e = np.exp(x - x.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
    t = np.stack([target == k + offset for k in range(c)], axis=1).astype(np.float64)
    if sigmoid:
        ce = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    else:
        ce = -np.log(p) * t
    axes = tuple(range(2, x.ndim))
    return np.stack(
        [(p * t).sum(axes), p.sum(axes), (p * p).sum(axes), t.sum(axes), ce.sum(axes)], axis=-1
    )


@pytest.mark.parametrize(("sigmoid", "c", "offset"), [(False, 3, 0), (True, 4, 0), (True, 1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_native_sums_match_numpy_across_blocks(
    sigmoid: bool, c: int, offset: int, dtype: type
) -> None:
    # 2 x 8963 voxels: several work blocks (8192) and a ragged last sub-block.
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 4, size=(2, c, 8963)).astype(dtype)
    target = rng.integers(0, c + offset, size=(2, 8963)).astype(np.int16)
    got = _native.dice_sums(logits, target, sigmoid=sigmoid, with_ce=True, label_offset=offset)
    np.testing.assert_allclose(
        got,
        numpy_sums(logits, target, sigmoid, offset),
        rtol=2e-6 if dtype == np.float32 else 1e-12,
    )
    no_ce = _native.dice_sums(logits, target, sigmoid=sigmoid, with_ce=False, label_offset=offset)
    np.testing.assert_array_equal(no_ce[..., 4], 0.0)
    np.testing.assert_array_equal(no_ce[..., :4], got[..., :4])


def test_sums_do_not_depend_on_thread_count() -> None:
    rng = np.random.default_rng(4)
    logits = torch.from_numpy(rng.normal(size=(2, 3, 21, 30, 33)).astype(np.float32))
    target = torch.from_numpy(rng.integers(0, 3, size=(2, 21, 30, 33)))
    threads = _native.build_info()["openmp_threads"]
    results = []
    try:
        for n in (1, 2, 3):
            _native.set_num_threads(n)
            results.append(value_and_grad(DiceCELoss(), logits, target))
    finally:
        _native.set_num_threads(threads)
    for value, grad in results[1:]:
        assert value == results[0][0]
        np.testing.assert_array_equal(grad, results[0][1])


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"squared": False},
        {"include_background": False, "weight": [0.5, 2.0, 1.0]},
        {"batch_dice": True, "smooth_nr": 0.0, "smooth_dr": 1e-3},
        {"activation": "sigmoid"},
        {"activation": "sigmoid", "include_background": False, "batch_dice": True},
    ],
)
@pytest.mark.parametrize("module", [DiceLoss, DiceCELoss])
def test_gradcheck_float64(kwargs: dict[str, Any], module: type) -> None:
    rng = np.random.default_rng(5)
    logits = torch.from_numpy(rng.normal(0, 2, size=(2, 3, 3, 2, 3))).requires_grad_()
    target = torch.from_numpy(rng.integers(0, 2, size=(2, 3, 2, 3)))  # class 2 empty
    loss = module(**kwargs)
    assert torch.autograd.gradcheck(lambda x: loss(x, target), (logits,), eps=1e-6, atol=1e-7)


def test_gradcheck_sigmoid_single_channel_and_mask() -> None:
    rng = np.random.default_rng(6)
    logits = torch.from_numpy(rng.normal(size=(2, 1, 4, 3))).requires_grad_()
    binary = torch.from_numpy(rng.integers(0, 2, size=(2, 4, 3)))
    loss = DiceCELoss(activation="sigmoid")
    assert torch.autograd.gradcheck(lambda x: loss(x, binary), (logits,), eps=1e-6, atol=1e-7)
    multi = torch.from_numpy(rng.normal(size=(2, 3, 4, 3))).requires_grad_()
    mask = torch.from_numpy(rng.integers(0, 2, size=(2, 3, 4, 3))).bool()
    assert torch.autograd.gradcheck(lambda x: loss(x, mask), (multi,), eps=1e-6, atol=1e-7)


@given(seed=st.integers(0, 2**31 - 1), c=st.integers(2, 5), squared=st.booleans())
def test_multilabel_mask_matches_reference(seed: int, c: int, squared: bool) -> None:
    rng = np.random.default_rng(seed)
    logits = torch.from_numpy(rng.normal(0, 3, size=(2, c, 5, 4, 3)).astype(np.float32))
    mask = torch.from_numpy(rng.random(size=(2, c, 5, 4, 3)) < 0.3)  # overlapping labels
    options = {"activation": "sigmoid", "squared": squared}
    got = value_and_grad(DiceCELoss(**options), logits, mask.to(torch.uint8))
    reference = DiceCELoss(fused=False, **options)
    expected = value_and_grad(reference, logits.double(), mask)
    assert_close_to_reference(got, expected, float32=value_and_grad(reference, logits, mask))


def test_sigmoid_single_channel_uses_label_one_as_foreground() -> None:
    rng = np.random.default_rng(7)
    logits = torch.from_numpy(rng.normal(size=(2, 1, 6, 5)))
    labels = torch.from_numpy(rng.integers(0, 2, size=(2, 6, 5)))
    p = torch.sigmoid(logits[:, 0])
    t = labels.double()
    dice = (2 * (p * t).sum((1, 2)) + 1e-5) / ((p * p).sum((1, 2)) + t.sum((1, 2)) + 1e-5)
    got = DiceLoss(activation="sigmoid")(logits, labels)
    assert float(got) == pytest.approx(float(1 - dice.mean()), rel=1e-12)
    assert float(DiceLoss(activation="sigmoid")(logits, labels.bool())) == float(got)


def test_non_contiguous_logits_and_channel_axis_target() -> None:
    rng = np.random.default_rng(8)
    base = torch.from_numpy(rng.normal(size=(2, 7, 6, 3, 4)).astype(np.float32))
    logits = base.permute(0, 2, 1, 3, 4)[:, :3]  # (2, 3, 7, 3, 4), not contiguous
    target = torch.from_numpy(rng.integers(0, 3, size=(2, 1, 7, 3, 4)))
    assert not logits.is_contiguous()
    got = value_and_grad(DiceCELoss(), logits, target)
    expected = value_and_grad(DiceCELoss(), logits.contiguous(), target[:, 0])
    assert got[0] == expected[0]
    np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_cpu_logits_computed_in_float32(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(9)
    logits = torch.from_numpy(rng.normal(size=(2, 3, 5, 6, 4))).to(dtype)
    target = torch.from_numpy(rng.integers(0, 3, size=(2, 5, 6, 4)))
    x = logits.clone().requires_grad_()
    loss = DiceCELoss()(x, target)
    loss.backward()
    assert loss.dtype == torch.float32 and x.grad is not None and x.grad.dtype == dtype
    expected = DiceCELoss(fused=False)(logits.double(), target)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_extreme_logits_stay_finite() -> None:
    logits = torch.tensor([[[300.0, -300.0, 0.0, 1e4]], [[-300.0, 300.0, 0.0, -1e4]]]).permute(
        1, 0, 2
    )
    logits = logits.reshape(1, 2, 4).contiguous()
    target = torch.tensor([[0, 1, 1, 0]])
    for activation in ("softmax", "sigmoid"):
        got = value_and_grad(DiceCELoss(activation=activation), logits, target)
        expected = value_and_grad(
            DiceCELoss(activation=activation, fused=False), logits.double(), target
        )
        assert np.isfinite(got[0]) and np.isfinite(got[1]).all()
        assert_close_to_reference(got, expected)


def test_empty_spatial_extent() -> None:
    logits = torch.zeros(2, 3, 0, 4, requires_grad=True)
    target = torch.zeros(2, 0, 4, dtype=torch.long)
    loss = DiceLoss()(logits, target)
    assert loss.item() == pytest.approx(0.0) == dice_loss_reference(logits, target).item()
    loss.backward()
    assert logits.grad is not None and logits.grad.shape == logits.shape


def test_perfect_prediction_and_weighted_empty_class() -> None:
    target = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    target[0, 1:3, 1:3, 1:3] = 1  # 8 voxels of class 1, 56 of class 0, none of class 2
    logits = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float() * 40 - 20
    assert float(DiceLoss()(logits, target)) == pytest.approx(0, abs=1e-6)
    # uniform p = 1/3: weight 0 drops the empty class, weights 1 and 3 average the other two
    uniform = torch.zeros(1, 3, 4, 4, 4, dtype=torch.float64)
    dice = [(2 * k / 3 + 1e-5) / (64 / 9 + k + 1e-5) for k in (56, 8)]
    got = float(DiceLoss(weight=[1.0, 3.0, 0.0])(uniform, target))
    assert got == pytest.approx(1 - (dice[0] + 3 * dice[1]) / 4, rel=1e-12)


def test_defaults_and_reference_switch() -> None:
    loss = DiceLoss()
    assert (loss.activation, loss.smooth_nr, loss.smooth_dr, loss.fused, loss.weight) == (
        "softmax",
        1e-5,
        1e-5,
        True,
        None,
    )
    assert DiceCELoss().dice.fused


@pytest.mark.parametrize(
    ("logits_shape", "target", "kwargs", "match"),
    [
        ((2, 3, 4, 4), torch.full((2, 4, 4), 3), {}, r"target: labels must lie in \[0, 2\]"),
        (
            (2, 3, 4, 4),
            torch.full((2, 4, 4), -1, dtype=torch.int8),
            {},
            r"target: labels must lie in \[0, 2\]",
        ),
        (
            (2, 1, 4, 4),
            torch.full((2, 4, 4), 2),
            {"activation": "sigmoid"},
            r"target: labels must lie in \[0, 1\]",
        ),
        ((2, 3, 4, 4), torch.zeros(2, 4, 5, dtype=torch.long), {}, "target: expected shape"),
        ((2, 3, 4, 4), torch.zeros(3, 4, 4, dtype=torch.long), {}, "target: expected shape"),
        ((2, 3, 4, 4), torch.zeros(2, 4, 4), {}, "target: expected an integer label map"),
        (
            (2, 3, 4, 4),
            torch.zeros(2, 4, 4, dtype=torch.bool),
            {},
            "target: expected an integer label map",
        ),
        (
            (2, 3, 4, 4),
            torch.full((2, 3, 4, 4), 2),
            {"activation": "sigmoid"},
            "target: a multi-label mask",
        ),
        ((2, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long), {}, "logits: softmax needs C >= 2"),
        ((0, 3, 4, 4), torch.zeros(0, 4, 4, dtype=torch.long), {}, "logits: expected N >= 1"),
        ((2, 3), torch.zeros(2, dtype=torch.long), {}, "logits: expected"),
        (
            (2, 3, 4, 4),
            torch.zeros(2, 4, 4, dtype=torch.long),
            {"weight": [1.0, 2.0]},
            "weight: expected 3 values",
        ),
        (
            (2, 3, 4, 4),
            torch.zeros(2, 4, 4, dtype=torch.long),
            {"weight": [1.0, 0.0, 0.0], "include_background": False},
            "weight: the weights",
        ),
    ],
)
@pytest.mark.parametrize("module", [DiceLoss, DiceCELoss])
def test_bad_input_raises_input_error(
    logits_shape: tuple[int, ...],
    target: torch.Tensor,
    kwargs: dict[str, Any],
    match: str,
    module: type,
) -> None:
    with pytest.raises(InputError, match=match):
        module(**kwargs)(torch.zeros(logits_shape), target)


def test_bad_options_and_logits_dtype() -> None:
    with pytest.raises(InputError, match="activation: expected 'softmax' or 'sigmoid'"):
        DiceLoss(activation="relu")
    with pytest.raises(InputError, match="weight: expected finite values >= 0"):
        DiceLoss(weight=[1.0, -1.0])
    with pytest.raises(InputError, match="weight: expected one value per class"):
        DiceCELoss(weight=[[1.0]])
    with pytest.raises(InputError, match="logits: expected a floating-point tensor"):
        DiceLoss()(torch.zeros(1, 2, 3, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))


def test_native_boundary_checks_name_the_argument() -> None:
    logits = np.zeros((2, 3, 10), np.float32)
    with pytest.raises(ValueError, match=r"target: expected shape \(2, 10\)"):
        _native.dice_sums(logits, np.zeros((2, 9), np.int64), sigmoid=False, with_ce=False)
    with pytest.raises(
        TypeError, match="target: expected dtype uint8, int8, int16, int32 or int64"
    ):
        _native.dice_sums(logits, np.zeros((2, 10), np.uint16), sigmoid=False, with_ce=False)
    with pytest.raises(TypeError, match="logits: expected dtype float32 or float64"):
        _native.dice_sums(
            logits.astype(np.float16), np.zeros((2, 10), np.int64), sigmoid=False, with_ce=False
        )
    with pytest.raises(TypeError, match="target: expected dtype uint8"):
        _native.dice_sums(logits, np.zeros((2, 3, 10), np.int64), sigmoid=True, with_ce=False)
    with pytest.raises(ValueError, match=r"grads: expected shape \(2, 3, 4\)"):
        _native.dice_backward(
            logits, np.zeros((2, 10), np.int64), np.zeros((2, 3, 5)), sigmoid=False
        )
