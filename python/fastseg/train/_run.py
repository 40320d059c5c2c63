"""The run directory that ``fastseg train`` writes and ``fastseg predict`` reads.

Layout of ``RUN/``::

    run.json                 RunSpec: model spec, patch size, the store's preprocessing plan,
                             label and channel names, the split, inference settings, the config
    config.yaml              the resolved training configuration (every field, human readable)
    checkpoints/last.pt      latest state (model, optimizer, scaler, iteration, RNG states, ...)
    checkpoints/best.pt      the state with the best validation Dice so far (last.pt when the run
                             has no validation cases)
    postprocessing.json      post-processing plan chosen on the validation cases (optional)
    validation.csv           per case and label metrics of the best model (optional)
    log.jsonl, tensorboard/  training log

Checkpoints hold only tensors, numbers, strings, lists and dicts, so they load with
``torch.load(path, weights_only=True)``; every file is written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fastseg._atomic import atomic_path, write_text_atomic
from fastseg.errors import InputError

RUN_FORMAT = "fastseg-run"
RUN_VERSION = 1
SPEC_FILE = "run.json"
CONFIG_FILE = "config.yaml"
CHECKPOINTS = "checkpoints"
POSTPROCESSING_FILE = "postprocessing.json"
VALIDATION_FILE = "validation.csv"
CHECKPOINT_NAMES = ("best", "last")

REQUIRED_KEYS = ("model", "patch_size", "store", "inference")
"""Keys of run.json that ``predict`` relies on:

- ``model``: the :func:`fastseg.nn.build_model` spec (JSON);
- ``patch_size``: ``[z, y, x]`` voxels of the training patch, the sliding-window size;
- ``store``: ``{"url", "modality", "channel_names", "label_names" ({"0": name, ...}),
  "plan"}`` where ``plan`` is the store's conversion plan (``Store.attrs["plan"]``: target
  spacing, resampling, normalisation), so new scans get the training preprocessing;
- ``inference``: ``{"overlap": float, "mirror_axes": [axes]}`` defaults for ``predict``.

Optional: ``split`` (``{"fold", "folds", "train": [ids], "validation": [ids]}``), ``config``
(the resolved configuration dict), ``fastseg_version``.
"""


def checkpoint_path(run_dir: str | os.PathLike[str], which: str = "best") -> Path:
    """``RUN/checkpoints/<which>.pt`` for ``which`` in ``best``, ``last``."""
    if which not in CHECKPOINT_NAMES:
        raise InputError(f"checkpoint: expected one of {CHECKPOINT_NAMES}, got {which!r}")
    return Path(run_dir) / CHECKPOINTS / f"{which}.pt"


def write_run_spec(run_dir: str | os.PathLike[str], spec: dict[str, Any]) -> Path:
    """Write ``RUN/run.json`` atomically (adds the format and version fields)."""
    missing = [k for k in REQUIRED_KEYS if k not in spec]
    if missing:
        raise InputError(f"run spec: missing keys {missing}")
    doc = {"format": RUN_FORMAT, "version": RUN_VERSION, **spec}
    return write_text_atomic(Path(run_dir) / SPEC_FILE, json.dumps(doc, indent=2) + "\n")


def read_run_spec(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``RUN/run.json``; a clear error when RUN is not a complete fastseg run."""
    path = Path(run_dir) / SPEC_FILE
    if not path.is_file():
        raise InputError(f"{run_dir}: not a fastseg run directory ({SPEC_FILE} missing)")
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != RUN_FORMAT:
        raise InputError(f"{path}: not a fastseg run spec (format {RUN_FORMAT!r} expected)")
    if doc.get("version") != RUN_VERSION:
        raise InputError(f"{path}: run spec version {doc.get('version')!r}, expected {RUN_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise InputError(f"{path}: missing keys {missing}")
    return doc


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """``torch.save`` ``state`` atomically (temporary name, then rename)."""
    import torch

    path = Path(path)
    with atomic_path(path, path.suffix) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with a fastseg error for a missing/corrupt file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike
        raise InputError(f"{path}: not a loadable fastseg checkpoint ({exc})") from exc
    if not isinstance(state, dict) or "model" not in state:
        raise InputError(f"{path}: checkpoint has no 'model' state")
    return state


def load_model(
    run_dir: str | os.PathLike[str], which: str = "best", device: Any = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """The trained model of a run, in eval mode on ``device``, and the run spec."""
    from fastseg.nn import build_model

    spec = read_run_spec(run_dir)
    model = build_model(spec["model"])
    state = load_checkpoint(checkpoint_path(run_dir, which), map_location=device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise InputError(f"{run_dir}: checkpoint {which!r} does not fit run.json's model") from exc
    return model.to(device).eval(), spec
