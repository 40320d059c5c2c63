"""Parameters drawn per sample, and how they are drawn.

Sample ``k`` of a call with seed ``s`` draws step ``i`` from the Philox stream keyed ``(s, k << 32 | i)``
(``step_generator``), so a sample's parameters depend only on (seed, sample index, step) — not on
the batch size, on the other steps' probabilities or on the device — and replaying them gives the
same output. One generator is re-keyed per step (a few microseconds; building a seeded
``default_rng`` per step cost about 17 us, 40% of the drawing time of a batch of 9). A step not
applied draws nothing beyond its own probability and carries its identity parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastseg.augment._config import Step


@dataclass(frozen=True)
class SpatialParams:
    """The spatial part of one sample: output voxel -> source position, composed as
    ``src_mm = R @ (F (p - c_out) * spacing + elastic(p)) / scale + translation``.

    rotation: radians about the z, y, x axes (R = R_z @ R_y @ R_x); scale: magnification per axis
    (z, y, x); translation: mm; flip: per axis (z, y, x); elastic: (gz, gy, gx, 3) displacements in mm
    (components z, y, x) at the control points, or None.
    """

    rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    flip: tuple[bool, bool, bool] = (False, False, False)
    elastic: np.ndarray | None = None

    def is_identity(self) -> bool:
        return (
            self.rotation == (0.0, 0.0, 0.0)
            and self.scale == (1.0, 1.0, 1.0)
            and self.translation == (0.0, 0.0, 0.0)
            and not any(self.flip)
            and self.elastic is None
        )


@dataclass(frozen=True)
class IntensityParams:
    """One intensity step of one sample: which channels it touches (``active``, (C,) bool) and its
    values per channel (arrays with C rows); ``key`` seeds the noise generator."""

    name: str
    active: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)
    key: int = 0


@dataclass(frozen=True)
class SampleParams:
    """Everything drawn for one sample: replay with :meth:`Pipeline.apply`."""

    seed: int
    index: int
    spatial: SpatialParams
    intensity: tuple[IntensityParams, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (lists and floats)."""
        sp = self.spatial
        return {
            "seed": self.seed,
            "index": self.index,
            "rotation_deg": [math.degrees(a) for a in sp.rotation],
            "scale": list(sp.scale),
            "translation_mm": list(sp.translation),
            "flip": list(sp.flip),
            "elastic_mm": None if sp.elastic is None else sp.elastic.tolist(),
            "intensity": [
                {
                    "name": op.name,
                    "active": op.active.tolist(),
                    **{k: v.tolist() for k, v in op.values.items()},
                    **({"key": op.key} if op.name == "noise" else {}),
                }
                for op in self.intensity
            ],
        }


def _factor(rng: np.random.Generator, lo: float, hi: float) -> float:
    """nnU-Net's draw for multiplicative factors: half the time below 1, half above (when the
    range straddles 1)."""
    below = rng.random() < 0.5
    if below and lo < 1.0:
        return float(rng.uniform(lo, min(hi, 1.0)))
    return float(rng.uniform(max(lo, 1.0), hi)) if hi >= 1.0 else float(rng.uniform(lo, hi))


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], size: int) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], size=size)


def _per_channel(rng: np.random.Generator, step: Step, channels: int, draw: Any) -> np.ndarray:
    if step["per_channel"] and channels > 1:
        return np.array([draw() for _ in range(channels)], dtype=np.float64)
    return np.full(channels, draw(), dtype=np.float64)


def _draw_affine(rng: np.random.Generator, step: Step, apply: bool) -> dict[str, tuple[float, ...]]:
    rotate = rng.random() < step["p_rotation"]
    angles = tuple(math.radians(rng.uniform(lo, hi)) for lo, hi in step["rotation"])
    scale_it = rng.random() < step["p_scale"]
    factors: tuple[float, ...]
    if step["isotropic"]:
        f = _factor(rng, *step["scale"][0])
        factors = (f, f, f)
    else:
        factors = tuple(_factor(rng, lo, hi) for lo, hi in step["scale"])
    shift = rng.random() < step["p_translation"]
    moves = tuple(float(rng.uniform(lo, hi)) for lo, hi in step["translation"])
    return {
        "rotation": angles if apply and rotate else (0.0, 0.0, 0.0),
        "scale": factors if apply and scale_it else (1.0, 1.0, 1.0),
        "translation": moves if apply and shift else (0.0, 0.0, 0.0),
    }


def _smooth(field_: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a (gz, gy, gx, 3) grid along its first three axes, edge-replicated
    border, truncated at 4 sigma (SciPy's gaussian_filter with mode="nearest")."""
    r = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    taps /= taps.sum()
    for axis in range(3):
        n = field_.shape[axis]
        padded = np.take(field_, np.clip(np.arange(-r, n + r), 0, n - 1), axis=axis)
        field_ = sum(
            w * np.take(padded, np.arange(t, t + n), axis=axis) for t, w in enumerate(taps)
        )
    return field_


def _draw_elastic(rng: np.random.Generator, step: Step, apply: bool) -> np.ndarray | None:
    magnitude = float(rng.uniform(*step["magnitude"]))
    grid = step["grid"]
    field_ = rng.standard_normal((*grid, 3))
    if step["sigma"] > 0:
        field_ = _smooth(field_, step["sigma"])
    peak = float(np.abs(field_).max())
    if not apply or peak == 0.0 or magnitude == 0.0:
        return None
    return field_ * (magnitude / peak)


def _draw_intensity(
    rng: np.random.Generator, step: Step, apply: bool, channels: int
) -> IntensityParams:
    name = step["name"]
    if not apply:  # nothing to draw: the step's identity parameters, no channel active
        return IntensityParams(
            name=name, active=np.zeros(channels, dtype=bool), values=_identity(step, channels)
        )
    active = rng.random(channels) < step["p_per_channel"]
    values: dict[str, np.ndarray] = {}
    key = 0
    if name == "noise":
        values["sigma"] = _per_channel(rng, step, channels, lambda: rng.uniform(*step["sigma"]))
        key = int(rng.integers(0, 2**63 - 1))
    elif name == "blur":
        axes = 3 if step["per_axis"] else 1
        per = _per_channel_rows(rng, step, channels, lambda: _uniform(rng, step["sigma"], axes))
        values["sigma"] = np.repeat(per, 3 // axes, axis=1)
    elif name == "brightness":
        values["multiplier"] = _per_channel(
            rng, step, channels, lambda: rng.uniform(*step["multiplier"])
        )
        values["additive"] = _per_channel(
            rng, step, channels, lambda: rng.uniform(*step["additive"])
        )
    elif name == "contrast":
        values["factor"] = _per_channel(rng, step, channels, lambda: _factor(rng, *step["factor"]))
    elif name == "lowres":
        axes = 3 if step["per_axis"] else 1
        per = _per_channel_rows(rng, step, channels, lambda: _uniform(rng, step["zoom"], axes))
        values["zoom"] = np.repeat(per, 3 // axes, axis=1)
    elif name == "gamma":
        values["gamma"] = _per_channel(rng, step, channels, lambda: _factor(rng, *step["gamma"]))
    elif name == "bias_field":
        terms = (step["order"] + 1) * (step["order"] + 2) * (step["order"] + 3) // 6
        values["coefficients"] = _per_channel_rows(
            rng, step, channels, lambda: _uniform(rng, step["coefficients"], terms)
        )
    else:  # pragma: no cover - names are validated
        raise AssertionError(name)
    return IntensityParams(name=name, active=active, values=values, key=key)


def _identity(step: Step, channels: int) -> dict[str, np.ndarray]:
    """Parameters under which an intensity step changes nothing (those of a step not applied);
    read-only arrays, shared between samples."""
    name = step["name"]
    terms = 0
    if name == "bias_field":
        terms = (step["order"] + 1) * (step["order"] + 2) * (step["order"] + 3) // 6
    return _IDENTITY.get((name, channels, terms)) or _make_identity(name, channels, terms)


_IDENTITY: dict[tuple[str, int, int], dict[str, np.ndarray]] = {}


def _make_identity(name: str, channels: int, terms: int) -> dict[str, np.ndarray]:
    table: dict[str, dict[str, tuple[float, int | None]]] = {  # (value, columns or None)
        "noise": {"sigma": (0.0, None)},
        "blur": {"sigma": (0.0, 3)},
        "brightness": {"multiplier": (1.0, None), "additive": (0.0, None)},
        "contrast": {"factor": (1.0, None)},
        "lowres": {"zoom": (1.0, 3)},
        "gamma": {"gamma": (1.0, None)},
        "bias_field": {"coefficients": (0.0, terms)},
    }
    neutral = table[name]
    values = {}
    for key, (value, columns) in neutral.items():
        shape = (channels,) if columns is None else (channels, columns)
        array = np.full(shape, value)
        array.flags.writeable = False
        values[key] = array
    _IDENTITY[(name, channels, terms)] = values
    return values


def _per_channel_rows(rng: np.random.Generator, step: Step, channels: int, draw: Any) -> np.ndarray:
    if step["per_channel"] and channels > 1:
        return np.stack([np.asarray(draw(), dtype=np.float64) for _ in range(channels)])
    return np.repeat(np.asarray(draw(), dtype=np.float64)[None], channels, axis=0)


class StepStreams:
    """The generators of (seed, sample, step): one Philox bit generator, re-keyed on each call."""

    def __init__(self) -> None:
        self._bits = np.random.Philox(key=0)
        self._rng = np.random.Generator(self._bits)
        self._zeros = np.zeros(4, dtype=np.uint64)

    def __call__(self, seed: int, index: int, step: int) -> np.random.Generator:
        self._bits.state = {
            "bit_generator": "Philox",
            "state": {"counter": self._zeros.copy(), "key": _step_key(seed, index, step)},
            "buffer": self._zeros.copy(),
            "buffer_pos": 4,
            "has_uint32": 0,
            "uinteger": 0,
        }
        return self._rng


def _step_key(seed: int, index: int, step: int) -> np.ndarray:
    """The Philox key of (seed, sample index, step)."""
    return np.array([seed, (index << 32) | step], dtype=np.uint64)


def step_generator(seed: int, index: int, step: int) -> np.random.Generator:
    """A fresh generator of step ``step`` of sample ``index`` under ``seed`` (what the draw uses)."""
    return np.random.Generator(np.random.Philox(key=_step_key(seed, index, step)))


def draw_sample(
    steps: list[Step], seed: int, index: int, channels: int, streams: StepStreams | None = None
) -> SampleParams:
    """Draw the parameters of sample ``index`` for a config of normalised steps (``streams``: a
    reusable ``StepStreams``, to save its set-up when drawing many samples)."""
    streams = streams or StepStreams()
    spatial: dict[str, Any] = {}
    intensity: list[IntensityParams] = []
    for i, step in enumerate(steps):
        rng = streams(seed, index, i)
        apply = bool(rng.random() < step["p"])
        name = step["name"]
        if name == "affine":
            spatial.update(_draw_affine(rng, step, apply))
        elif name == "elastic":
            spatial["elastic"] = _draw_elastic(rng, step, apply)
        elif name == "flip":
            flips = [bool(rng.random() < step["p_axis"]) and apply for _ in range(3)]
            spatial["flip"] = tuple(f and a in step["axes"] for a, f in enumerate(flips))
        else:
            intensity.append(_draw_intensity(rng, step, apply, channels))
    return SampleParams(
        seed=seed, index=index, spatial=SpatialParams(**spatial), intensity=tuple(intensity)
    )
