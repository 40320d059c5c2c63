"""The training loop: learns an easy task, stops on iterations or time, logs, reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fastseg.errors import InputError
from fastseg.nn import DiceCELoss, UNet3D
from fastseg.train import LoopConfig, PatchSampler, TrainResult, train


def threshold_task(seed: int = 0) -> PatchSampler:
    """Label = image > 0.5: learnable by a 1x1x1 network in a few dozen steps."""
    rng = np.random.default_rng(seed)
    images = [rng.random((6, 8, 8)).astype(np.float32) for _ in range(3)]
    labels = [(im > 0.5).astype(np.uint8) for im in images]
    return PatchSampler(images, labels, (4, 4, 4), seed=seed)


def test_loss_decreases_and_stops_on_iterations() -> None:
    torch.manual_seed(0)
    model = UNet3D(1, 2, widths=(4,))
    messages: list[str] = []
    config = LoopConfig(
        batch_size=2, learning_rate=1e-2, time_budget_s=None, max_iterations=60, log_interval_s=0
    )
    result = train(model, threshold_task(), DiceCELoss(), config, log=messages.append)
    assert isinstance(result, TrainResult)
    assert result.iterations == 60 and len(result.losses) == 60
    assert result.stopped_by == "iterations"
    assert np.mean(result.losses[-10:]) < 0.5 * np.mean(result.losses[:5])
    assert result.final_loss == pytest.approx(np.mean(result.losses[-6:]))
    assert len(messages) == 60 and "it/s" in messages[0] and "left" in messages[0]
    assert not model.training


def test_zero_time_budget_trains_nothing() -> None:
    model = UNet3D(1, 2, widths=(4,))
    before = [p.detach().clone() for p in model.parameters()]
    result = train(model, threshold_task(), DiceCELoss(), LoopConfig(time_budget_s=0.0), log=None)
    assert result.iterations == 0 and result.stopped_by == "time"
    assert np.isnan(result.final_loss)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_short_time_budget_stops_on_time() -> None:
    model = UNet3D(1, 2, widths=(4,))
    result = train(model, threshold_task(), DiceCELoss(), LoopConfig(time_budget_s=0.3), log=None)
    assert result.stopped_by == "time" and result.iterations >= 1
    assert 0.3 <= result.seconds


def test_same_seed_same_run() -> None:
    config = LoopConfig(time_budget_s=None, max_iterations=8, seed=3)
    losses = []
    for _ in range(2):
        torch.manual_seed(5)
        model = UNet3D(1, 2, widths=(4, 8))
        losses.append(train(model, threshold_task(1), DiceCELoss(), config, log=None).losses)
    assert losses[0] == losses[1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"time_budget_s": None}, "give time_budget_s"),
        ({"time_budget_s": -1.0}, "time_budget_s"),
        ({"max_iterations": -1}, "max_iterations"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_config_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        LoopConfig(**kwargs)  # type: ignore[arg-type]
