"""Training: the fastseg trainer (:func:`train_run`, ``fastseg train``) and its configuration
(:class:`TrainConfig`, :func:`load_config`), plus the minimal loop :func:`train` over in-memory
cases that ``fastseg demo`` uses (:class:`LoopConfig`, :class:`PatchSampler`).

Images are ``(C, z, y, x)`` float32 (preprocessed), labels ``(z, y, x)`` integers; batches
``(N, C, z, y, x)``. Importing this package imports torch.
"""

from __future__ import annotations

from fastseg.train._config import TrainConfig, load_config
from fastseg.train._optim import learning_rate, make_optimizer
from fastseg.train._runner import TrainRunResult, train_run
from fastseg.train._sampler import PatchSampler
from fastseg.train._trainer import LoopConfig, TrainResult, train

__all__ = [
    "LoopConfig",
    "PatchSampler",
    "TrainConfig",
    "TrainResult",
    "TrainRunResult",
    "learning_rate",
    "load_config",
    "make_optimizer",
    "train",
    "train_run",
]
