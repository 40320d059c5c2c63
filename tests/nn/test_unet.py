"""UNet3D: output shapes for any input size, padding/cropping, strides, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastseg.errors import InputError
from fastseg.nn import UNet3D


@pytest.mark.parametrize("size", [(5, 7, 9), (8, 8, 8), (1, 3, 2), (17, 6, 11)])
@pytest.mark.parametrize("batch", [1, 2])
def test_output_shape_for_odd_sizes(size: tuple[int, int, int], batch: int) -> None:
    torch.manual_seed(0)
    model = UNet3D(in_channels=2, num_classes=3, widths=(4, 8, 16)).eval()
    with torch.no_grad():
        out = model(torch.randn(batch, 2, *size))
    assert out.shape == (batch, 3, *size)
    assert torch.isfinite(out).all()


def test_odd_size_equals_padded_forward_cropped() -> None:
    torch.manual_seed(1)
    model = UNet3D(1, 2, widths=(4, 8, 16)).eval()
    x = torch.randn(1, 1, 5, 7, 9)
    with torch.no_grad():
        direct = model(x)
        padded = model(F.pad(x, (0, 3, 0, 1, 0, 3)))  # to multiples of 4
    assert model.size_multiple == (4, 4, 4)
    torch.testing.assert_close(direct, padded[:, :, :5, :7, :9])


def test_training_step_on_odd_size_has_gradients() -> None:
    torch.manual_seed(2)
    model = UNet3D(1, 4, widths=(4, 8, 16), norm="batch").train()
    out = model(torch.randn(2, 1, 9, 10, 11))
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_anisotropic_strides() -> None:
    model = UNet3D(1, 2, widths=(4, 8, 16), strides=[(1, 2, 2), (2, 2, 2)]).eval()
    assert model.size_multiple == (2, 4, 4)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 3, 9, 6)).shape == (1, 2, 3, 9, 6)


def test_single_level_is_a_plain_conv_net() -> None:
    model = UNet3D(1, 2, widths=(4,)).eval()
    assert model.size_multiple == (1, 1, 1)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 2, 3, 4)).shape == (1, 2, 2, 3, 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"widths": ()}, "positive"),
        ({"widths": (4, 0)}, "positive"),
        ({"num_classes": 0}, "positive"),
        ({"strides": [(2, 2)]}, "strides"),
        ({"strides": [(2, 2, 2), (2, 2, 2)]}, "strides"),
        ({"norm": "group"}, "norm"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"widths": (4, 8)} | kwargs
    with pytest.raises(InputError, match=match):
        UNet3D(**args)  # type: ignore[arg-type]


def test_bad_input_shape() -> None:
    model = UNet3D(2, 2, widths=(4, 8))
    with pytest.raises(InputError, match=r"expected \(N, 2, z, y, x\)"):
        model(torch.randn(1, 1, 4, 4, 4))
    with pytest.raises(InputError, match="expected"):
        model(torch.randn(2, 4, 4, 4))
