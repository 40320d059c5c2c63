"""Deep-supervision loss: one loss over a U-Net's outputs at decreasing resolutions."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from fastseg.errors import InputError


def deep_supervision_weights(count: int) -> list[float]:
    """nnU-Net v2's weights for ``count`` outputs (full resolution first): ``1 / 2**i``, the
    lowest resolution's weight set to 0 (when ``count > 1``), normalised to sum to 1."""
    if count < 1:
        raise InputError(f"outputs: expected at least one tensor, got {count}")
    weights = [1.0 / 2**i for i in range(count)]
    if count > 1:
        weights[-1] = 0.0
    total = sum(weights)
    return [w / total for w in weights]


def _scale(target_size: int, output_size: int, axis: int, index: int) -> int:
    """The smallest power of two ``s`` with ``ceil(target_size / s) == output_size``."""
    s = 1
    while -(-target_size // s) > output_size:
        s *= 2
    if -(-target_size // s) != output_size:
        raise InputError(
            f"outputs[{index}]: size {output_size} on spatial axis {axis} is not the target's "
            f"{target_size} downsampled by a power of two; pass scales"
        )
    return s


def downsample_target(target: torch.Tensor, scale: Sequence[int]) -> torch.Tensor:
    """``target[..., ::sz, ::sy, ::sx]``: strided (nearest) selection on the trailing spatial axes,
    one step per axis of ``scale`` (in (z, y, x) order)."""
    if all(s == 1 for s in scale):
        return target
    lead = (slice(None),) * (target.dim() - len(scale))
    return target[(*lead, *(slice(None, None, s) for s in scale))]


class DeepSupervisionLoss(nn.Module):
    """``loss`` summed over a list of logits at decreasing resolutions (as :class:`UNet` returns
    with ``deep_supervision=True`` in training mode), with weights.

    ``forward(outputs, target)``: ``outputs`` a list of logits ``(N, C, z, y, x)``, full
    resolution first; ``target`` the full-resolution target (``(N, z, y, x)`` label map, or any
    layout ``loss`` takes whose trailing axes are the spatial ones). For output ``i`` the target
    is downsampled by strided selection, ``target[..., ::s_z, ::s_y, ::s_x]``, ``s`` being
    ``scales[i]`` (a :class:`UNet`'s ``deep_supervision_scales``; a 2D model's pairs leave z
    alone) or, without ``scales``, the power
    of two per axis that maps the target size to the output size (``ceil(size / s)``). Strided
    selection picks the voxel at the centre of the strided convolutions' field in this U-Net;
    nnU-Net v2 resizes its targets with nearest-exact interpolation instead (voxel ``s*i + s//2``).
    Loss ``i`` is weighted by ``weights[i]``; by default nnU-Net v2's weights, ``1 / 2**i`` with
    the lowest resolution's set to 0 and the rest normalised to sum to 1 (see
    :func:`deep_supervision_weights`). Outputs with weight 0 are not evaluated, but enter the sum
    as ``0 * logits.sum()`` so every head keeps a (zero) gradient, as DistributedDataParallel
    requires. A single tensor (eval mode, or no deep supervision) goes straight to ``loss``.
    """

    def __init__(
        self,
        loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        weights: Sequence[float] | None = None,
        scales: Sequence[Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        if not callable(loss):
            raise InputError(f"loss: expected a callable, got {type(loss).__name__}")
        if weights is not None:
            weights = [float(w) for w in weights]
            if not weights or any(not w >= 0 for w in weights) or sum(weights) <= 0:
                raise InputError(
                    f"weights: expected non-negative numbers, not all 0, got {list(weights)}"
                )
        self.loss = loss
        self.weights = None if weights is None else list(weights)
        self.scales = None if scales is None else [tuple(int(k) for k in s) for s in scales]

    def forward(
        self, outputs: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor
    ) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            return self.loss(outputs, target)
        outputs = list(outputs)
        weights = deep_supervision_weights(len(outputs)) if self.weights is None else self.weights
        if len(weights) != len(outputs):
            raise InputError(
                f"outputs: expected {len(weights)} tensors for {len(weights)} weights, "
                f"got {len(outputs)}"
            )
        if self.scales is not None and len(self.scales) < len(outputs):
            raise InputError(
                f"outputs: expected at most {len(self.scales)} tensors for the scales given, "
                f"got {len(outputs)}"
            )
        terms: list[torch.Tensor] = []
        for i, (logits, weight) in enumerate(zip(outputs, weights, strict=True)):
            if weight == 0:
                term = logits.sum() * 0.0
            else:
                spatial = logits.dim() - 2
                if spatial < 1 or target.dim() < spatial:
                    raise InputError(
                        f"outputs[{i}]: expected logits (N, C, *spatial) matching target of "
                        f"shape {tuple(target.shape)}, got {tuple(logits.shape)}"
                    )
                sizes = target.shape[target.dim() - spatial :]
                if self.scales is not None:
                    scale: Sequence[int] = self.scales[i]
                    if len(scale) < spatial:  # a 2D model's (sy, sx) on (z, y, x) slices
                        scale = (1,) * (spatial - len(scale)) + tuple(scale)
                    if len(scale) != spatial:
                        raise InputError(
                            f"scales[{i}]: expected {spatial} steps for logits of shape "
                            f"{tuple(logits.shape)}, got {scale}"
                        )
                else:
                    scale = [
                        _scale(n, m, axis, i)
                        for axis, (n, m) in enumerate(zip(sizes, logits.shape[2:], strict=True))
                    ]
                term = weight * self.loss(logits, downsample_target(target, scale))
            terms.append(term)
        return sum(terms[1:], terms[0])
