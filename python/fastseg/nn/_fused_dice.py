"""The fused soft-Dice (+ cross-entropy) loss over the native kernels of ``cpp/src/loss``.

One native pass over the logits ``(N, C, z, y, x)`` gives five sums per (sample, class) —
Σpt, Σp, Σp², Σt and the cross-entropy — with ``p`` the softmax (or sigmoid) and ``t`` the
one-hot target built on the fly from the label map. Everything the options change (squared
denominators, smoothing, class weights, background, batch or per-sample reduction, the CE term)
is a function of these ``(N, C)`` sums, written here in PyTorch, which differentiates it; one
native backward pass turns the sums' gradients into ``dL/dlogits``, recomputing the softmax.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from fastseg import _native

_INTER, _P, _Q, _T, _CE = range(5)
_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def fused_supported(logits: torch.Tensor) -> bool:
    """Whether the native kernels take these logits (CPU, or CUDA in a CUDA build)."""
    if logits.dtype not in _FLOATS:
        return False
    if logits.device.type == "cpu":
        return True
    return bool(logits.is_cuda) and _native.core.cuda is not None


class _DiceSums(torch.autograd.Function):
    """logits (N, C, V), target (N, V) labels or (N, C, V) uint8 mask -> sums (N, C, 5) float64."""

    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        target: torch.Tensor,
        sigmoid: bool,
        with_ce: bool,
        label_offset: int,
    ) -> torch.Tensor:
        ctx.sigmoid, ctx.label_offset = sigmoid, label_offset
        ctx.save_for_backward(logits, target)
        if logits.is_cuda:
            sums: torch.Tensor = _native.dice_sums(
                logits, target, sigmoid=sigmoid, with_ce=with_ce, label_offset=label_offset
            )
            return sums
        out = _native.dice_sums(
            logits.detach().numpy(),
            target.numpy(),
            sigmoid=sigmoid,
            with_ce=with_ce,
            label_offset=label_offset,
        )
        return torch.from_numpy(out)

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_sums: torch.Tensor
    ) -> tuple[torch.Tensor | None, None, None, None, None]:
        logits, target = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        grads = grad_sums[..., [_INTER, _P, _Q, _CE]].to(torch.float64).contiguous()
        if logits.is_cuda:
            grad = _native.dice_backward(
                logits, target, grads, sigmoid=ctx.sigmoid, label_offset=ctx.label_offset
            )
        else:
            grad = torch.from_numpy(
                _native.dice_backward(
                    logits.detach().numpy(),
                    target.numpy(),
                    grads.cpu().numpy(),
                    sigmoid=ctx.sigmoid,
                    label_offset=ctx.label_offset,
                )
            )
        return grad, None, None, None, None


def fused_sums(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    sigmoid: bool,
    with_ce: bool,
    label_offset: int,
) -> torch.Tensor:
    """Sums (N, C, 5) float64 (Σpt, Σp, Σp², Σt, cross-entropy) of logits (N, C, *spatial).

    ``target`` is checked already: an integer label map (N, *spatial) whose class c is label
    ``c + label_offset``, or (sigmoid) a uint8 0/1 mask of logits' shape. CPU logits of half
    precision are computed in float32.
    """
    n, c = logits.shape[:2]
    x = logits
    if not x.is_cuda and x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    x = x.reshape(n, c, -1).contiguous()
    mask = target.dim() == logits.dim()
    t = target.reshape(n, c, -1) if mask else target.reshape(n, -1)
    sums: torch.Tensor = _DiceSums.apply(x, t.contiguous(), sigmoid, with_ce, label_offset)
    return sums


def dice_from_sums(
    sums: torch.Tensor,
    *,
    squared: bool,
    include_background: bool,
    batch_dice: bool,
    weight: torch.Tensor | None,
    smooth_nr: float,
    smooth_dr: float,
) -> torch.Tensor:
    """Mean over samples (or the one batch group) of Σ_c w_c (1 - dice_c) / Σ_c w_c."""
    inter, p_sum = sums[..., _INTER], sums[..., _Q if squared else _P]
    t_sum = sums[..., _T]
    if batch_dice:
        inter, p_sum, t_sum = (s.sum(0, keepdim=True) for s in (inter, p_sum, t_sum))
    dice = (2 * inter + smooth_nr) / (p_sum + t_sum + smooth_dr)
    start = 0 if include_background else 1
    dice = dice[:, start:]
    if weight is None:
        return (1 - dice).mean()
    w = weight[start:].to(dice)
    return (((1 - dice) * w).sum(1) / w.sum()).mean()


def ce_from_sums(
    sums: torch.Tensor, *, sigmoid: bool, weight: torch.Tensor | None, voxels: int
) -> torch.Tensor:
    """Cross-entropy mean as ``F.cross_entropy`` (softmax, class-weighted mean over voxels) or
    ``F.binary_cross_entropy_with_logits`` (sigmoid, weight per channel) computes it."""
    ce, t_sum = sums[..., _CE], sums[..., _T]
    w = (
        torch.ones(sums.shape[1], dtype=sums.dtype, device=sums.device)
        if weight is None
        else weight.to(sums)
    )
    if sigmoid:
        return (ce * w).sum() / (sums.shape[0] * sums.shape[1] * voxels)
    return (ce * w).sum() / (t_sum * w).sum()
