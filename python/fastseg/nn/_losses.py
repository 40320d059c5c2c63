"""Soft Dice loss (Milletari et al. 2016, squared denominators) and Dice + cross-entropy.

Batches are ``(N, C, z, y, x)`` logits (any number of spatial axes) and ``(N, z, y, x)`` integer
label maps. The modules run the fused native kernels (:mod:`fastseg.nn._fused_dice`) on CPU
tensors and on CUDA tensors of a CUDA build; :func:`dice_loss_reference` and
:func:`cross_entropy_reference` are the plain PyTorch formulas, used elsewhere (and with
``fused=False``) and as the reference the kernels are tested against.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fastseg.errors import InputError
from fastseg.nn._fused_dice import DiceOptions, fused_loss, fused_supported

_LABEL_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _is_sigmoid(activation: str) -> bool:
    if activation not in ("softmax", "sigmoid"):
        raise InputError(f"activation: expected 'softmax' or 'sigmoid', got {activation!r}")
    return activation == "sigmoid"


def _prepare(
    logits: torch.Tensor, target: torch.Tensor, sigmoid: bool, check_labels: bool = True
) -> tuple[torch.Tensor, int, bool]:
    """Checks ``target`` against ``logits`` (N, C, *spatial); returns (target, label_offset, mask).

    A label map comes back as (N, *spatial) of a native label dtype, class c being label
    ``c + label_offset``; with sigmoid, a 0/1 target of logits' shape (C > 1) comes back as a
    uint8 multi-label mask. ``check_labels=False`` leaves the label range to the caller (the CPU
    kernel checks it in its own pass).
    """
    if logits.dim() < 3:
        raise InputError(f"logits: expected (N, C, *spatial), got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise InputError(f"logits: expected a floating-point tensor, got dtype {logits.dtype}")
    n, c = logits.shape[:2]
    if n == 0 or c == 0:
        raise InputError(f"logits: expected N >= 1 and C >= 1, got shape {tuple(logits.shape)}")
    if not sigmoid and c < 2:
        raise InputError(
            f"logits: softmax needs C >= 2 classes, got shape {tuple(logits.shape)} "
            "(use activation='sigmoid' for a single foreground channel)"
        )
    if target.device != logits.device:
        raise InputError(
            f"target: expected a tensor on {logits.device} like logits, got {target.device}"
        )
    if target.is_floating_point() or target.is_complex():
        raise InputError(f"target: expected an integer label map, got dtype {target.dtype}")
    if sigmoid and c > 1 and target.shape == logits.shape:
        if target.dtype != torch.bool and target.numel():
            lo, hi = (int(v) for v in torch.aminmax(target))
            if lo < 0 or hi > 1:
                raise InputError(
                    f"target: a multi-label mask of shape {tuple(target.shape)} must hold 0 and 1, "
                    f"got values in [{lo}, {hi}]"
                )
        return (target != 0).to(torch.uint8), 0, True
    if target.dim() == logits.dim() and target.shape[1] == 1:
        target = target[:, 0]
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise InputError(
            f"target: expected shape {(n, *logits.shape[2:])} (N, *spatial) "
            f"for logits {tuple(logits.shape)}, got {tuple(target.shape)}"
        )
    binary = sigmoid and c == 1  # one sigmoid channel: the foreground (label 1) of a {0, 1} map
    if target.dtype == torch.bool:
        if not binary:
            raise InputError(f"target: expected an integer label map, got dtype {target.dtype}")
        target = target.to(torch.uint8)
    top = 1 if binary else c - 1
    if check_labels and target.numel():
        lo, hi = (int(v) for v in torch.aminmax(target))
        if lo < 0 or hi > top:
            raise InputError(
                f"target: labels must lie in [0, {top}] for {c} classes "
                f"({'sigmoid' if sigmoid else 'softmax'}), got values in [{lo}, {hi}]"
            )
    if target.dtype not in _LABEL_DTYPES:
        target = target.to(torch.int64)
    return target, int(binary), False


def _weight_tensor(weight: Sequence[float] | torch.Tensor | None) -> torch.Tensor | None:
    if weight is None:
        return None
    w = torch.as_tensor(weight, dtype=torch.float64).detach().clone()
    if w.dim() != 1 or w.numel() == 0:
        raise InputError(f"weight: expected one value per class, got shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise InputError(f"weight: expected finite values >= 0, got {w.tolist()}")
    return w


def _check_weight_count(weight: torch.Tensor | None, classes: int) -> None:
    if weight is not None and weight.numel() != classes:
        raise InputError(f"weight: expected {classes} values (one per class), got {weight.numel()}")


def _check_weight_sum(weight: torch.Tensor | None, include_background: bool) -> None:
    if weight is not None and float(weight[0 if include_background else 1 :].sum()) <= 0:
        raise InputError("weight: the weights of the classes in the loss sum to 0")


def _check_weight(weight: torch.Tensor | None, classes: int, include_background: bool) -> None:
    _check_weight_count(weight, classes)
    _check_weight_sum(weight, include_background)


def _probs_and_onehot(
    logits: torch.Tensor, target: torch.Tensor, offset: int, mask: bool, sigmoid: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    probs = torch.sigmoid(logits) if sigmoid else torch.softmax(logits, dim=1)
    if mask:
        return probs, target.to(probs.dtype)
    classes = torch.arange(logits.shape[1], device=logits.device) + offset
    shape = (1, -1) + (1,) * (logits.dim() - 2)
    return probs, (target.unsqueeze(1) == classes.view(shape)).to(probs.dtype)


def dice_loss_reference(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str = "softmax",
    squared: bool = True,
    include_background: bool = True,
    batch_dice: bool = False,
    weight: Sequence[float] | torch.Tensor | None = None,
    smooth_nr: float = 1e-5,
    smooth_dr: float = 1e-5,
) -> torch.Tensor:
    """The soft Dice loss written out in plain PyTorch (probabilities and one-hot in memory).

    ``1 - (2Σpt + smooth_nr) / (Σp² + Σt² + smooth_dr)`` per sample (or batch) and class, then the
    ``weight``-weighted mean over the classes and the mean over samples. Same arguments as
    :class:`DiceLoss`.
    """
    sigmoid = _is_sigmoid(activation)
    target, offset, mask = _prepare(logits, target, sigmoid)
    w = _weight_tensor(weight)
    _check_weight(w, logits.shape[1], include_background)
    probs, onehot = _probs_and_onehot(logits, target, offset, mask, sigmoid)
    axes = tuple(range(2, logits.dim()))
    if batch_dice:
        axes = (0, *axes)
    intersection = (probs * onehot).sum(axes)
    p_sum = (probs * probs).sum(axes) if squared else probs.sum(axes)
    dice = (2 * intersection + smooth_nr) / (p_sum + onehot.sum(axes) + smooth_dr)
    dice = dice.reshape(-1 if batch_dice else logits.shape[0], logits.shape[1])
    start = 0 if include_background else 1
    if w is None:
        return 1 - dice[:, start:].mean()
    wk = w[start:].to(dice)
    return (((1 - dice[:, start:]) * wk).sum(1) / wk.sum()).mean()


def cross_entropy_reference(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    activation: str = "softmax",
    weight: Sequence[float] | torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.cross_entropy`` (softmax; ``weight`` per class) or ``F.binary_cross_entropy_with_logits``
    against the one-hot target (sigmoid; ``weight`` per channel), mean over voxels."""
    sigmoid = _is_sigmoid(activation)
    target, offset, mask = _prepare(logits, target, sigmoid)
    w = _weight_tensor(weight)
    _check_weight(w, logits.shape[1], True)
    if not sigmoid:
        return F.cross_entropy(logits, target.long(), weight=None if w is None else w.to(logits))
    _, onehot = _probs_and_onehot(logits, target, offset, mask, sigmoid)
    bw = None if w is None else w.to(logits).view((1, -1) + (1,) * (logits.dim() - 2))
    return F.binary_cross_entropy_with_logits(logits, onehot, weight=bw)


def _loss_dtype(logits: torch.Tensor) -> torch.dtype:
    return logits.dtype if logits.dtype in (torch.float32, torch.float64) else torch.float32


class DiceLoss(nn.Module):
    """``1 - (2Σpt + s) / (Σp² + Σt² + s)`` from logits, per sample and class, then the mean.

    ``logits`` ``(N, C, z, y, x)`` (any number of spatial axes), ``target`` ``(N, z, y, x)``
    integer labels in ``[0, C)`` (a ``(N, 1, ...)`` channel axis is accepted). ``p`` is the softmax
    over C, ``t`` the one-hot target, built on the fly (never stored). ``squared=False`` uses
    ``Σp + Σt``; ``batch_dice=True`` sums over the batch too (one Dice per class);
    ``include_background=False`` drops class 0; ``weight`` (one value per class) makes the mean
    over classes the weighted mean ``Σ w_c (1 - dice_c) / Σ w_c``; ``smooth`` is added to the
    numerator and the denominator (``smooth_nr``/``smooth_dr`` set them apart).

    ``activation="sigmoid"`` makes p the sigmoid of each channel (multi-label): the target is a
    label map (class c is label c; with one channel, label 1 is the foreground) or a 0/1 mask of
    the logits' shape. ``fused=False`` runs :func:`dice_loss_reference` instead of the kernels.

    Labels outside the classes are an error. On a GPU that check reads the target's range back
    to the host, which waits for every queued kernel; ``check_labels=False`` skips it (labels
    outside then count in no class) for a training loop whose labels are checked beforehand.
    The CPU kernels check the labels in their own pass, always.
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        smooth: float = 1e-5,
        squared: bool = True,
        include_background: bool = True,
        batch_dice: bool = False,
        *,
        activation: str = "softmax",
        weight: Sequence[float] | torch.Tensor | None = None,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        fused: bool = True,
        check_labels: bool = True,
    ) -> None:
        super().__init__()
        self.smooth = float(smooth)
        self.squared = squared
        self.include_background = include_background
        self.batch_dice = batch_dice
        _is_sigmoid(activation)
        self.activation = activation
        self.smooth_nr = self.smooth if smooth_nr is None else float(smooth_nr)
        self.smooth_dr = self.smooth if smooth_dr is None else float(smooth_dr)
        self.fused = fused
        self.check_labels = bool(check_labels)
        w = _weight_tensor(weight)
        _check_weight_sum(w, include_background)  # here: on a GPU it would be a device sync
        self.register_buffer("weight", w, persistent=False)

    def _fused(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        dice_weight: float = 1.0,
        ce_weight: float | None = None,
    ) -> torch.Tensor:
        """The fused loss: ``dice_weight`` times the Dice term, plus ``ce_weight`` times the
        cross-entropy unless ``ce_weight`` is None."""
        sigmoid = _is_sigmoid(self.activation)
        check = logits.is_cuda and self.check_labels
        prepared, offset, _ = _prepare(logits, target, sigmoid, check_labels=check)
        _check_weight_count(self.weight, logits.shape[1])
        options = DiceOptions(
            bool(self.squared),
            bool(self.include_background),
            bool(self.batch_dice),
            float(self.smooth_nr),
            float(self.smooth_dr),
            float(dice_weight),
            0.0 if ce_weight is None else float(ce_weight),
        )
        return fused_loss(
            logits,
            prepared,
            self.weight,
            sigmoid=sigmoid,
            with_ce=ce_weight is not None,
            label_offset=offset,
            options=options,
            dtype=_loss_dtype(logits),
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not (self.fused and fused_supported(logits)):
            return dice_loss_reference(
                logits,
                target,
                activation=self.activation,
                squared=self.squared,
                include_background=self.include_background,
                batch_dice=self.batch_dice,
                weight=self.weight,
                smooth_nr=self.smooth_nr,
                smooth_dr=self.smooth_dr,
            )
        return self._fused(logits, target)


class DiceCELoss(nn.Module):
    """``dice_weight * DiceLoss + ce_weight * cross-entropy``; same inputs as :class:`DiceLoss`,
    whose options the remaining arguments are. The cross-entropy is ``F.cross_entropy`` (softmax)
    or ``F.binary_cross_entropy_with_logits`` (sigmoid), weighted by ``weight`` as PyTorch's
    ``weight`` argument does; the fused path computes both terms in the same pass."""

    def __init__(
        self,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        smooth: float = 1e-5,
        squared: bool = True,
        include_background: bool = True,
        batch_dice: bool = False,
        *,
        activation: str = "softmax",
        weight: Sequence[float] | torch.Tensor | None = None,
        smooth_nr: float | None = None,
        smooth_dr: float | None = None,
        fused: bool = True,
        check_labels: bool = True,
    ) -> None:
        super().__init__()
        self.dice = DiceLoss(
            smooth,
            squared,
            include_background,
            batch_dice,
            activation=activation,
            weight=weight,
            smooth_nr=smooth_nr,
            smooth_dr=smooth_dr,
            fused=fused,
            check_labels=check_labels,
        )
        _check_weight_sum(self.dice.weight, True)  # the cross-entropy weighs every class
        self.dice_weight = float(dice_weight)
        self.ce_weight = float(ce_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        d = self.dice
        if not (d.fused and fused_supported(logits)):
            dice = d(logits, target)
            ce = cross_entropy_reference(logits, target, activation=d.activation, weight=d.weight)
            return self.dice_weight * dice + self.ce_weight * ce
        return d._fused(logits, target, self.dice_weight, self.ce_weight)
