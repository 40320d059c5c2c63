"""The training loop: AdamW, poly learning-rate decay over a time or iteration budget, progress."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from fastseg.errors import InputError
from fastseg.train._sampler import PatchSampler


@dataclass
class LoopConfig:
    """Training settings. The run stops at ``time_budget_s`` seconds or ``max_iterations``,
    whichever comes first; the learning rate decays as ``lr * (1 - progress) ** poly_power``,
    progress being the larger of the time and iteration fractions (iterations only when
    ``time_budget_s`` is None, which makes a run reproducible for a fixed seed)."""

    batch_size: int = 2
    learning_rate: float = 3e-3
    weight_decay: float = 3e-5
    time_budget_s: float | None = 240.0
    max_iterations: int | None = None
    poly_power: float = 0.9
    grad_clip: float = 12.0
    log_interval_s: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.time_budget_s is None and self.max_iterations is None:
            raise InputError("LoopConfig: give time_budget_s, max_iterations or both")
        if self.time_budget_s is not None and not self.time_budget_s >= 0:
            raise InputError(f"time_budget_s: expected >= 0 seconds, got {self.time_budget_s}")
        if self.max_iterations is not None and self.max_iterations < 0:
            raise InputError(f"max_iterations: expected >= 0, got {self.max_iterations}")
        if self.batch_size < 1:
            raise InputError(f"batch_size: expected >= 1, got {self.batch_size}")
        if not self.learning_rate > 0:
            raise InputError(f"learning_rate: expected > 0, got {self.learning_rate}")


@dataclass
class TrainResult:
    """What a run did: iterations, seconds, the loss of every iteration, why it stopped."""

    iterations: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    stopped_by: str = "time"

    @property
    def final_loss(self) -> float:
        """Mean loss over the last 10% of iterations (NaN when there were none)."""
        if not self.losses:
            return math.nan
        tail = self.losses[-max(1, len(self.losses) // 10) :]
        return float(np.mean(tail))


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def train(
    model: nn.Module,
    sampler: PatchSampler,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    config: LoopConfig | None = None,
    log: Callable[[str], None] | None = print,
) -> TrainResult:
    """Train ``model`` in place on batches from ``sampler``; returns a :class:`TrainResult`.

    Batches are ``(N, C, z, y, x)`` on the device of the model's parameters. A log line with the
    loss, iterations/s, learning rate and time left goes to ``log`` every ``log_interval_s``
    seconds. The model is left in eval mode. Ctrl-C propagates (KeyboardInterrupt).
    """
    config = config or LoopConfig()
    torch.manual_seed(config.seed)
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    budget = config.time_budget_s
    max_iterations = config.max_iterations
    result = TrainResult(iterations=0, seconds=0.0)
    model.train()
    start = last_log = time.perf_counter()
    last_iterations = 0
    while True:
        elapsed = time.perf_counter() - start
        fractions = []
        if budget is not None:
            fractions.append(elapsed / budget if budget > 0 else 1.0)
        if max_iterations is not None:
            fractions.append(result.iterations / max_iterations if max_iterations > 0 else 1.0)
        progress = max(fractions)
        if progress >= 1.0:
            result.stopped_by = (
                "iterations"
                if max_iterations is not None and result.iterations >= max_iterations
                else "time"
            )
            break
        lr = config.learning_rate * (1.0 - progress) ** config.poly_power
        for group in optimizer.param_groups:
            group["lr"] = lr

        images, labels = sampler.sample(config.batch_size)
        x = torch.from_numpy(images).to(device)
        y = torch.from_numpy(labels).to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        result.losses.append(float(loss.detach()))
        result.iterations += 1

        now = time.perf_counter()
        if log is not None and now - last_log >= config.log_interval_s:
            rate = (result.iterations - last_iterations) / (now - last_log)
            lefts = []
            if budget is not None:
                lefts.append(budget - (now - start))
            if max_iterations is not None:
                lefts.append((max_iterations - result.iterations) / max(rate, 1e-9))
            left = min(lefts)
            recent = float(np.mean(result.losses[last_iterations:]))
            log(
                f"train  it {result.iterations:5d}  loss {recent:.4f}  {rate:.2f} it/s  "
                f"lr {lr:.2e}  elapsed {_clock(now - start)}  left ~{_clock(left)}"
            )
            last_log, last_iterations = now, result.iterations
    result.seconds = time.perf_counter() - start
    model.eval()
    return result
