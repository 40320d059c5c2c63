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
    capturable: bool = False,
) -> torch.optim.Optimizer:
    """``adamw`` (torch AdamW) or ``sgd`` (SGD, momentum, Nesterov: nnU-Net's).

    ``capturable``: a step that a CUDA graph can capture (CUDA parameters): the learning rate is
    a one-element tensor on the parameters' device (:func:`set_learning_rate` fills it in place)
    and AdamW keeps its step counts there (``capturable=True``), SGD runs its fused kernel.
    """
    params = list(params)
    if name not in ("adamw", "sgd"):
        raise InputError(f"optim.optimizer: expected 'adamw' or 'sgd', got {name!r}")
    if capturable:
        device = params[0].device if params else torch.device("cpu")
        rate: float | torch.Tensor = torch.tensor(float(lr), device=device)
    else:
        rate = lr
    if name == "adamw":
        return torch.optim.AdamW(params, lr=rate, weight_decay=weight_decay, capturable=capturable)
    return torch.optim.SGD(
        params,
        lr=rate,
        weight_decay=weight_decay,
        momentum=momentum,
        nesterov=True,
        fused=True if capturable else None,
    )


def conform_optimizer(optimizer: torch.optim.Optimizer, capturable: bool) -> None:
    """Puts a loaded optimizer state in the form of :func:`make_optimizer`'s ``capturable`` (a
    checkpoint of a CUDA-graph run resumed without one, or the other way round): the learning
    rate a tensor or a float, AdamW's ``capturable`` flag and step counts on the parameters'
    device or the host, SGD's ``fused``."""
    for group in optimizer.param_groups:
        params = group["params"]
        device = params[0].device if params else torch.device("cpu")
        lr = group["lr"]
        if capturable:
            if not isinstance(lr, torch.Tensor):
                group["lr"] = torch.tensor(float(lr), device=device)
            else:
                group["lr"] = lr.to(device)
        elif isinstance(lr, torch.Tensor):
            group["lr"] = float(lr)
        if "capturable" in group:
            group["capturable"] = capturable
            for p in params:
                step = optimizer.state.get(p, {}).get("step")
                if isinstance(step, torch.Tensor):
                    target = p.device if capturable else torch.device("cpu")
                    optimizer.state[p]["step"] = step.to(device=target, dtype=torch.float32)
        if isinstance(optimizer, torch.optim.SGD):
            group["fused"] = True if capturable else None
            group["foreach"] = None


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group's learning rate; a tensor rate (capturable optimizers) is filled in place,
    so that a captured step reads the new value."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr
