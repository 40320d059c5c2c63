"""UNet 2D/3D: shapes, slice-wise 5D input to 2D models, residual blocks, deep supervision."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastseg.errors import InputError
from fastseg.nn import UNet, UNet2D, UNet3D
from fastseg.nn._unet import _ResBlock


@pytest.mark.parametrize("size", [(5, 7), (8, 8), (1, 3), (17, 6)])
@pytest.mark.parametrize("residual", [False, True])
def test_2d_output_shape_for_odd_sizes(size: tuple[int, int], residual: bool) -> None:
    torch.manual_seed(0)
    model = UNet2D(2, 3, widths=(4, 8, 16), residual=residual).eval()
    assert model.size_multiple == (4, 4)
    with torch.no_grad():
        out = model(torch.randn(2, 2, *size))
    assert out.shape == (2, 3, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(5, 7, 9), (1, 3, 2)])
def test_3d_residual_output_shape(size: tuple[int, int, int]) -> None:
    model = UNet(3, 1, 2, widths=(4, 8, 16), residual=True).eval()
    assert any(isinstance(m, _ResBlock) for m in model.modules())
    with torch.no_grad():
        assert model(torch.randn(1, 1, *size)).shape == (1, 2, *size)


def test_2d_odd_size_equals_padded_forward_cropped() -> None:
    torch.manual_seed(1)
    model = UNet2D(1, 2, widths=(4, 8, 16), strides=[(1, 2), (2, 2)]).eval()
    assert model.size_multiple == (2, 4)
    x = torch.randn(1, 1, 5, 7)
    with torch.no_grad():
        direct = model(x)
        padded = model(F.pad(x, (0, 1, 0, 1)))
    torch.testing.assert_close(direct, padded[:, :, :5, :7])


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_2d_model_on_5d_input_equals_slice_by_slice(norm: str) -> None:
    torch.manual_seed(2)
    model = UNet2D(2, 3, widths=(4, 8), norm=norm).eval()
    x = torch.randn(2, 2, 3, 6, 5)
    with torch.no_grad():
        volume = model(x)
        slices = torch.stack([model(x[:, :, k]) for k in range(x.shape[2])], dim=2)
    assert volume.shape == (2, 3, 3, 6, 5)
    assert torch.equal(volume, slices)  # the same convolutions on the same slices


def test_2d_accepts_triples_with_unit_z_stride() -> None:
    model = UNet2D(1, 2, widths=(4, 8, 16), strides=[(1, 2, 2), (1, 1, 2)])
    assert model.strides == ((2, 2), (1, 2))
    assert model.size_multiple == (2, 4)


def test_3d_anisotropic_strides_and_defaults() -> None:
    model = UNet(3, 1, 2, widths=(4, 8, 16), strides=[(1, 2, 2), (2, 2, 2)]).eval()
    assert model.size_multiple == (2, 4, 4)
    assert model.deep_supervision_scales == ((1, 1, 1), (1, 2, 2))
    with torch.no_grad():
        assert model(torch.randn(1, 1, 3, 9, 6)).shape == (1, 2, 3, 9, 6)
    assert UNet().widths == (32, 64, 128, 256)
    assert UNet3D().widths == (16, 32, 64, 128)
    assert UNet2D().widths == (32, 64, 128, 256)


def test_unet3d_keeps_its_state_dict_keys() -> None:
    keys = set(UNet3D(1, 2, widths=(4, 8)).state_dict())
    assert "encoders.0.0.weight" in keys and "decoders.0.3.weight" in keys
    assert "upsamples.0.weight" in keys and "head.weight" in keys
    assert not any(k.startswith("ds_heads") for k in keys)
    assert keys == set(UNet(3, 1, 2, widths=(4, 8)).state_dict())


@pytest.mark.parametrize("dims", [2, 3])
def test_residual_block_projection_and_identity(dims: int) -> None:
    down = _ResBlock(dims, 3, 5, (2,) * dims, "batch", 0.01)
    same = _ResBlock(dims, 4, 4, (1,) * dims, "batch", 0.01)
    assert len(down.skip) == 3  # avg-pool, 1x1 conv, norm
    assert len(same.skip) == 0  # identity
    x = torch.randn(2, 4, *(6,) * dims)
    # identity skip: with conv2's output zeroed, the block is LeakyReLU(x)
    with torch.no_grad():
        same.conv2.weight.zero_()
        same.conv2.bias.zero_()
        same.norm2.weight.zero_()
        same.norm2.bias.zero_()
    same.eval()
    torch.testing.assert_close(same(x), F.leaky_relu(x, 0.01))
    assert down(torch.randn(2, 3, *(6,) * dims)).shape == (2, 5, *(3,) * dims)


@pytest.mark.parametrize(
    ("dims", "size", "strides", "expected"),
    [
        (3, (5, 7, 9), None, [(5, 7, 9), (3, 4, 5), (2, 2, 3)]),
        (3, (3, 9, 6), [(1, 2, 2), (2, 2, 2), (2, 2, 2)], [(3, 9, 6), (3, 5, 3), (2, 3, 2)]),
        (2, (7, 10), None, [(7, 10), (4, 5), (2, 3)]),
    ],
)
def test_deep_supervision_shapes_in_train_mode(
    dims: int,
    size: tuple[int, ...],
    strides: list[tuple[int, ...]] | None,
    expected: list[tuple[int, ...]],
) -> None:
    model = UNet(dims, 1, 3, widths=(2, 4, 4, 4), strides=strides, deep_supervision=True)
    x = torch.randn(2, 1, *size)
    outputs = model.train()(x)
    assert isinstance(outputs, list)
    assert [tuple(o.shape) for o in outputs] == [(2, 3, *s) for s in expected]
    sum(o.square().mean() for o in outputs).backward()  # type: ignore[union-attr]
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        single = model.eval()(x)
    assert isinstance(single, torch.Tensor) and single.shape == (2, 3, *size)
    torch.testing.assert_close(single, model.train()(x)[0].detach(), atol=1e-5, rtol=1e-5)


def test_deep_supervision_full_resolution_equals_plain_output() -> None:
    torch.manual_seed(3)
    plain = UNet(3, 1, 2, widths=(2, 4, 4)).train()
    supervised = UNet(3, 1, 2, widths=(2, 4, 4), deep_supervision=True).train()
    supervised.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(1, 1, 4, 6, 5)
    outputs = supervised(x)
    assert isinstance(outputs, list) and len(outputs) == 2
    torch.testing.assert_close(outputs[0], plain(x))


def test_deep_supervision_on_5d_input_to_2d_model() -> None:
    model = UNet2D(1, 2, widths=(2, 4, 4), deep_supervision=True).train()
    outputs = model(torch.randn(2, 1, 3, 7, 9))
    assert [tuple(o.shape) for o in outputs] == [(2, 2, 3, 7, 9), (2, 2, 3, 4, 5)]


def test_two_levels_deep_supervision_gives_one_output_list() -> None:
    model = UNet(3, 1, 2, widths=(2, 4), deep_supervision=True).train()
    outputs = model(torch.randn(1, 1, 4, 4, 4))
    assert isinstance(outputs, list) and len(outputs) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dimensions": 1}, "dimensions"),
        ({"dimensions": True}, "dimensions"),
        ({"in_channels": 0}, "in_channels"),
        ({"num_classes": 1.5}, "num_classes"),
        ({"widths": (4, True)}, "widths"),
        ({"widths": "48"}, "widths"),
        ({"dimensions": 2, "strides": [(2, 2, 2)]}, "strides"),
        ({"dimensions": 2, "strides": [(2,)]}, "strides"),
        ({"strides": [(2, 2, 0)]}, "strides"),
        ({"strides": [(2, 2, 2.0)]}, "strides"),
        ({"residual": 1}, "residual"),
        ({"deep_supervision": "yes"}, "deep_supervision"),
        ({"negative_slope": "0.1"}, "negative_slope"),
        ({"norm": "layer"}, "norm"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"widths": (4, 8)} | kwargs
    with pytest.raises(InputError, match=match):
        UNet(**args)  # type: ignore[arg-type]


def test_bad_input_shape_2d() -> None:
    model = UNet2D(2, 2, widths=(4, 8))
    with pytest.raises(InputError, match=r"expected \(N, 2, y, x\)"):
        model(torch.randn(1, 1, 4, 4))
    with pytest.raises(InputError, match="expected"):
        model(torch.randn(2, 4, 4))


@pytest.mark.parametrize(
    ("dims", "shape"),
    [(2, (0, 1, 3, 4, 4)), (2, (1, 1, 0, 4, 4)), (2, (0, 1, 4, 4)), (3, (0, 1, 4, 4, 4))],
)
def test_empty_input_gives_empty_logits(dims: int, shape: tuple[int, ...]) -> None:
    model = UNet(dims, 1, 2, widths=(2, 4, 4), deep_supervision=True)
    assert model.eval()(torch.randn(*shape)).shape == (shape[0], 2, *shape[2:])
    outputs = model.train()(torch.randn(*shape))
    coarse = [*shape[2:-dims], *((n + 1) // 2 for n in shape[-dims:])]
    assert [tuple(o.shape) for o in outputs] == [(shape[0], 2, *shape[2:]), (shape[0], 2, *coarse)]
