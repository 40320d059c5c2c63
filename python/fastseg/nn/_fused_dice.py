"""The fused soft-Dice (+ cross-entropy) loss over the native kernels of ``cpp/src/loss``.

One native pass over the logits ``(N, C, z, y, x)`` gives five sums per (sample, class) —
Σpt, Σp, Σp², Σt and the cross-entropy — with ``p`` the softmax (or sigmoid) and ``t`` the
one-hot target built on the fly from the label map. Everything the options change (squared
denominators, smoothing, class weights, background, batch or per-sample reduction, the CE term)
is a function of these ``(N, C)`` sums, computed natively (``cpp/include/fastseg/dice_loss.h``)
with its gradients: on a GPU the forward pass is three launches (sums, their reduction, the loss)
and the backward pass two (the sums' gradients from the sums and dL/dloss, read on the device,
then one pass over the logits), with no host sync. :func:`dice_from_sums` and :func:`ce_from_sums` are the same
math in PyTorch, the readable reference the native math is tested against.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


class DiceOptions(NamedTuple):
    """The loss's options in the order the native code takes them (``options`` of
    :func:`fastseg._native.dice_loss_forward`)."""

    squared: bool
    include_background: bool
    batch_dice: bool
    smooth_nr: float
    smooth_dr: float
    dice_weight: float
    ce_weight: float


class _FusedDiceLoss(torch.autograd.Function):
    """logits (N, C, V), target (N, V) labels or (N, C, V) uint8 mask -> the loss (0-dim)."""

    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        sigmoid: bool,
        with_ce: bool,
        label_offset: int,
        options: DiceOptions,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        ctx.args = {"sigmoid": sigmoid, "with_ce": with_ce, "label_offset": label_offset}
        ctx.options = tuple(options)
        if logits.is_cuda:
            sums, loss = _native.dice_loss_forward(
                logits,
                target,
                weight,
                options=ctx.options,
                loss_double=dtype == torch.float64,
                **ctx.args,
            )
        else:
            sums_np, value = _native.dice_loss_forward(
                logits.detach().numpy(),
                target.numpy(),
                None if weight is None else weight.numpy(),
                options=ctx.options,
                **ctx.args,
            )
            sums = torch.from_numpy(sums_np)
            loss = torch.tensor(value, dtype=dtype)
        ctx.save_for_backward(logits, target, sums, weight)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        nones = (None,) * 7
        if not ctx.needs_input_grad[0]:
            return (None, *nones)
        logits, target, sums, weight = ctx.saved_tensors
        if logits.is_cuda:
            grad = _native.dice_loss_backward(
                logits, target, sums, weight, grad_loss, options=ctx.options, **ctx.args
            )
            return (grad, *nones)
        grad_np = _native.dice_loss_backward(
            logits.detach().numpy(),
            target.numpy(),
            sums.numpy(),
            None if weight is None else weight.numpy(),
            float(grad_loss),
            options=ctx.options,
            **ctx.args,
        )
        return (torch.from_numpy(grad_np), *nones)


def fused_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    *,
    sigmoid: bool,
    with_ce: bool,
    label_offset: int,
    options: DiceOptions,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The loss (0-dim, ``dtype``) of logits (N, C, *spatial): ``dice_weight`` times the Dice term
    of :func:`dice_from_sums` plus, with ``with_ce``, ``ce_weight`` times :func:`ce_from_sums`.

    ``target`` is checked already: an integer label map (N, *spatial) whose class c is label
    ``c + label_offset``, or (sigmoid) a uint8 0/1 mask of logits' shape. ``weight``: None or C
    class weights. CPU logits of half precision are computed in float32.
    """
    n, c = logits.shape[:2]
    x = logits
    if not x.is_cuda and x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    x = x.reshape(n, c, -1).contiguous()
    mask = target.dim() == logits.dim()
    t = target.reshape(n, c, -1) if mask else target.reshape(n, -1)
    w = None
    if weight is not None:
        w = weight.to(device=x.device, dtype=torch.float64).contiguous()
    loss: torch.Tensor = _FusedDiceLoss.apply(
        x, t.contiguous(), w, sigmoid, with_ce, label_offset, options, dtype
    )
    return loss


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
