"""build_model / model_spec: JSON round trip, weights load into the rebuilt model, bad specs."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from fastseg.errors import InputError
from fastseg.nn import UNet, UNet2D, UNet3D, build_model, model_spec


@pytest.mark.parametrize(
    "model",
    [
        UNet3D(1, 2, widths=(4, 8)),
        UNet2D(2, 3, widths=(4, 8, 8), strides=[(1, 2), (2, 2)], norm="batch"),
        UNet(3, 1, 4, widths=(2, 4, 4), residual=True, deep_supervision=True, negative_slope=0.1),
    ],
)
def test_round_trip_through_json(model: UNet) -> None:
    torch.manual_seed(0)
    spec = json.loads(json.dumps(model_spec(model)))
    assert spec == model_spec(model)
    assert spec["name"] == "unet" and isinstance(spec["widths"], list)
    assert all(isinstance(s, list) for s in spec["strides"])
    rebuilt = build_model(spec)
    assert type(rebuilt) is UNet and model_spec(rebuilt) == spec
    rebuilt.load_state_dict(model.state_dict())  # strict: same keys and shapes
    x = torch.randn(1, model.in_channels, 3, 5, 6)
    model.eval()
    rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))


def test_spec_of_defaults_and_partial_spec() -> None:
    assert model_spec(build_model({"name": "unet"})) == model_spec(UNet())
    spec = model_spec(build_model({"name": "unet", "dimensions": 2, "widths": [4, 8]}))
    assert spec["strides"] == [[2, 2]] and spec["dimensions"] == 2


def test_model_spec_sees_through_wrappers() -> None:
    class Wrapper(torch.nn.Module):
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module = module

    inner = UNet3D(1, 2, widths=(4,))
    assert model_spec(Wrapper(inner)) == model_spec(inner)
    with pytest.raises(InputError, match="model"):
        model_spec(torch.nn.Conv3d(1, 1, 1))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"name": "vnet"}, r"spec\['name'\]"),
        ({"widths": [4]}, r"spec\['name'\]"),
        ({"name": "unet", "depth": 3}, "depth"),
        ({"name": "unet", "dimensions": 4}, "dimensions"),
        ({"name": "unet", "widths": [4, -1]}, "widths"),
        ({"name": "unet", "widths": [4, 8], "strides": [[2, 2]]}, "strides"),
        ({"name": "unet", "norm": "group"}, "norm"),
        ({"name": "unet", "residual": "false"}, "residual"),
        ({"name": "unet", "deep_supervision": 1}, "deep_supervision"),
        ({"name": "unet", "negative_slope": None}, "negative_slope"),
        ({"name": "unet", "in_channels": "1"}, "in_channels"),
        ({"name": "unet", "num_classes": 0}, "num_classes"),
    ],
)
def test_bad_spec_names_the_key(spec: dict[str, Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        build_model(spec)


def test_spec_must_be_a_dict() -> None:
    with pytest.raises(InputError, match="spec"):
        build_model([("name", "unet")])  # type: ignore[arg-type]
