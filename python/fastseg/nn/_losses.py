"""Soft Dice loss (Milletari et al. 2016, squared denominators) and Dice + cross-entropy.

Plain PyTorch; the fused native kernel of the training-stack issue replaces the forward/backward
without changing the contract.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fastseg.errors import InputError


def _check(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``target`` as ``(N, *spatial)`` int64 after checking it against ``logits`` ``(N, C, *spatial)``."""
    if logits.dim() < 3:
        raise InputError(f"logits: expected (N, C, *spatial), got shape {tuple(logits.shape)}")
    if target.dim() == logits.dim() and target.shape[1] == 1:
        target = target[:, 0]
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise InputError(
            f"target: expected shape {(logits.shape[0], *logits.shape[2:])} (N, *spatial) "
            f"for logits {tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise InputError(f"target: expected an integer label map, got dtype {target.dtype}")
    if target.numel():
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= logits.shape[1]:
            raise InputError(
                f"target: labels must lie in [0, {logits.shape[1] - 1}] for {logits.shape[1]} "
                f"classes, got values in [{lo}, {hi}]"
            )
    return target.long()


class DiceLoss(nn.Module):
    """``1 - (2Σpt + s) / (Σp² + Σt² + s)`` from logits, per sample and class, then the mean.

    ``logits`` ``(N, C, z, y, x)`` (any number of spatial axes), ``target`` ``(N, z, y, x)``
    integer labels in ``[0, C)`` (a ``(N, 1, ...)`` channel axis is accepted). ``p`` is the softmax
    over C, ``t`` the one-hot target. ``squared=False`` uses ``Σp + Σt``; ``batch_dice=True`` sums
    over the batch too (one Dice per class); ``include_background=False`` drops class 0.
    """

    def __init__(
        self,
        smooth: float = 1e-5,
        squared: bool = True,
        include_background: bool = True,
        batch_dice: bool = False,
    ) -> None:
        super().__init__()
        self.smooth = float(smooth)
        self.squared = squared
        self.include_background = include_background
        self.batch_dice = batch_dice

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _check(logits, target)
        probs = torch.softmax(logits, dim=1)
        onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(probs.dtype)
        axes = tuple(range(2, logits.dim()))
        if self.batch_dice:
            axes = (0, *axes)
        intersection = (probs * onehot).sum(axes)
        p_sum = (probs * probs).sum(axes) if self.squared else probs.sum(axes)
        denominator = p_sum + onehot.sum(axes)
        dice = (2 * intersection + self.smooth) / (denominator + self.smooth)
        if not self.include_background:
            dice = dice[..., 1:]
        return 1 - dice.mean()


class DiceCELoss(nn.Module):
    """``dice_weight * DiceLoss + ce_weight * cross-entropy``; same inputs as :class:`DiceLoss`,
    whose options the remaining arguments are."""

    def __init__(
        self,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        smooth: float = 1e-5,
        squared: bool = True,
        include_background: bool = True,
        batch_dice: bool = False,
    ) -> None:
        super().__init__()
        self.dice = DiceLoss(smooth, squared, include_background, batch_dice)
        self.dice_weight = float(dice_weight)
        self.ce_weight = float(ce_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _check(logits, target)
        dice = self.dice(logits, target)
        return self.dice_weight * dice + self.ce_weight * F.cross_entropy(logits, target)
