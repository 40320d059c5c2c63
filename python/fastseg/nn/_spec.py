"""Model specs: a JSON-serialisable dict that rebuilds a network (saved by the trainer in its run
directory, read back by ``fastseg predict``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from fastseg.errors import InputError
from fastseg.nn._unet import UNet

_UNET_KEYS = (
    "dimensions",
    "in_channels",
    "num_classes",
    "widths",
    "strides",
    "norm",
    "residual",
    "deep_supervision",
    "negative_slope",
)


def build_model(spec: dict[str, Any]) -> nn.Module:
    """The network ``spec`` describes, with fresh weights.

    ``spec`` is ``{"name": "unet", "dimensions": 2|3, "in_channels", "num_classes", "widths",
    "strides", "norm", "residual", "deep_supervision", "negative_slope"}`` (keys other than
    ``name`` may be left out for :class:`UNet`'s defaults); :func:`model_spec` writes it.
    Unknown keys or bad values raise InputError naming the key.
    """
    if not isinstance(spec, dict):
        raise InputError(f"spec: expected a dict, got {type(spec).__name__}")
    name = spec.get("name")
    if name != "unet":
        raise InputError(f"spec['name']: expected 'unet', got {name!r}")
    unknown = sorted(str(k) for k in spec if k != "name" and k not in _UNET_KEYS)
    if unknown:
        raise InputError(
            f"spec: unknown key(s) {', '.join(unknown)}; expected name, {', '.join(_UNET_KEYS)}"
        )
    kwargs = {k: spec[k] for k in _UNET_KEYS if k in spec}
    try:
        return UNet(**kwargs)
    except InputError as error:
        raise InputError(f"spec: {error}") from error


def model_spec(model: nn.Module) -> dict[str, Any]:
    """The spec (plain JSON types: lists, not tuples) from which :func:`build_model` rebuilds
    ``model``'s architecture (also through DistributedDataParallel or torch.compile wrappers),
    so that its ``state_dict`` loads into the rebuilt network."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    model = getattr(model, "_orig_mod", model)  # torch.compile
    if not isinstance(model, UNet):
        raise InputError(f"model: expected a fastseg.nn.UNet, got {type(model).__name__}")
    return {
        "name": "unet",
        "dimensions": model.dimensions,
        "in_channels": model.in_channels,
        "num_classes": model.num_classes,
        "widths": list(model.widths),
        "strides": [list(s) for s in model.strides],
        "norm": model.norm,
        "residual": model.residual,
        "deep_supervision": model.deep_supervision,
        "negative_slope": model.negative_slope,
    }
