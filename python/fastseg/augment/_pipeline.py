"""fastseg.augment.Pipeline: spatial steps fused into one resampling, then intensity steps in order."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastseg import _native
from fastseg.augment._config import SPATIAL_STEPS, Step, normalize_config
from fastseg.augment._params import IntensityParams, SampleParams, StepStreams, draw_sample
from fastseg.augment._spatial import compile_maps
from fastseg.errors import InputError

_IMAGE_ORDERS = {"linear": 1, "cubic": 3}
_LABEL_MODES = {"nearest": 0, "linear": 1}
_BORDERS = {"constant": 0, "edge": 1}
_NUMPY_LABEL_CAST = {
    np.dtype(np.bool_): np.uint8,
    np.dtype(np.uint16): np.int32,
    np.dtype(np.uint32): np.int64,
    np.dtype(np.uint64): np.int64,
}
_OPTIONS = (
    "patch_size",
    "image_interpolation",
    "label_interpolation",
    "border",
    "border_value",
    "label_border_value",
)


def _choice(value: Any, table: Mapping[str, int], name: str) -> int:
    if value not in table:
        raise InputError(f"{name}: expected one of {', '.join(table)}, got {value!r}")
    return table[value]


class Pipeline:
    """A seeded augmentation pipeline over (C, z, y, x) images or (N, C, z, y, x) batches.

    Parameters
    ----------
    config
        A list of steps ``{"name": ..., "p": ..., ...}`` (see ``fastseg.augment.step_names`` and
        DESIGN.md); every parameter has a default. The spatial steps (affine, elastic, flip) are
        composed into one coordinate map and one resampling pass wherever they appear; the
        intensity steps then run on the image, in config order. Labels only see the spatial part.
    patch_size
        Output (z, y, x) shape, a patch centred in the input (which may be larger); None keeps the
        input shape.
    image_interpolation
        "linear" (trilinear) or "cubic" (cubic convolution, Keys a = -0.5).
    label_interpolation
        "nearest", or "linear" (trilinear on the one-hot encoding, then argmax).
    border, border_value, label_border_value
        "constant" (image reads ``border_value`` and labels ``label_border_value`` outside the
        input) or "edge" (nearest edge voxel).
    """

    def __init__(
        self,
        config: Sequence[Mapping[str, Any]],
        *,
        patch_size: Sequence[int] | None = None,
        image_interpolation: str = "linear",
        label_interpolation: str = "nearest",
        border: str = "constant",
        border_value: float = 0.0,
        label_border_value: int = 0,
    ) -> None:
        self.steps: list[Step] = normalize_config(config)
        if patch_size is not None:
            ps = tuple(patch_size)
            if len(ps) != 3 or not all(isinstance(v, int | np.integer) and v >= 1 for v in ps):
                raise InputError(
                    f"patch_size: expected 3 positive integers (z, y, x), got {patch_size!r}"
                )
            self.patch_size: tuple[int, int, int] | None = (int(ps[0]), int(ps[1]), int(ps[2]))
        else:
            self.patch_size = None
        self.image_order = _choice(image_interpolation, _IMAGE_ORDERS, "image_interpolation")
        self.label_mode = _choice(label_interpolation, _LABEL_MODES, "label_interpolation")
        self.border = _choice(border, _BORDERS, "border")
        if not np.isfinite(float(border_value)):
            raise InputError(f"border_value: expected a finite number, got {border_value!r}")
        self.border_value = float(border_value)
        if isinstance(label_border_value, bool) or not isinstance(
            label_border_value, int | np.integer
        ):
            raise InputError(f"label_border_value: expected an integer, got {label_border_value!r}")
        self.label_border_value = int(label_border_value)
        self._options = {
            "patch_size": self.patch_size,
            "image_interpolation": image_interpolation,
            "label_interpolation": label_interpolation,
            "border": border,
            "border_value": self.border_value,
            "label_border_value": self.label_border_value,
        }

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> Pipeline:
        """Load a pipeline from YAML: a list of steps, or a mapping with ``steps`` and any of the
        keyword options (``patch_size``, ``border``, ...)."""
        import yaml

        p = Path(path)
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"{p}: cannot read the augmentation config ({exc})") from exc
        except yaml.YAMLError as exc:
            raise InputError(f"{p}: not valid YAML ({exc})") from exc
        if isinstance(doc, Mapping):
            unknown = sorted(set(doc) - {"steps", *_OPTIONS})
            if unknown or "steps" not in doc:
                raise InputError(
                    f"{p}: expected a list of steps or a mapping with 'steps' and options "
                    f"{', '.join(_OPTIONS)}, got keys {sorted(doc)}"
                )
            return cls(doc["steps"], **{k: doc[k] for k in _OPTIONS if k in doc})
        return cls(doc)

    def to_config(self) -> dict[str, Any]:
        """The steps with every parameter filled in, and the options: what ``from_yaml`` reads."""
        return {"steps": [dict(s) for s in self.steps], **self._options}

    def __repr__(self) -> str:
        return (
            f"Pipeline([{', '.join(s['name'] for s in self.steps)}], patch_size={self.patch_size})"
        )

    def draw(self, seed: int | None, shape: Sequence[int]) -> list[SampleParams]:
        """Parameters for an image of ``shape`` (C, z, y, x) or (N, C, z, y, x): one per sample.

        ``seed=None`` draws a fresh seed (recorded in the result)."""
        shp = tuple(int(v) for v in shape)
        if len(shp) not in (4, 5):
            raise InputError(f"shape: expected (C, z, y, x) or (N, C, z, y, x), got {shp}")
        n = shp[0] if len(shp) == 5 else 1
        channels = shp[-4]
        if seed is None:
            seed = secrets.randbits(63)
        if (
            isinstance(seed, bool)
            or not isinstance(seed, int | np.integer)
            or not 0 <= seed < 2**64
        ):
            raise InputError(f"seed: expected an integer in [0, 2**64) or None, got {seed!r}")
        streams = StepStreams()
        return [draw_sample(self.steps, int(seed), k, channels, streams) for k in range(n)]

    def __call__(
        self,
        image: Any,
        label: Any = None,
        *,
        seed: int | None = None,
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
    ) -> tuple[Any, Any]:
        """Augment ``image`` (C, z, y, x) or (N, C, z, y, x) and ``label`` ((z, y, x) / (N, z, y, x),
        or None) with parameters drawn from ``seed``; ``spacing`` (z, y, x) mm. NumPy arrays run on
        the CPU, CUDA tensors on their GPU. Returns (float32 image, label of the input dtype)."""
        _native.device_of(image)
        _check_image_rank(image)
        return self.apply(image, label, self.draw(seed, tuple(image.shape)), spacing=spacing)

    def apply(
        self,
        image: Any,
        label: Any,
        params: SampleParams | Sequence[SampleParams],
        *,
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
        intensity: bool = True,
    ) -> tuple[Any, Any]:
        """Replay drawn parameters (from :meth:`draw`) on an image and label, as ``__call__``;
        ``intensity=False`` runs only the spatial part (for a caller that runs the intensity
        steps later, on a whole batch: they act on each sample independently)."""
        plist = [params] if isinstance(params, SampleParams) else list(params)
        device = _native.device_of(image)
        _check_image_rank(image)
        batched = len(image.shape) == 5
        img = image if batched else image[None]
        n, c = int(img.shape[0]), int(img.shape[1])
        src_shape = tuple(int(v) for v in img.shape[2:])
        if len(plist) != n:
            raise InputError(
                f"params: expected {n} sample parameter sets (one per sample), got {len(plist)}"
            )
        sp = tuple(float(v) for v in spacing)
        if len(sp) != 3 or not all(np.isfinite(v) and v > 0 for v in sp):
            raise InputError(
                f"spacing: expected 3 positive numbers (z, y, x) mm, got {tuple(spacing)}"
            )
        lab = None
        if label is not None:
            lab = label if batched else label[None]
            if tuple(lab.shape) != (n, *src_shape):
                raise InputError(
                    f"label: expected shape {(n, *src_shape) if batched else src_shape} to match image "
                    f"{tuple(image.shape)}, got {tuple(label.shape)}"
                )
            if _native.device_of(lab) != device:
                raise InputError(f"label: expected it on the image's device ({device})")
        out_shape: tuple[int, int, int] = self.patch_size or (
            src_shape[0],
            src_shape[1],
            src_shape[2],
        )
        names = [s["name"] for s in self.steps if s["name"] not in SPATIAL_STEPS]
        for p in plist:
            if [op.name for op in p.intensity] != names:
                raise InputError(
                    f"params: drawn for intensity steps {[op.name for op in p.intensity]}, "
                    f"this pipeline has {names}"
                )
            for op in p.intensity:
                if op.active.shape != (c,):
                    raise InputError(
                        f"params: drawn for {op.active.shape[0]} channels, image has {c}"
                    )

        label_dtype = None
        if device == "cpu":
            img = np.ascontiguousarray(img, dtype=np.float32)
            if lab is not None:
                lab = np.asarray(lab)
                if lab.dtype.kind not in "biu":
                    raise InputError(
                        f"label: expected an integer or bool array, got dtype {lab.dtype}"
                    )
                if lab.dtype in _NUMPY_LABEL_CAST:
                    label_dtype = lab.dtype
                    lab = lab.astype(_NUMPY_LABEL_CAST[lab.dtype])
        else:
            img = img.float().contiguous()
            if lab is not None and str(lab.dtype) == "torch.bool":
                label_dtype = lab.dtype
                lab = lab.to(dtype=_torch_uint8())

        maps, coef, has = compile_maps([p.spatial for p in plist], src_shape, out_shape, sp)
        out, out_lab = _native.augment_spatial(
            img,
            lab,
            out_shape,
            maps,
            coef,
            has,
            self.image_order,
            self.label_mode,
            self.border,
            self.border_value,
            self.label_border_value,
        )
        if intensity and n > 0:
            self.run_intensity(out, plist)
        if out_lab is not None and label_dtype is not None:
            out_lab = (
                out_lab.astype(label_dtype) if device == "cpu" else out_lab.to(dtype=label_dtype)
            )
        if not batched:
            out = out[0]
            out_lab = None if out_lab is None else out_lab[0]
        return out, out_lab

    def run_intensity(self, batch: Any, params: Sequence[SampleParams]) -> None:
        """The intensity steps, in order, in place on a C-contiguous float32 (n, C, z, y, x)
        batch (NumPy or CUDA tensor) with one drawn parameter set per sample."""
        steps = [s for s in self.steps if s["name"] not in SPATIAL_STEPS]
        for k, step in enumerate(steps):
            _run_intensity(batch, step, [p.intensity[k] for p in params])


def _check_image_rank(image: Any) -> None:
    if len(image.shape) not in (4, 5):
        raise InputError(
            f"image: expected (C, z, y, x) or (N, C, z, y, x), got shape {tuple(image.shape)}"
        )


def _torch_uint8() -> Any:
    import torch

    return torch.uint8


def _run_intensity(image: Any, step: Step, ops: list[IntensityParams]) -> None:
    active = np.stack([op.active for op in ops]).astype(np.uint8)
    if not active.any():
        return

    def per(key: str) -> np.ndarray:
        return np.ascontiguousarray(np.stack([op.values[key] for op in ops]), dtype=np.float32)

    name = step["name"]
    if name == "noise":
        keys = np.array([op.key for op in ops], dtype=np.uint64)
        _native.augment_intensity("noise", image, active, per("sigma"), keys)
    elif name == "blur":
        _native.augment_intensity("blur", image, active, per("sigma"))
    elif name == "brightness":
        _native.augment_intensity("brightness", image, active, per("multiplier"), per("additive"))
    elif name == "contrast":
        _native.augment_intensity(
            "contrast", image, active, per("factor"), bool(step["preserve_range"])
        )
    elif name == "lowres":
        _native.augment_intensity("lowres", image, active, per("zoom"))
    elif name == "gamma":
        invert = np.full(active.shape, bool(step["invert"]), dtype=np.uint8)
        _native.augment_intensity(
            "gamma", image, active, per("gamma"), invert, bool(step["retain_stats"])
        )
    elif name == "bias_field":
        _native.augment_intensity(
            "bias_field", image, active, per("coefficients"), int(step["order"])
        )
    else:  # pragma: no cover - names are validated
        raise AssertionError(name)
