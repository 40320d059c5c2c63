"""A plain 3D U-Net (Ronneberger et al. 2015; Çiçek et al. 2016) in the nnU-Net style.

Each level: two (conv 3x3x3 → instance/batch norm → LeakyReLU) blocks; downsampling by strided
convolution, upsampling by transposed convolution, skip connections by concatenation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fastseg.errors import InputError


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    raise InputError(f"norm: expected 'instance' or 'batch', got {kind!r}")


class _Block(nn.Sequential):
    def __init__(
        self, c_in: int, c_out: int, stride: tuple[int, int, int], norm: str, slope: float
    ) -> None:
        super().__init__(
            nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1),
            _norm(norm, c_out),
            nn.LeakyReLU(slope, inplace=True),
            nn.Conv3d(c_out, c_out, 3, padding=1),
            _norm(norm, c_out),
            nn.LeakyReLU(slope, inplace=True),
        )


class UNet3D(nn.Module):
    """3D U-Net mapping ``(N, in_channels, z, y, x)`` to logits ``(N, num_classes, z, y, x)``.

    ``widths`` are the channels per level (its length is the number of levels); ``strides`` the
    downsampling ``(sz, sy, sx)`` into each level below the first (default 2 on every axis; use 1 on
    z for strongly anisotropic data). Size constraint: the network computes on sizes that are
    multiples of :attr:`size_multiple` (the product of the strides per axis); any other input size
    is zero-padded at the high end of each axis and the output cropped back, so every size >= 1
    works (an input that would leave one voxel at the coarsest level is padded further along x,
    as normalisation needs two).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        widths: Sequence[int] = (16, 32, 64, 128),
        strides: Sequence[Sequence[int]] | None = None,
        norm: str = "instance",
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1 or in_channels < 1 or num_classes < 1:
            raise InputError(
                f"UNet3D: expected positive in_channels, num_classes and widths, got "
                f"{in_channels}, {num_classes}, {widths}"
            )
        if strides is None:
            strides = [(2, 2, 2)] * (len(widths) - 1)
        if len(strides) != len(widths) - 1 or any(len(s) != 3 or min(s) < 1 for s in strides):
            raise InputError(
                f"strides: expected {len(widths) - 1} triples (sz, sy, sx) >= 1, got {strides}"
            )
        steps = [(int(s[0]), int(s[1]), int(s[2])) for s in strides]
        self.in_channels = int(in_channels)
        self.num_classes = int(num_classes)
        self.widths = tuple(widths)
        self.strides = tuple(steps)
        multiple = [1, 1, 1]
        for s in steps:
            multiple = [m * k for m, k in zip(multiple, s, strict=True)]
        self.size_multiple: tuple[int, int, int] = (multiple[0], multiple[1], multiple[2])

        self.encoders = nn.ModuleList(
            [_Block(in_channels, widths[0], (1, 1, 1), norm, negative_slope)]
            + [
                _Block(widths[i - 1], widths[i], steps[i - 1], norm, negative_slope)
                for i in range(1, len(widths))
            ]
        )
        self.upsamples = nn.ModuleList(
            [
                nn.ConvTranspose3d(widths[i], widths[i - 1], steps[i - 1], stride=steps[i - 1])
                for i in range(len(widths) - 1, 0, -1)
            ]
        )
        self.decoders = nn.ModuleList(
            [
                _Block(2 * widths[i - 1], widths[i - 1], (1, 1, 1), norm, negative_slope)
                for i in range(len(widths) - 1, 0, -1)
            ]
        )
        self.head = nn.Conv3d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise InputError(
                f"x: expected (N, {self.in_channels}, z, y, x), got shape {tuple(x.shape)}"
            )
        size = x.shape[2:]
        pad = [(-n) % m for n, m in zip(size, self.size_multiple, strict=True)]
        if all(n + p == m for n, p, m in zip(size, pad, self.size_multiple, strict=True)):
            pad[2] += self.size_multiple[2]  # normalisation needs two voxels at the coarsest level
        if any(pad):
            x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]))
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
        x = skips.pop()
        for upsample, decoder in zip(self.upsamples, self.decoders, strict=True):
            x = decoder(torch.cat([upsample(x), skips.pop()], dim=1))
        x = self.head(x)
        return x[:, :, : size[0], : size[1], : size[2]]
