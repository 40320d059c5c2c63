"""Optimizers (AdamW; SGD with momentum + Nesterov) and the learning-rate schedule: linear
warm-up, then poly decay over the run's progress (iterations or time)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from fastseg.errors import InputError


def learning_rate(
    base: float,
    iteration: int,
    progress: float,
    warmup_iterations: int = 0,
    poly_power: float = 0.9,
) -> float:
    """The learning rate of (0-based) ``iteration``.

    During warm-up (``iteration < warmup_iterations``) it rises linearly,
    ``base * (iteration + 1) / warmup_iterations``; afterwards it is the poly decay
    ``base * (1 - progress) ** poly_power``, ``progress`` in [0, 1] being the fraction of the run
    done before this iteration (iterations / max_iterations, or the larger of that and the
    fraction of the time budget).
    """
    if iteration < 0:
        raise InputError(f"iteration: expected >= 0, got {iteration}")
    if iteration < warmup_iterations:
        return base * (iteration + 1) / warmup_iterations
    progress = min(max(float(progress), 0.0), 1.0)
    return base * (1.0 - progress) ** poly_power


def make_optimizer(
    params: Iterable[torch.nn.Parameter],
    name: str,
    lr: float,
    weight_decay: float,
    momentum: float = 0.99,
) -> torch.optim.Optimizer:
    """``adamw`` (torch AdamW) or ``sgd`` (SGD, momentum, Nesterov: nnU-Net's)."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=True
        )
    raise InputError(f"optim.optimizer: expected 'adamw' or 'sgd', got {name!r}")


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
