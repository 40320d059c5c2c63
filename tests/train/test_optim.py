"""Optimizers and the learning-rate schedule (linear warm-up, then poly decay)."""

from __future__ import annotations

import pytest
import torch

from fastseg.errors import InputError
from fastseg.train import learning_rate, make_optimizer


def test_warmup_is_linear_then_poly_decay() -> None:
    base, warm = 0.01, 4
    values = [learning_rate(base, i, i / 10, warm, 0.9) for i in range(10)]
    assert values[:4] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])
    for i in range(4, 10):
        assert values[i] == pytest.approx(base * (1 - i / 10) ** 0.9)
    assert learning_rate(base, 10, 1.0, warm) == 0.0
    assert learning_rate(base, 3, 2.0, 0) == 0.0  # progress clamped to [0, 1]
    assert learning_rate(base, 0, 0.0, 0) == base


def test_poly_power_one_is_linear_decay() -> None:
    assert learning_rate(1.0, 5, 0.25, 0, 1.0) == pytest.approx(0.75)
    with pytest.raises(InputError, match="iteration"):
        learning_rate(1.0, -1, 0.0)


def test_optimizers() -> None:
    params = [torch.nn.Parameter(torch.zeros(3))]
    adamw = make_optimizer(params, "adamw", 1e-3, 3e-5)
    assert isinstance(adamw, torch.optim.AdamW)
    assert adamw.param_groups[0]["weight_decay"] == 3e-5
    sgd = make_optimizer(params, "sgd", 1e-2, 3e-5, momentum=0.99)
    assert isinstance(sgd, torch.optim.SGD)
    group = sgd.param_groups[0]
    assert group["nesterov"] is True and group["momentum"] == 0.99 and group["lr"] == 1e-2
    with pytest.raises(InputError, match=r"optim\.optimizer"):
        make_optimizer(params, "adam", 1e-3, 0.0)
