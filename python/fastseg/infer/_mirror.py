"""Mirror test-time augmentation: average a model's logits over flips of its input."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch

from fastseg.errors import InputError

Predictor = Callable[[torch.Tensor], torch.Tensor]


def mirror_combinations(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of the spatial ``axes`` (0 = z, 1 = y, 2 = x), the empty one first, then by
    size in ``itertools.combinations`` order: the flips that mirror TTA averages over."""
    checked = check_mirror_axes(axes)
    return [c for r in range(len(checked) + 1) for c in itertools.combinations(checked, r)]


def check_mirror_axes(axes: Sequence[int]) -> tuple[int, ...]:
    try:
        checked = tuple(int(a) for a in axes)
    except (TypeError, ValueError):
        raise InputError(
            f"mirror_axes: expected spatial axes among 0, 1, 2, got {axes!r}"
        ) from None
    if any(a not in (0, 1, 2) for a in checked) or len(set(checked)) != len(checked):
        raise InputError(
            f"mirror_axes: expected distinct spatial axes among 0 (z), 1 (y), 2 (x), got {axes!r}"
        )
    return checked


def mirror_tta(predictor: Predictor, axes: Sequence[int] = (0, 1, 2)) -> Predictor:
    """A predictor returning the mean over all flips of ``axes`` of
    ``flip(predictor(flip(x)))``, float32 logits ``(N, K, z, y, x)`` (nnU-Net's mirroring: each
    window is mirrored, predicted and flipped back; ``2 ** len(axes)`` forward passes)."""
    combos = mirror_combinations(axes)

    def predict(x: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        for combo in combos:
            dims = [a + 2 for a in combo]
            if dims:
                out = torch.flip(predictor(torch.flip(x, dims)), dims).float()
            else:
                out = predictor(x).float()
            total = out if total is None else total + out
        assert total is not None
        return total / len(combos)

    return predict
