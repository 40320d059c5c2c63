"""U-Net 2D/3D (Ronneberger et al. 2015; Çiçek et al. 2016) in the nnU-Net style.

Each level: two (conv 3x3(x3) → instance/batch norm → LeakyReLU) blocks, or with ``residual=True``
an nnU-Net ResEnc basic block in the encoder; downsampling by strided convolution, upsampling by
transposed convolution, skip connections by concatenation; optional deep supervision heads.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fastseg.errors import InputError

# per dimensions; Any because torch types kernel sizes as one int or a fixed-length tuple
_CONV: dict[int, Any] = {2: nn.Conv2d, 3: nn.Conv3d}
_TCONV: dict[int, Any] = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_POOL: dict[int, Any] = {2: nn.AvgPool2d, 3: nn.AvgPool3d}


def _norm(kind: str, channels: int, dims: int) -> nn.Module:
    if kind == "instance":
        return (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    if kind == "batch":
        return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(channels)
    raise InputError(f"norm: expected 'instance' or 'batch', got {kind!r}")


class _Block(nn.Sequential):
    """Two (conv → norm → LeakyReLU); the first conv carries the stride."""

    def __init__(
        self, dims: int, c_in: int, c_out: int, stride: tuple[int, ...], norm: str, slope: float
    ) -> None:
        conv = _CONV[dims]
        super().__init__(
            conv(c_in, c_out, 3, stride=stride, padding=1),
            _norm(norm, c_out, dims),
            nn.LeakyReLU(slope, inplace=True),
            conv(c_out, c_out, 3, padding=1),
            _norm(norm, c_out, dims),
            nn.LeakyReLU(slope, inplace=True),
        )


class _ResBlock(nn.Module):
    """nnU-Net ResEnc basic block ("D" variant): conv → norm → LReLU → conv → norm, plus a skip,
    then LReLU. The skip is the identity, or average pooling by the stride followed by a 1x1 conv
    + norm projection where the stride or the channel count changes."""

    def __init__(
        self, dims: int, c_in: int, c_out: int, stride: tuple[int, ...], norm: str, slope: float
    ) -> None:
        super().__init__()
        conv = _CONV[dims]
        self.conv1 = conv(c_in, c_out, 3, stride=stride, padding=1)
        self.norm1 = _norm(norm, c_out, dims)
        self.act1 = nn.LeakyReLU(slope, inplace=True)
        self.conv2 = conv(c_out, c_out, 3, padding=1)
        self.norm2 = _norm(norm, c_out, dims)
        self.act2 = nn.LeakyReLU(slope, inplace=True)
        skip: list[nn.Module] = []
        if any(s != 1 for s in stride):
            skip.append(_POOL[dims](stride, stride))
        if c_in != c_out:
            skip += [conv(c_in, c_out, 1, bias=False), _norm(norm, c_out, dims)]
        self.skip = nn.Sequential(*skip)  # empty Sequential is the identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act2(out + self.skip(x))


def _as_int(value: object) -> int | None:
    """``value`` as an int if it is an integer (not a bool, not a float), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def _parse_strides(
    strides: Sequence[Sequence[int]] | None, levels: int, dims: int
) -> list[tuple[int, ...]]:
    if strides is None:
        return [(2,) * dims] * (levels - 1)
    shape = "pairs (sy, sx) (or triples (1, sy, sx))" if dims == 2 else "triples (sz, sy, sx)"
    error = InputError(f"strides: expected {levels - 1} {shape} of integers >= 1, got {strides!r}")
    if isinstance(strides, str) or not isinstance(strides, Sequence) or len(strides) != levels - 1:
        raise error
    steps = []
    for s in strides:
        if isinstance(s, str) or not isinstance(s, Sequence):
            raise error
        step = [_as_int(k) for k in s]
        if dims == 2 and len(step) == 3 and step[0] == 1:
            step = step[1:]
        if len(step) != dims or any(k is None or k < 1 for k in step):
            raise error
        steps.append(tuple(k for k in step if k is not None))
    return steps


class UNet(nn.Module):
    """U-Net mapping ``(N, in_channels, z, y, x)`` to logits ``(N, num_classes, z, y, x)``.

    ``dimensions=3`` uses 3D convolutions. ``dimensions=2`` uses 2D convolutions and takes
    ``(N, C, y, x)`` or ``(N, C, z, y, x)``; a 5D input is cut into its z slices, each segmented
    independently (z folded into the batch) and the slice logits stacked back, so the same 3D patch
    loader and sliding-window inference serve 2D models.

    ``widths`` are the channels per level (its length is the number of levels); ``strides`` the
    downsampling into each level below the first, per spatial axis of the convolutions — triples
    ``(sz, sy, sx)`` in 3D, pairs ``(sy, sx)`` in 2D (triples ``(1, sy, sx)`` are accepted) —
    default 2 on every axis (use 1 on z for strongly anisotropic data). ``residual=True`` makes
    the encoder blocks nnU-Net ResEnc basic blocks (the decoder stays plain, as in nnU-Net).

    ``deep_supervision=True``: in training mode ``forward`` returns a list of logits, full
    resolution first, then the decoder output of each coarser level through its own 1x1 head,
    excluding the lowest (bottleneck) level — ``len(widths) - 1`` tensors; output ``i`` has size
    ``ceil(size / scale_i)`` per axis, ``scale_i`` being :attr:`deep_supervision_scales` ``[i]``.
    In eval mode ``forward`` always returns one tensor.

    Size constraint: the network computes on sizes that are multiples of :attr:`size_multiple`
    (the product of the strides per convolution axis: ``(z, y, x)`` in 3D, ``(y, x)`` in 2D); any
    other input size is zero-padded at the high end of each axis and the output cropped back, so
    every size >= 1 works (an input that would leave one voxel at the coarsest level is padded
    further along x, as normalisation needs two); an empty input gives empty logits.
    """

    def __init__(
        self,
        dimensions: int = 3,
        in_channels: int = 1,
        num_classes: int = 2,
        widths: Sequence[int] = (32, 64, 128, 256),
        strides: Sequence[Sequence[int]] | None = None,
        norm: str = "instance",
        residual: bool = False,
        deep_supervision: bool = False,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        dims = _as_int(dimensions)
        if dims not in (2, 3):
            raise InputError(f"dimensions: expected 2 or 3, got {dimensions!r}")
        if isinstance(widths, str) or not isinstance(widths, Sequence):
            raise InputError(f"widths: expected a sequence of positive integers, got {widths!r}")
        counts = []
        for key, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            count = _as_int(value)
            if count is None or count < 1:
                raise InputError(f"{key}: expected a positive integer, got {value!r}")
            counts.append(count)
        in_channels, num_classes = counts
        levels = [_as_int(w) for w in widths]
        if not levels or any(w is None or w < 1 for w in levels):
            raise InputError(
                f"widths: expected a non-empty sequence of positive integers for {name}, "
                f"got {widths!r}"
            )
        widths = [w for w in levels if w is not None]
        if norm not in ("instance", "batch"):
            raise InputError(f"norm: expected 'instance' or 'batch', got {norm!r}")
        for flag, value in (("residual", residual), ("deep_supervision", deep_supervision)):
            if not isinstance(value, bool):
                raise InputError(f"{flag}: expected true or false, got {value!r}")
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
            raise InputError(f"negative_slope: expected a number, got {negative_slope!r}")
        steps = _parse_strides(strides, len(widths), dims)
        self.dimensions = dims
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.widths = tuple(widths)
        self.strides = tuple(steps)
        self.norm = norm
        self.residual = residual
        self.deep_supervision = deep_supervision
        self.negative_slope = float(negative_slope)
        scales = [(1,) * dims]
        for s in steps:
            scales.append(tuple(m * k for m, k in zip(scales[-1], s, strict=True)))
        self.size_multiple: tuple[int, ...] = scales[-1]
        self.deep_supervision_scales: tuple[tuple[int, ...], ...] = tuple(scales[:-1])

        slope = self.negative_slope
        enc = _ResBlock if residual else _Block
        self.encoders = nn.ModuleList(
            [enc(dims, in_channels, widths[0], (1,) * dims, norm, slope)]
            + [
                enc(dims, widths[i - 1], widths[i], steps[i - 1], norm, slope)
                for i in range(1, len(widths))
            ]
        )
        self.upsamples = nn.ModuleList(
            [
                _TCONV[dims](widths[i], widths[i - 1], steps[i - 1], stride=steps[i - 1])
                for i in range(len(widths) - 1, 0, -1)
            ]
        )
        self.decoders = nn.ModuleList(
            [
                _Block(dims, 2 * widths[i - 1], widths[i - 1], (1,) * dims, norm, slope)
                for i in range(len(widths) - 1, 0, -1)
            ]
        )
        self.head = _CONV[dims](widths[0], num_classes, 1)
        # heads for decoder levels 1 .. L-2 (coarse to fine order, as the decoders run)
        self.ds_heads = nn.ModuleList(
            [_CONV[dims](widths[i], num_classes, 1) for i in range(len(widths) - 2, 0, -1)]
            if deep_supervision
            else []
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """``x`` ``(N, C, z, y, x)`` (or ``(N, C, y, x)`` for a 2D model) → logits of the same
        spatial size, or a list of them (deep supervision in training mode)."""
        dims = self.dimensions
        if x.dim() == 5 and dims == 2 and x.shape[1] == self.in_channels:
            n, c, z = x.shape[:3]
            slices = x.transpose(1, 2).reshape(n * z, c, *x.shape[3:])
            out = self._forward(slices)
            if isinstance(out, list):
                return [_unfold_slices(o, n, z) for o in out]
            return _unfold_slices(out, n, z)
        if x.dim() != dims + 2 or x.shape[1] != self.in_channels:
            axes = "z, y, x" if dims == 3 else "y, x) or (N, C, z, y, x"
            raise InputError(
                f"x: expected (N, {self.in_channels}, {axes}), got shape {tuple(x.shape)}"
            )
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        size = x.shape[2:]
        supervise = self.deep_supervision and self.training
        if x.numel() == 0:  # empty batch or axis: empty logits (normalisation cannot run)
            scales = self.deep_supervision_scales if supervise else self.deep_supervision_scales[:1]
            empty = [
                x.new_zeros((x.shape[0], self.num_classes, *_scaled(size, scale)))
                for scale in scales
            ]
            return empty if supervise else empty[0]
        pad = [(-n) % m for n, m in zip(size, self.size_multiple, strict=True)]
        if all(n + p == m for n, p, m in zip(size, pad, self.size_multiple, strict=True)):
            # normalisation needs two voxels at the coarsest level
            pad[-1] += self.size_multiple[-1]
        if any(pad):
            widths = [w for p in reversed(pad) for w in (0, p)]
            x = F.pad(x, widths)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
        x = skips.pop()
        coarse: list[torch.Tensor] = []
        for i, (upsample, decoder) in enumerate(zip(self.upsamples, self.decoders, strict=True)):
            x = decoder(torch.cat([upsample(x), skips.pop()], dim=1))
            if supervise and i < len(self.ds_heads):
                coarse.append(self.ds_heads[i](x))
        x = self.head(x)
        out = _crop(x, size)
        if not supervise:
            return out
        outputs = [out]
        scales = self.deep_supervision_scales[1:]
        for logits, scale in zip(reversed(coarse), scales, strict=True):
            outputs.append(_crop(logits, _scaled(size, scale)))
        return outputs


def _unfold_slices(x: torch.Tensor, n: int, z: int) -> torch.Tensor:
    """``(N * z, K, y, x)`` slice logits → ``(N, K, z, y, x)``."""
    return x.reshape(n, z, *x.shape[1:]).transpose(1, 2)


def _scaled(size: Sequence[int], scale: Sequence[int]) -> list[int]:
    """``ceil(size / scale)`` per axis: the size of an output downsampled by ``scale``."""
    return [-(-n // s) for n, s in zip(size, scale, strict=True)]


def _crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return x[(slice(None), slice(None), *(slice(0, n) for n in size))]


class _UNetOfDimensions(UNet):
    """A :class:`UNet` of the subclass's ``_dimensions``, ``in_channels`` first; ``widths`` None
    means the subclass's ``_default_widths``."""

    _dimensions: ClassVar[int]
    _default_widths: ClassVar[tuple[int, ...]]

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        widths: Sequence[int] | None = None,
        strides: Sequence[Sequence[int]] | None = None,
        norm: str = "instance",
        negative_slope: float = 0.01,
        residual: bool = False,
        deep_supervision: bool = False,
    ) -> None:
        super().__init__(
            self._dimensions,
            in_channels,
            num_classes,
            self._default_widths if widths is None else widths,
            strides,
            norm,
            residual,
            deep_supervision,
            negative_slope,
        )


class UNet3D(_UNetOfDimensions):
    """The 3D :class:`UNet` (``dimensions=3``), with ``in_channels`` first and default widths
    ``(16, 32, 64, 128)``. Maps ``(N, in_channels, z, y, x)`` to ``(N, num_classes, z, y, x)``."""

    _dimensions = 3
    _default_widths = (16, 32, 64, 128)


class UNet2D(_UNetOfDimensions):
    """The 2D :class:`UNet` (``dimensions=2``), with ``in_channels`` first and default widths
    ``(32, 64, 128, 256)``. Maps ``(N, C, y, x)`` to ``(N, num_classes, y, x)`` and
    ``(N, C, z, y, x)`` slice by slice to ``(N, num_classes, z, y, x)``; ``strides`` are pairs
    ``(sy, sx)``."""

    _dimensions = 2
    _default_widths = (32, 64, 128, 256)
