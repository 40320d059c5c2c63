"""Training configuration: one YAML or TOML file, every field optional.

Unknown keys and bad values are errors (:class:`fastseg.errors.InputError` naming the dotted
key, e.g. ``optim.learning_rate: expected > 0, got -1``). Precedence, lowest first: built-in
defaults < the store's training plan (written by ``fastseg plan`` into the store's root
attributes, key ``training_plan``, same sections as below) < ``--config FILE`` < command-line
flags (``overrides``). Sizes are voxels in ``(z, y, x)`` order, times are seconds.

.. code-block:: yaml

    model:                      # fastseg.nn.build_model spec minus name/in_channels/num_classes
      dimensions: 3             # 3 = 3D U-Net; 2 = 2D U-Net trained on slices (patch_size[0] == 1)
      widths: [32, 64, 128, 256]
      strides: null             # per level below the first, [sz, sy, sx]; null = 2 everywhere
      norm: instance            # instance | batch
      residual: false
      deep_supervision: true
    data:
      patch_size: null          # [z, y, x] voxels; null = the plan's, else the median case shape (capped)
      batch_size: 2
      oversample_foreground: 0.33
      workers: 2                # loader worker processes (0 = in-process)
      prefetch: 4
      augmentation: default     # default | none | a list of fastseg.augment.Pipeline steps
      mirror_axes: null         # axes (0 z, 1 y, 2 x) the default augmentation flips and test-time
                                # augmentation mirrors; null = all (a 2D model: 1, 2); the plan
                                # leaves out axes along which the labels keep a fixed order
      augment_device: auto      # auto (cuda when training on cuda) | cpu | cuda
      loader: native            # native | dali
    split:
      folds: 5                  # cases sorted by id, case i goes to fold i % folds
      fold: 0                   # validation fold; -1 = train on all cases, no validation
      validation_cases: null    # explicit list of case ids (overrides folds/fold)
    optim:
      optimizer: adamw          # adamw | sgd (SGD with momentum + Nesterov, nnU-Net's)
      learning_rate: null       # null = 3e-3 for adamw, 1e-2 for sgd
      weight_decay: 3.0e-5
      momentum: 0.99
      warmup_iterations: 50     # linear warm-up, then poly decay
      poly_power: 0.9
      grad_clip: 12.0           # max gradient norm; null = no clipping
    loss:
      name: dice_ce             # dice | dice_ce (fused native Dice + CE)
      include_background: false
    schedule:
      time_budget_s: 2400       # stop after this many seconds of training (null = no limit)
      max_iterations: null      # stop after this many iterations (null = no limit); one of the two required
      validate_every: 500       # iterations between validations on whole cases (sliding window)
      validation_overlap: 0.5
      checkpoint_every_s: 120   # last.pt at least this often (and at every validation and at the end)
    training:
      device: auto              # auto | cpu | cuda | cuda:N
      amp: auto                 # auto (CUDA: bf16 if supported, else fp16; CPU: bf16 on CPUs with AMX/AVX512-BF16, else off) | bf16 | fp16 | off
      seed: 0
      log_every_s: 10
      tensorboard: true         # only when the tensorboard package is installed (else a note in the log)
      cuda_graph: off           # replay the training step as a CUDA graph: auto (on a single CUDA
                                # device without fp16, falling back to eager if capture fails) | on | off
                                # (off by default until measured on a GPU: see the README)

The same file in TOML has one table per section (``[optim]``, ``learning_rate = 1e-3``); TOML
has no null, so leave a key out to keep its default. ``overrides`` take nested sections
(``{"optim": {"learning_rate": 1e-3}}``) or dotted keys (``{"optim.learning_rate": 1e-3}``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastseg.errors import InputError

DEFAULT_LEARNING_RATE = {"adamw": 3e-3, "sgd": 1e-2}
PATCH_CAP_3D = (128, 128, 128)
"""Largest default 3D patch (when neither the plan nor the config gives one)."""
PATCH_CAP_2D = (1, 512, 512)


@dataclass
class ModelConfig:
    dimensions: int = 3
    widths: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    strides: list[list[int]] | None = None
    norm: str = "instance"
    residual: bool = False
    deep_supervision: bool = True


@dataclass
class DataConfig:
    patch_size: list[int] | None = None
    batch_size: int = 2
    oversample_foreground: float = 0.33
    workers: int = 2
    prefetch: int = 4
    augmentation: str | list[dict[str, Any]] = "default"
    mirror_axes: list[int] | None = None
    augment_device: str = "auto"
    loader: str = "native"


@dataclass
class SplitConfig:
    folds: int = 5
    fold: int = 0
    validation_cases: list[str] | None = None


@dataclass
class OptimConfig:
    optimizer: str = "adamw"
    learning_rate: float | None = None
    weight_decay: float = 3.0e-5
    momentum: float = 0.99
    warmup_iterations: int = 50
    poly_power: float = 0.9
    grad_clip: float | None = 12.0


@dataclass
class LossConfig:
    name: str = "dice_ce"
    include_background: bool = False


@dataclass
class ScheduleConfig:
    time_budget_s: float | None = 2400.0
    max_iterations: int | None = None
    validate_every: int = 500
    validation_overlap: float = 0.5
    checkpoint_every_s: float = 120.0


@dataclass
class TrainingConfig:
    device: str = "auto"
    amp: str = "auto"
    seed: int = 0
    log_every_s: float = 10.0
    tensorboard: bool = True
    cuda_graph: str = "off"


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "split": SplitConfig,
    "optim": OptimConfig,
    "loss": LossConfig,
    "schedule": ScheduleConfig,
    "training": TrainingConfig,
}


@dataclass
class TrainConfig:
    """The whole training configuration (see the module docstring for every field)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (sections → fields), YAML/JSON serialisable."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> TrainConfig:
        """Validated config from a nested dict over the defaults (unknown keys are errors)."""
        merged = _merge(TrainConfig().to_dict(), data, source)
        return _build(merged)

    def to_yaml(self) -> str:
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None))

    @property
    def learning_rate(self) -> float:
        """The effective base learning rate (the optimizer's default when not set)."""
        if self.optim.learning_rate is not None:
            return float(self.optim.learning_rate)
        return DEFAULT_LEARNING_RATE[self.optim.optimizer]

    @property
    def mirror_axes(self) -> list[int]:
        """The axes flipped by the default augmentation and mirrored at test time:
        ``data.mirror_axes`` (all spatial axes when null), without z for a 2D model."""
        axes = [0, 1, 2] if self.data.mirror_axes is None else self.data.mirror_axes
        return [a for a in axes if self.model.dimensions == 3 or a != 0]


# --------------------------------------------------------------------------------------------
# merging


def _merge(base: dict[str, Any], layer: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``base`` (a full nested dict) updated with ``layer``; unknown sections/keys are errors."""
    if not isinstance(layer, Mapping):
        raise InputError(f"{source}: expected a mapping of sections, got {type(layer).__name__}")
    out = copy.deepcopy(base)
    for section, values in layer.items():
        if section not in SECTIONS:
            raise InputError(
                f"{source}: unknown section {section!r} (expected one of {sorted(SECTIONS)})"
            )
        if values is None:
            continue
        if not isinstance(values, Mapping):
            raise InputError(
                f"{source}: {section}: expected a mapping of keys, got {type(values).__name__}"
            )
        for key, value in values.items():
            if key not in out[section]:
                known = sorted(out[section])
                raise InputError(f"{source}: unknown key {section}.{key} (known: {known})")
            out[section][key] = copy.deepcopy(value)
    return out


def _undot(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optim.learning_rate": x}`` and ``{"optim": {...}}`` alike → nested."""
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if "." in key:
            section, name = key.split(".", 1)
            if "." in name:
                raise InputError(f"overrides: expected 'section.key', got {key!r}")
            nested.setdefault(section, {})[name] = value
        elif isinstance(value, Mapping):
            nested.setdefault(key, {}).update(value)
        else:
            raise InputError(f"overrides: expected 'section.key' or a section mapping, got {key!r}")
    return nested


# --------------------------------------------------------------------------------------------
# validation


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _int(lo: int | None = None) -> Callable[[str, Any], int]:
    def check(key: str, v: Any) -> int:
        if not _is_int(v):
            raise InputError(f"{key}: expected an integer, got {v!r}")
        if lo is not None and v < lo:
            raise InputError(f"{key}: expected >= {lo}, got {v}")
        return int(v)

    return check


def _num(lo: float | None = None, hi: float | None = None, strict: bool = False) -> Any:
    def check(key: str, v: Any) -> float:
        if not _is_num(v):
            raise InputError(f"{key}: expected a number, got {v!r}")
        if lo is not None and (v <= lo if strict else v < lo):
            raise InputError(f"{key}: expected {'>' if strict else '>='} {lo:g}, got {v}")
        if hi is not None and v > hi:
            raise InputError(f"{key}: expected <= {hi:g}, got {v}")
        return float(v)

    return check


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    def wrapped(key: str, v: Any) -> Any:
        return None if v is None else check(key, v)

    return wrapped


def _choice(*options: str) -> Callable[[str, Any], str]:
    def check(key: str, v: Any) -> str:
        if v is False and "off" in options:
            v = "off"  # YAML 1.1 reads an unquoted `off` as false
        if v not in options:
            raise InputError(f"{key}: expected one of {list(options)}, got {v!r}")
        return str(v)

    return check


def _bool(key: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise InputError(f"{key}: expected true or false, got {v!r}")
    return v


def _int_list(n: int | None = None, lo: int = 1) -> Callable[[str, Any], list[int]]:
    def check(key: str, v: Any) -> list[int]:
        if not isinstance(v, (list, tuple)) or not v or (n is not None and len(v) != n):
            want = f"a list of {n} integers" if n is not None else "a non-empty list of integers"
            raise InputError(f"{key}: expected {want}, got {v!r}")
        if not all(_is_int(x) and x >= lo for x in v):
            raise InputError(f"{key}: expected integers >= {lo}, got {v!r}")
        return [int(x) for x in v]

    return check


def _strides(key: str, v: Any) -> list[list[int]]:
    if not isinstance(v, (list, tuple)):
        raise InputError(f"{key}: expected a list of [sz, sy, sx] triples or null, got {v!r}")
    return [_int_list(3)(f"{key}[{i}]", s) for i, s in enumerate(v)]


def _augmentation(key: str, v: Any) -> str | list[dict[str, Any]]:
    if v is None or v is False:
        return "none"
    if v in ("default", "none"):
        return str(v)
    if isinstance(v, (list, tuple)) and all(isinstance(s, Mapping) and "name" in s for s in v):
        return [dict(s) for s in v]
    raise InputError(
        f"{key}: expected 'default', 'none' or a list of steps {{name: ..., p: ...}}, got {v!r}"
    )


def _axes(key: str, v: Any) -> list[int]:
    if (
        not isinstance(v, (list, tuple))
        or not all(_is_int(a) and 0 <= a <= 2 for a in v)
        or len(set(v)) != len(v)
    ):
        raise InputError(f"{key}: expected distinct axes among 0 (z), 1 (y), 2 (x), got {v!r}")
    return sorted(int(a) for a in v)


def _dimensions(key: str, v: Any) -> int:
    if not _is_int(v) or v not in (2, 3):
        raise InputError(f"{key}: expected 2 or 3, got {v!r}")
    return int(v)


def _device(key: str, v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
        raise InputError(f"{key}: expected auto, cpu, cuda or cuda:N, got {v!r}")
    return v


def _case_ids(key: str, v: Any) -> list[str]:
    if not isinstance(v, (list, tuple)) or not all(isinstance(c, str) for c in v):
        raise InputError(f"{key}: expected a list of case ids (strings) or null, got {v!r}")
    return list(v)


CHECKS: dict[str, dict[str, Callable[[str, Any], Any]]] = {
    "model": {
        "dimensions": _dimensions,
        "widths": _int_list(),
        "strides": _optional(_strides),
        "norm": _choice("instance", "batch"),
        "residual": _bool,
        "deep_supervision": _bool,
    },
    "data": {
        "patch_size": _optional(_int_list(3)),
        "batch_size": _int(1),
        "oversample_foreground": _num(0.0, 1.0),
        "workers": _int(0),
        "prefetch": _int(1),
        "augmentation": _augmentation,
        "mirror_axes": _optional(_axes),
        "augment_device": _choice("auto", "cpu", "cuda"),
        "loader": _choice("native", "dali"),
    },
    "split": {
        "folds": _int(1),
        "fold": _int(-1),
        "validation_cases": _optional(_case_ids),
    },
    "optim": {
        "optimizer": _choice("adamw", "sgd"),
        "learning_rate": _optional(_num(0.0, strict=True)),
        "weight_decay": _num(0.0),
        "momentum": _num(0.0, 1.0),
        "warmup_iterations": _int(0),
        "poly_power": _num(0.0),
        "grad_clip": _optional(_num(0.0, strict=True)),
    },
    "loss": {"name": _choice("dice", "dice_ce"), "include_background": _bool},
    "schedule": {
        "time_budget_s": _optional(_num(0.0)),
        "max_iterations": _optional(_int(0)),
        "validate_every": _int(1),
        "validation_overlap": _num(0.0, 0.99),
        "checkpoint_every_s": _num(0.0),
    },
    "training": {
        "device": _device,
        "amp": _choice("auto", "bf16", "fp16", "off"),
        "seed": _int(0),
        "log_every_s": _num(0.0),
        "tensorboard": _bool,
        "cuda_graph": _choice("auto", "on", "off"),
    },
}


def _build(merged: dict[str, Any]) -> TrainConfig:
    sections = {}
    for name, cls in SECTIONS.items():
        values = {key: CHECKS[name][key](f"{name}.{key}", v) for key, v in merged[name].items()}
        sections[name] = cls(**values)
    config = TrainConfig(**sections)
    _check_consistency(config)
    return config


def _check_consistency(config: TrainConfig) -> None:
    s, m, d, sp = config.schedule, config.model, config.data, config.split
    if s.time_budget_s is None and s.max_iterations is None:
        raise InputError(
            "schedule: give schedule.time_budget_s, schedule.max_iterations or both (both are null)"
        )
    if m.dimensions == 2 and d.patch_size is not None and d.patch_size[0] != 1:
        raise InputError(
            f"data.patch_size: a 2D model (model.dimensions: 2) trains on slices, so the z size "
            f"must be 1, got {d.patch_size}"
        )
    if m.strides is not None and len(m.strides) != len(m.widths) - 1:
        raise InputError(
            f"model.strides: expected {len(m.widths) - 1} triples (one per level below the "
            f"first), got {len(m.strides)}"
        )
    if sp.fold >= sp.folds:
        raise InputError(f"split.fold: expected -1 or < split.folds ({sp.folds}), got {sp.fold}")
    if d.augment_device == "cuda" and config.training.device == "cpu":
        raise InputError("data.augment_device: cuda needs training.device cuda or auto")
    t = config.training
    if t.cuda_graph == "on" and (t.device == "cpu" or t.amp == "fp16"):
        raise InputError(
            "training.cuda_graph: on needs training.device cuda or auto and training.amp other "
            "than fp16 (its GradScaler syncs with the host every step)"
        )


# --------------------------------------------------------------------------------------------
# files


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw nested dict of a ``.yaml``/``.yml`` or ``.toml`` file (not validated)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: config file not found")
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not valid TOML ({exc})") from None
    elif path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: not valid YAML ({exc})") from None
    else:
        raise InputError(f"{path}: expected a .yaml, .yml or .toml config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def store_training_plan(store: Any) -> dict[str, Any] | None:
    """The ``training_plan`` dict of a store (a ``Store`` or its URL), or None."""
    if store is None:
        return None
    if isinstance(store, (str, os.PathLike)):
        from fastseg.store import Store

        store = Store.open(store)
    plan = store.attrs.get("training_plan")
    if plan is None:
        return None
    if not isinstance(plan, Mapping):
        raise InputError(f"{store.url}: training_plan: expected a mapping of sections")
    # keep only the sections and keys this schema knows (a plan may carry extra notes)
    return {
        s: {k: v for k, v in values.items() if k in CHECKS[s]}
        for s, values in plan.items()
        if s in SECTIONS and isinstance(values, Mapping)
    }


def load_config(
    path: str | os.PathLike[str] | None = None,
    store: Any = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Defaults < ``store``'s training plan < the file at ``path`` < ``overrides``, validated."""
    merged = TrainConfig().to_dict()
    plan = store_training_plan(store)
    if plan:
        merged = _merge(merged, plan, "training_plan")
    if path is not None:
        merged = _merge(merged, read_config_file(path), str(path))
    if overrides:
        merged = _merge(merged, _undot(overrides), "overrides")
    return _build(merged)
