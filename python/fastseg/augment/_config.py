"""The augmentation config: named steps, their parameters, defaults and validation.

A config is a list of steps ``{"name": ..., "p": probability, ...parameters}``. Every parameter has a
default (nnU-Net's where nnU-Net has the transform; TorchIO's for the elastic grid and the bias field).
Ranges are ``(low, high)`` (a single number means that fixed value); per-axis ranges may also be three
ranges in (z, y, x) order. Angles are in degrees, translations and displacements in millimetres, blur
sigmas in voxels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastseg.errors import InputError

SPATIAL_STEPS = ("affine", "elastic", "flip")
INTENSITY_STEPS = ("noise", "blur", "brightness", "contrast", "lowres", "gamma", "bias_field")


@dataclass(frozen=True)
class _Param:
    default: Any
    kind: str  # prob | range | axis_ranges | bool | grid | axes | number | order
    lo: float = -math.inf
    hi: float = math.inf
    doc: str = ""


def _intensity(p: float, per_channel: bool, p_per_channel: float) -> dict[str, _Param]:
    return {
        "p": _Param(p, "prob", doc="probability per sample"),
        "per_channel": _Param(per_channel, "bool", doc="draw values per channel"),
        "p_per_channel": _Param(p_per_channel, "prob", doc="probability per channel"),
    }


_STEPS: dict[str, dict[str, _Param]] = {
    "affine": {
        "p": _Param(1.0, "prob"),
        "rotation": _Param((-30.0, 30.0), "axis_ranges", -360.0, 360.0, "degrees about z, y, x"),
        "p_rotation": _Param(0.2, "prob"),
        "scale": _Param((0.7, 1.4), "axis_ranges", 1e-3, 1e3, "magnification (> 1 enlarges)"),
        "p_scale": _Param(0.2, "prob"),
        "isotropic": _Param(True, "bool", doc="one scale factor for all axes"),
        "translation": _Param((0.0, 0.0), "axis_ranges", doc="mm"),
        "p_translation": _Param(1.0, "prob"),
    },
    "elastic": {
        "p": _Param(0.2, "prob"),
        "grid": _Param(7, "grid", 1, 64, "control points per axis (z, y, x)"),
        "magnitude": _Param((0.0, 7.5), "range", 0.0, math.inf, "largest displacement, mm"),
        "sigma": _Param(
            1.0, "number", 0.0, 16.0, "smoothing of the control grid, in control cells"
        ),
    },
    "flip": {
        "p": _Param(1.0, "prob"),
        "axes": _Param((0, 1, 2), "axes"),
        "p_axis": _Param(0.5, "prob"),
    },
    "noise": {
        **_intensity(0.1, False, 1.0),
        "sigma": _Param((0.0, 0.1), "range", 0.0, math.inf, "noise standard deviation"),
    },
    "blur": {
        **_intensity(0.2, True, 0.5),
        "sigma": _Param((0.5, 1.0), "range", 0.0, 16.0, "voxels"),
        "per_axis": _Param(False, "bool"),
    },
    "brightness": {
        **_intensity(0.15, True, 1.0),
        "multiplier": _Param((0.75, 1.25), "range"),
        "additive": _Param((0.0, 0.0), "range"),
    },
    "contrast": {
        **_intensity(0.15, False, 1.0),
        "factor": _Param((0.75, 1.25), "range", 0.0, math.inf),
        "preserve_range": _Param(True, "bool"),
    },
    "lowres": {
        **_intensity(0.25, True, 0.5),
        "zoom": _Param((0.5, 1.0), "range", 1e-3, 1.0, "fraction of the resolution kept"),
        "per_axis": _Param(False, "bool"),
    },
    "gamma": {
        **_intensity(0.3, True, 1.0),
        "gamma": _Param((0.7, 1.5), "range", 1e-3, 1e3),
        "invert": _Param(False, "bool"),
        "retain_stats": _Param(True, "bool"),
    },
    "bias_field": {
        **_intensity(0.1, False, 1.0),
        "order": _Param(3, "order", 0, 7),
        "coefficients": _Param((-0.5, 0.5), "range", doc="range of the polynomial coefficients"),
    },
}

Step = dict[str, Any]


def step_names() -> tuple[str, ...]:
    """Every step name a config may use."""
    return SPATIAL_STEPS + INTENSITY_STEPS


def _fail(where: str, key: str, expected: str, value: Any) -> InputError:
    return InputError(f"{where}: parameter {key!r}: expected {expected}, got {value!r}")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


def _range(v: Any, spec: _Param, where: str, key: str) -> tuple[float, float]:
    bounds = f"within [{spec.lo}, {spec.hi}]"
    if _number(v):
        v = (v, v)
    if (
        not isinstance(v, Sequence)
        or isinstance(v, str)
        or len(v) != 2
        or not all(_number(x) for x in v)
    ):
        raise _fail(where, key, f"a number or a (low, high) pair {bounds}", v)
    lo, hi = float(v[0]), float(v[1])
    if lo > hi or lo < spec.lo or hi > spec.hi:
        raise _fail(where, key, f"low <= high {bounds}", v)
    return (lo, hi)


def _check(spec: _Param, v: Any, where: str, key: str) -> Any:
    if spec.kind == "prob":
        if not _number(v) or not 0.0 <= float(v) <= 1.0:
            raise _fail(where, key, "a probability in [0, 1]", v)
        return float(v)
    if spec.kind == "bool":
        if not isinstance(v, bool):
            raise _fail(where, key, "true or false", v)
        return v
    if spec.kind == "number":
        if not _number(v) or not spec.lo <= float(v) <= spec.hi:
            raise _fail(where, key, f"a number in [{spec.lo}, {spec.hi}]", v)
        return float(v)
    if spec.kind == "order":
        if not isinstance(v, int) or isinstance(v, bool) or not spec.lo <= v <= spec.hi:
            raise _fail(where, key, f"an integer in [{int(spec.lo)}, {int(spec.hi)}]", v)
        return int(v)
    if spec.kind == "range":
        return _range(v, spec, where, key)
    if spec.kind == "axis_ranges":
        if isinstance(v, Sequence) and len(v) == 3 and not isinstance(v, str):
            return tuple(_range(r, spec, where, key) for r in v)
        r = _range(v, spec, where, key)
        return (r, r, r)
    if spec.kind == "grid":
        vals = [v] * 3 if isinstance(v, int) and not isinstance(v, bool) else v
        if (
            not isinstance(vals, Sequence)
            or len(vals) != 3
            or not all(isinstance(g, int) and not isinstance(g, bool) for g in vals)
            or not all(spec.lo <= g <= spec.hi for g in vals)
        ):
            raise _fail(
                where,
                key,
                f"an integer or 3 integers (z, y, x) in [{int(spec.lo)}, {int(spec.hi)}]",
                v,
            )
        return tuple(int(g) for g in vals)
    if spec.kind == "axes":
        if (
            not isinstance(v, Sequence)
            or isinstance(v, str)
            or not all(isinstance(a, int) and not isinstance(a, bool) and a in (0, 1, 2) for a in v)
            or len(set(v)) != len(v)
        ):
            raise _fail(where, key, "distinct axes among 0 (z), 1 (y), 2 (x)", v)
        return tuple(int(a) for a in v)
    raise AssertionError(spec.kind)  # pragma: no cover


def normalize_step(step: Any, index: int) -> Step:
    """Validate one step and return it with every parameter filled in (defaults) and normalised."""
    if not isinstance(step, Mapping):
        raise InputError(f"augment step {index}: expected a mapping with a 'name', got {step!r}")
    name = step.get("name")
    if name not in _STEPS:
        raise InputError(
            f"augment step {index}: unknown name {name!r}; expected one of {', '.join(step_names())}"
        )
    where = f"augment step {index} ({name!r})"
    specs = _STEPS[name]
    unknown = sorted(set(step) - set(specs) - {"name"})
    if unknown:
        raise InputError(
            f"{where}: unknown parameter {unknown[0]!r}; expected one of {', '.join(specs)}"
        )
    out: Step = {"name": name}
    for key, spec in specs.items():
        out[key] = _check(spec, step.get(key, spec.default), where, key)
    return out


def normalize_config(config: Any) -> list[Step]:
    """Validate a list of steps; a spatial step may appear once, intensity steps any number of times."""
    if isinstance(config, Mapping) or isinstance(config, str) or not isinstance(config, Sequence):
        raise InputError(f"augment config: expected a list of steps, got {type(config).__name__}")
    steps = [normalize_step(s, i) for i, s in enumerate(config)]
    seen: set[str] = set()
    for i, s in enumerate(steps):
        if s["name"] in SPATIAL_STEPS:
            if s["name"] in seen:
                raise InputError(
                    f"augment step {i} ({s['name']!r}): a spatial step may appear once; "
                    "set its ranges in the first one"
                )
            seen.add(s["name"])
    return steps


def default_config() -> list[Step]:
    """nnU-Net's augmentation (rotation, scaling, Gaussian noise, blur, brightness, contrast, low
    resolution, gamma with and without inversion, mirroring) plus an elastic deformation with p=0.2."""
    return [
        {"name": "affine"},
        {"name": "elastic"},
        {"name": "noise"},
        {"name": "blur"},
        {"name": "brightness"},
        {"name": "contrast"},
        {"name": "lowres"},
        {"name": "gamma", "invert": True, "p": 0.1},
        {"name": "gamma"},
        {"name": "flip"},
    ]
