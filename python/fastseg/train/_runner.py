"""``fastseg train``: train a U-Net on a fastseg store into a run directory (see
:mod:`fastseg.train._run` for the layout), with validation on whole cases, best-model
selection, atomic checkpoints, resume, TensorBoard, and DistributedDataParallel under torchrun.

Patches are ``(N, C, z, y, x)`` float32 with labels ``(N, z, y, x)``; validation predicts whole
stored cases ``(C, z, y, x)`` on the stored grid. Times are seconds of training (the time budget
counts every session of a resumed run together).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fastseg._atomic import write_text_atomic
from fastseg.errors import InputError
from fastseg.train import _run
from fastseg.train._batches import open_loader, training_augmentation
from fastseg.train._config import TrainConfig, load_config
from fastseg.train._distributed import DistContext, setup
from fastseg.train._graph_step import GraphCaptureError, GraphedStep, graph_obstacle
from fastseg.train._optim import (
    conform_optimizer,
    learning_rate,
    make_optimizer,
    set_learning_rate,
)
from fastseg.train._validate import (
    CasePrediction,
    ValidationResult,
    metric_rows,
    overlay,
    predict_case,
    summarize,
)

LOG_FILE = "log.jsonl"
TENSORBOARD_DIR = "tensorboard"
OVERLAY_CASES = 3
PROBABILITY_BYTES_FOR_POSTPROCESSING = 2 << 30
"""Post-processing is chosen on validation probabilities (thresholds included) when they fit
in this many bytes, else on label maps."""


@dataclass
class TrainRunResult:
    """What :func:`train_run` did. ``model`` is the final model (eval mode, not the best one);
    ``learning_rates``/``losses`` are those of this session's iterations."""

    run_dir: Path
    iterations: int
    seconds: float
    stopped_by: str
    best_score: float | None
    best_iteration: int | None
    history: list[dict[str, Any]] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    validation: ValidationResult | None = None
    model: nn.Module | None = None


# --------------------------------------------------------------------------------------------
# set-up helpers


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"training.device: {name} requested but CUDA is not available")
    return device


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX tiles or AVX-512 BF16): then autocast to
    bf16 trains about 1.5x faster than float32 (hippocampus U-Net, 2 cores)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def _amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if mode == "off":
        return None
    if device.type != "cuda":
        if mode == "auto":
            return torch.bfloat16 if cpu_has_fast_bf16() else None
        if mode == "bf16":
            return torch.bfloat16
        raise InputError("training.amp: fp16 needs a CUDA device (use bf16 or off on CPU)")
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


def split_cases(store: Any, config: TrainConfig) -> tuple[list[str], list[str]]:
    """``(train, validation)`` case ids: the labelled cases sorted by id, case ``i`` in fold
    ``i % folds``; ``split.validation_cases`` overrides; ``fold == -1``: no validation."""
    cases = [c for c in store.cases if store[c].has_label]
    if not cases:
        raise InputError(f"{store.url}: no labelled cases to train on")
    s = config.split
    if s.validation_cases is not None:
        unknown = [c for c in s.validation_cases if c not in cases]
        if unknown:
            raise InputError(f"split.validation_cases: not labelled cases of the store: {unknown}")
        chosen = set(s.validation_cases)
        validation = [c for c in cases if c in chosen]
    elif s.fold == -1:
        validation = []
    else:
        validation = [c for i, c in enumerate(cases) if i % s.folds == s.fold]
    train = [c for c in cases if c not in set(validation)]
    if not train:
        raise InputError(
            f"split: no training cases left ({len(cases)} cases, {len(validation)} for validation)"
        )
    return train, validation


def default_patch_size(store: Any, cases: Sequence[str], dimensions: int) -> list[int]:
    """The median stored shape of ``cases`` capped at 128³ (3D) or ``[1, ≤512, ≤512]`` (2D)."""
    from fastseg.train._config import PATCH_CAP_2D, PATCH_CAP_3D

    shapes = np.array([store[c].shape for c in cases])
    median = [int(v) for v in np.median(shapes, axis=0)]
    cap = PATCH_CAP_2D if dimensions == 2 else PATCH_CAP_3D
    patch = [max(1, min(m, c)) for m, c in zip(median, cap, strict=True)]
    if dimensions == 2:
        patch[0] = 1
    return patch


def resolve_config(
    config: TrainConfig | str | os.PathLike[str] | None,
    store: Any,
    run_dir: Path,
    resume: bool,
    overrides: dict[str, Any] | None,
) -> TrainConfig:
    """The configuration of this run: the given one (or ``--config`` file over the store's
    plan), or on resume without one, the run's saved config.yaml."""
    saved = run_dir / _run.CONFIG_FILE
    if isinstance(config, TrainConfig):
        if overrides:
            merged = config.to_dict()
            cfg = load_config(None, None, {**_flatten(merged), **overrides})
        else:
            cfg = TrainConfig.from_dict(config.to_dict())
    elif config is None and resume and saved.is_file():
        cfg = load_config(saved, None, overrides)
    else:
        cfg = load_config(config, store, overrides)
    return cfg


def _flatten(d: dict[str, Any]) -> dict[str, Any]:
    return {f"{s}.{k}": v for s, values in d.items() for k, v in values.items()}


def _with_patch(cfg: TrainConfig, patch: list[int]) -> TrainConfig:
    d = cfg.to_dict()
    d["data"]["patch_size"] = patch
    return TrainConfig.from_dict(d)


def _config_diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [
        f"{s}.{k}: {a[s][k]!r} → {b[s].get(k)!r}"
        for s in a
        for k in a[s]
        if a[s][k] != b.get(s, {}).get(k)
    ]


# --------------------------------------------------------------------------------------------
# state


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": int(version), "state": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            n["kind"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _Logger:
    """log.jsonl lines, messages to ``log``, TensorBoard scalars and images (rank 0 only)."""

    def __init__(
        self,
        run_dir: Path,
        log: Callable[[str], None] | None,
        enabled: bool,
        tensorboard: bool,
        start_iteration: int,
    ) -> None:
        self.log = log
        self.enabled = enabled
        self.path = run_dir / LOG_FILE
        self.writer: Any = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.note(
                    "tensorboard is not installed: no TensorBoard logs (pip install tensorboard)"
                )
            else:
                self.writer = SummaryWriter(
                    log_dir=str(run_dir / TENSORBOARD_DIR), purge_step=start_iteration or None
                )

    def note(self, message: str) -> None:
        if self.enabled and self.log is not None:
            self.log(message)
        self.event("note", message=message)

    def event(self, kind: str, **values: Any) -> None:
        if not self.enabled:
            return
        record = {"event": kind, "time": time.time(), **values}
        with open(self.path, "a") as f:
            f.write(json.dumps(record, default=_json_default) + "\n")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def image(self, step: int, tag: str, rgb: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, rgb, step, dataformats="CHW")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --------------------------------------------------------------------------------------------
# the run


def train_run(
    store_url: Any,
    out_dir: str | os.PathLike[str],
    config: TrainConfig | str | os.PathLike[str] | None = None,
    resume: bool = False,
    log: Callable[[str], None] | None = print,
    *,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    callback: Callable[[int], None] | None = None,
) -> TrainRunResult:
    """Train on the store at ``store_url`` into the run directory ``out_dir``.

    ``config``: a :class:`TrainConfig`, a YAML/TOML file (over the store's training plan), or
    None (defaults over the plan; on resume, the run's saved config.yaml). ``overrides`` take
    precedence (dotted keys). ``resume=True`` continues from ``checkpoints/last.pt`` with an
    identical configuration. ``callback(iteration)`` runs after every iteration (it may raise
    KeyboardInterrupt, as Ctrl-C does: last.pt is saved and the exception propagates). Under
    torchrun (``WORLD_SIZE`` > 1) every rank calls this; rank 0 alone writes files.
    """
    from fastseg.store import Store

    store = Store.open(store_url)
    run_dir = Path(out_dir)
    cfg = resolve_config(config, store, run_dir, resume, overrides)
    train_cases, val_cases = split_cases(store, cfg)
    if cfg.data.patch_size is None:
        cfg = _with_patch(cfg, default_patch_size(store, train_cases, cfg.model.dimensions))
    patch = list(cfg.data.patch_size or [])
    device = _device(cfg.training.device)
    amp_dtype = _amp_dtype(cfg.training.amp, device)

    last_path = _run.checkpoint_path(run_dir, "last")
    if resume:
        if not last_path.is_file():
            raise InputError(f"{run_dir}: nothing to resume ({last_path} missing)")
        saved = run_dir / _run.CONFIG_FILE
        if saved.is_file():
            before = load_config(saved).to_dict()
            diff = _config_diff(before, cfg.to_dict())
            if diff:
                raise InputError(
                    f"{run_dir}: --resume needs the run's configuration unchanged; differs in "
                    + "; ".join(diff)
                )
    elif last_path.exists():  # run.json alone: a run that stopped before its first checkpoint
        raise InputError(
            f"{run_dir}: already holds a training run (pass --resume to continue it, or choose "
            "another --out)"
        )

    label_names = store.label_names
    num_classes = max(label_names) + 1 if label_names else 2
    classes = [c for c in sorted(label_names) if c != 0] or [1]
    check_stored_classes(store, [*train_cases, *val_cases], num_classes)
    in_channels = len(store.channel_names)

    from fastseg.nn import build_model, model_spec

    spec = {
        "name": "unet",
        "in_channels": in_channels,
        "num_classes": num_classes,
        **cfg.model.__dict__,
    }
    if spec["strides"] is None:
        del spec["strides"]
    torch.manual_seed(cfg.training.seed)
    np.random.seed(cfg.training.seed)  # noqa: NPY002
    random.seed(cfg.training.seed)
    model = build_model(spec)
    spec = model_spec(model)

    dist = setup(device.type)
    try:
        if dist.enabled and device.type == "cuda":
            device = torch.device("cuda", dist.local_rank)
            torch.cuda.set_device(device)
        return _train(
            store,
            run_dir,
            cfg,
            resume,
            log,
            progress,
            callback,
            dist,
            device,
            amp_dtype,
            model,
            spec,
            train_cases,
            val_cases,
            classes,
            patch,
        )
    finally:
        dist.close()


def _run_spec(
    store: Any,
    cfg: TrainConfig,
    spec: dict[str, Any],
    patch: list[int],
    train: list[str],
    validation: list[str],
) -> dict[str, Any]:
    import fastseg

    return {
        "model": spec,
        "patch_size": patch,
        "store": {
            "url": str(store.url),
            "modality": store.modality,
            "channel_names": store.channel_names,
            "label_names": {str(k): v for k, v in store.label_names.items()},
            "plan": store.attrs.get("plan"),
        },
        "inference": {
            "overlap": cfg.schedule.validation_overlap,
            "mirror_axes": cfg.mirror_axes,
        },
        "split": {
            "fold": cfg.split.fold,
            "folds": cfg.split.folds,
            "train": train,
            "validation": validation,
        },
        "config": cfg.to_dict(),
        "fastseg_version": getattr(fastseg, "__version__", None),
    }


def check_stored_classes(store: Any, cases: Sequence[str], num_classes: int) -> None:
    """Every label the store recorded for ``cases`` lies in ``[0, num_classes)``: checked once
    here, so the loss need not read each GPU batch's label range back (a device sync)."""
    for case_id in cases:
        foreground = store[case_id].attrs.get("foreground") or {}
        present = [int(c) for c in foreground.get("sampled", {})]
        bad = [c for c in present if not 0 < c < num_classes]
        if bad:
            raise InputError(
                f"{store.url}: case {case_id!r} has labels {bad}, outside the {num_classes} "
                f"classes of the store's label names {store.label_names}"
            )


def _loss(cfg: TrainConfig) -> nn.Module:
    from fastseg.nn import DiceCELoss, DiceLoss

    # check_labels=False: the cases' labels were checked against the classes at start-up
    base: nn.Module
    if cfg.loss.name == "dice":
        base = DiceLoss(include_background=cfg.loss.include_background, check_labels=False)
    else:
        base = DiceCELoss(include_background=cfg.loss.include_background, check_labels=False)
    if cfg.model.deep_supervision:
        from fastseg.nn import DeepSupervisionLoss

        return DeepSupervisionLoss(base)
    return base


def _train(
    store: Any,
    run_dir: Path,
    cfg: TrainConfig,
    resume: bool,
    log: Callable[[str], None] | None,
    progress: bool,
    callback: Callable[[int], None] | None,
    dist: DistContext,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    model: nn.Module,
    spec: dict[str, Any],
    train_cases: list[str],
    val_cases: list[str],
    classes: list[int],
    patch: list[int],
) -> TrainRunResult:
    main = dist.is_main
    say = log  # becomes tqdm.write while a progress bar shows (so messages do not break it)
    if main:
        (run_dir / _run.CHECKPOINTS).mkdir(parents=True, exist_ok=True)
        if not resume:
            write_text_atomic(run_dir / _run.CONFIG_FILE, cfg.to_yaml())
            _run.write_run_spec(run_dir, _run_spec(store, cfg, spec, patch, train_cases, val_cases))
    dist.barrier()

    model.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed patch size: pick the fastest kernels once
    loss_fn = _loss(cfg).to(device)
    base_lr = cfg.learning_rate
    obstacle = graph_obstacle(device, amp_dtype, dist.enabled)
    if cfg.training.cuda_graph == "on" and obstacle is not None:
        raise InputError(f"training.cuda_graph: on, but {obstacle}")
    use_graph = cfg.training.cuda_graph != "off" and obstacle is None
    optimizer = make_optimizer(
        model.parameters(),
        cfg.optim.optimizer,
        base_lr,
        cfg.optim.weight_decay,
        cfg.optim.momentum,
        capturable=use_graph,
    )
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)

    iteration, elapsed0 = 0, 0.0
    best_score: float | None = None
    best_iteration: int | None = None
    history: list[dict[str, Any]] = []
    last_validated = -1
    if resume:
        state = _run.load_checkpoint(_run.checkpoint_path(run_dir, "last"), map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        conform_optimizer(optimizer, use_graph)  # the checkpoint may come from the other mode
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        iteration = int(state["iteration"])
        elapsed0 = float(state["elapsed_s"])
        best_score = state.get("best_score")
        best_iteration = state.get("best_iteration")
        history = list(state.get("history", []))
        last_validated = int(state.get("last_validated", -1))
        _set_rng_state(state["rng"])

    logger = _Logger(run_dir, log, main, cfg.training.tensorboard, iteration)
    logger.event(
        "resume" if resume else "start",
        iteration=iteration,
        world_size=dist.world_size,
        device=str(device),
        amp=str(amp_dtype),
        train_cases=len(train_cases),
        validation_cases=len(val_cases),
        patch_size=patch,
        cuda_graph=use_graph,
    )

    train_model: nn.Module = model
    if dist.enabled:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    s = cfg.schedule
    budget, max_it = s.time_budget_s, s.max_iterations

    def progress_fraction(it: int, elapsed: float) -> float:
        fractions = []
        if budget is not None:
            fractions.append(elapsed / budget if budget > 0 else 1.0)
        if max_it is not None:
            fractions.append(it / max_it if max_it > 0 else 1.0)
        return max(fractions)

    def checkpoint_state(it: int, elapsed: float) -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "iteration": it,
            "elapsed_s": elapsed,
            "best_score": best_score,
            "best_iteration": best_iteration,
            "last_validated": last_validated,
            "history": history,
            "rng": _rng_state(),
            "model_spec": spec,
            "config": cfg.to_dict(),
        }

    def save_last(it: int, elapsed: float) -> None:
        if main:
            state = checkpoint_state(it, elapsed)
            _run.save_checkpoint(_run.checkpoint_path(run_dir, "last"), state)
            if not val_cases:
                _run.save_checkpoint(_run.checkpoint_path(run_dir, "best"), state)

    def validate(it: int, elapsed: float) -> None:
        nonlocal best_score, best_iteration, last_validated
        last_validated = it
        if main:
            model.eval()
            preds = [
                predict_case(
                    model,
                    store,
                    c,
                    patch,
                    s.validation_overlap,
                    device,
                    amp_dtype is not None,
                    keep_image=i < OVERLAY_CASES,
                    batch_size=cfg.data.batch_size,
                )
                for i, c in enumerate(val_cases)
            ]
            result = summarize(metric_rows(preds, classes), classes)
            score = result.mean_dice
            improved = best_score is None or (math.isfinite(score) and score > best_score)
            if improved:
                best_score, best_iteration = score, it
            record = {
                "iteration": it,
                "elapsed_s": elapsed,
                "mean_dice": score,
                "class_dice": {str(c): v for c, v in result.class_dice.items()},
            }
            history.append(record)
            logger.event("validation", **record, best=improved)
            logger.scalars(it, {"val/mean_dice": score})
            logger.scalars(it, {f"val/dice_{c}": v for c, v in result.class_dice.items()})
            for p in preds[:OVERLAY_CASES]:
                if p.image is not None:
                    logger.image(it, f"val/{p.case_id}", overlay(p.image, p.labels, p.reference))
            if say is not None:
                per_class = "  ".join(f"{c}: {v:.3f}" for c, v in result.class_dice.items())
                say(
                    f"validation  it {it}  mean Dice {score:.4f}  ({per_class})"
                    + ("  new best" if improved else f"  best {best_score:.4f} @ {best_iteration}")
                )
            state = checkpoint_state(it, elapsed)
            _run.save_checkpoint(_run.checkpoint_path(run_dir, "last"), state)
            if improved:
                _run.save_checkpoint(_run.checkpoint_path(run_dir, "best"), state)
            model.train()
        dist.barrier()

    augmentation = training_augmentation(cfg)
    augment_device = cfg.data.augment_device
    if augment_device == "auto":
        augment_device = "cuda" if device.type == "cuda" else "cpu"

    def eager_step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with (
            torch.autocast(device.type, dtype=amp_dtype)
            if amp_dtype is not None
            else contextlib.nullcontext()
        ):
            loss = loss_fn(train_model(x), y)
        scaler.scale(loss).backward()
        if cfg.optim.grad_clip is not None:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    losses: list[float] = []
    pending: list[torch.Tensor] = []

    def flush() -> None:
        if pending:
            losses.extend(torch.stack(pending).float().cpu().tolist())
            pending.clear()

    lrs: list[float] = []
    stopped_by = "iterations"
    t0 = time.perf_counter()
    elapsed = elapsed0
    bar: Any = None
    loader = open_loader(
        store,
        train_cases,
        patch,
        batch_size=cfg.data.batch_size,
        oversample_foreground=cfg.data.oversample_foreground,
        augmentation=augmentation,
        augment_device=augment_device,
        workers=cfg.data.workers,
        prefetch=cfg.data.prefetch,
        seed=cfg.training.seed,
        device=device,
        rank=dist.rank,
        world_size=dist.world_size,
        start=iteration,
        note=logger.note,
        kind=cfg.data.loader,
    )
    try:
        with loader:
            if progress and main:
                from tqdm.auto import tqdm

                bar = tqdm(
                    total=max_it, initial=iteration, unit="it", desc="train", dynamic_ncols=True
                )
                if log is print:
                    say = bar.write
            batches = iter(loader)
            graphed = (
                GraphedStep(train_model, loss_fn, optimizer, amp_dtype, cfg.optim.grad_clip)
                if use_graph
                else None
            )
            last_log = last_ckpt = time.perf_counter()
            log_it = iteration
            train_model.train()
            while True:
                elapsed = elapsed0 + time.perf_counter() - t0
                frac = progress_fraction(iteration, elapsed)
                stop = frac >= 1.0
                if budget is not None:  # clocks differ between ranks: stop together
                    stop = dist.any_flag(stop, device)
                if stop:
                    stopped_by = (
                        "iterations" if max_it is not None and iteration >= max_it else "time"
                    )
                    break
                lr = learning_rate(
                    base_lr, iteration, frac, cfg.optim.warmup_iterations, cfg.optim.poly_power
                )
                set_learning_rate(optimizer, lr)
                batch = next(batches)
                x = batch.image.to(device, non_blocking=True)
                y = batch.label.to(device, non_blocking=True)
                loss = None
                if graphed is not None:
                    try:
                        loss = graphed(x, y)
                    except GraphCaptureError as exc:
                        if cfg.training.cuda_graph == "on":
                            raise InputError(
                                f"training.cuda_graph: on, but the step could not be captured: "
                                f"{exc}"
                            ) from exc
                        graphed = None
                        conform_optimizer(optimizer, False)
                        logger.note(f"CUDA graph capture failed, training eagerly: {exc}")
                if loss is None:
                    loss = eager_step(x, y)
                iteration += 1
                pending.append(loss)  # no device sync per iteration
                lrs.append(lr)
                if bar is not None:
                    bar.update(1)
                if callback is not None:
                    callback(iteration)
                now = time.perf_counter()
                elapsed = elapsed0 + now - t0
                log_now = main and now - last_log >= cfg.training.log_every_s
                if log_now or len(pending) >= 100:
                    flush()
                if log_now:
                    rate = (iteration - log_it) / max(now - last_log, 1e-9)
                    recent = float(np.mean(losses[-(iteration - log_it) :]))
                    frac = progress_fraction(iteration, elapsed)
                    left = (1.0 - frac) * elapsed / frac if frac > 0 else math.inf
                    logger.event(
                        "train",
                        iteration=iteration,
                        loss=recent,
                        lr=lr,
                        it_per_s=rate,
                        elapsed_s=elapsed,
                    )
                    logger.scalars(iteration, {"train/loss": recent, "train/lr": lr})
                    if bar is not None:
                        postfix = {"loss": f"{recent:.4f}", "lr": f"{lr:.2e}"}
                        if budget is not None:
                            postfix["left"] = _clock(max(0.0, budget - elapsed))
                        bar.set_postfix(postfix, refresh=False)
                    if say is not None and bar is None:
                        say(
                            f"train  it {iteration:6d}  loss {recent:.4f}  {rate:.2f} it/s  "
                            f"lr {lr:.2e}  elapsed {_clock(elapsed)}  left ~{_clock(left)}"
                        )
                    last_log, log_it = now, iteration
                if val_cases and iteration % s.validate_every == 0:
                    validate(iteration, elapsed)
                    last_ckpt = time.perf_counter()
                elif now - last_ckpt >= s.checkpoint_every_s:
                    save_last(iteration, elapsed)
                    last_ckpt = time.perf_counter()
            flush()
            stats = loader.stats() if hasattr(loader, "stats") else {}
            logger.event(
                "loader", **{k: v for k, v in stats.items() if isinstance(v, (int, float))}
            )
            wait = stats.get("wait_fraction")
            if say is not None and main and isinstance(wait, float) and math.isfinite(wait):
                say(f"loader: the training loop waited for data {100 * wait:.0f}% of the time")
    except KeyboardInterrupt:
        flush()
        elapsed = elapsed0 + time.perf_counter() - t0
        if bar is not None:
            bar.close()
        save_last(iteration, elapsed)
        logger.event("interrupted", iteration=iteration, elapsed_s=elapsed)
        if main and say is not None:
            say(f"interrupted at iteration {iteration}: saved {run_dir / 'checkpoints/last.pt'}")
        logger.close()
        raise
    if bar is not None:
        bar.close()

    elapsed = elapsed0 + time.perf_counter() - t0
    if val_cases and last_validated != iteration:
        validate(iteration, elapsed)
    save_last(iteration, elapsed)
    dist.barrier()

    final: ValidationResult | None = None
    if main and val_cases:
        final = _finish(store, run_dir, cfg, model, device, amp_dtype, val_cases, classes, patch)
        logger.event("final_validation", mean_dice=final.mean_dice, class_dice=final.class_dice)
        if say is not None:
            say(f"best model (iteration {best_iteration}): mean Dice {final.mean_dice:.4f}")
    logger.event("end", iteration=iteration, elapsed_s=elapsed, stopped_by=stopped_by)
    logger.close()
    dist.barrier()
    model.eval()
    return TrainRunResult(
        run_dir,
        iteration,
        elapsed,
        stopped_by,
        best_score,
        best_iteration,
        history,
        lrs,
        losses,
        final,
        model,
    )


def _finish(
    store: Any,
    run_dir: Path,
    cfg: TrainConfig,
    model: nn.Module,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    val_cases: list[str],
    classes: list[int],
    patch: list[int],
) -> ValidationResult:
    """Best model → validation predictions → validation.csv and postprocessing.json."""
    from fastseg.metrics import rows_to_csv
    from fastseg.postprocess import save_plan, select_postprocessing

    state = _run.load_checkpoint(_run.checkpoint_path(run_dir, "best"), map_location=device)
    model = copy.deepcopy(model)  # the caller's model keeps the final weights
    model.load_state_dict(state["model"])
    model.eval()
    sizes = [math.prod(store[c].shape) * (len(classes) + 1) * 4 for c in val_cases]
    with_probs = sum(sizes) <= PROBABILITY_BYTES_FOR_POSTPROCESSING
    preds: list[CasePrediction] = [
        predict_case(
            model,
            store,
            c,
            patch,
            cfg.schedule.validation_overlap,
            device,
            amp_dtype is not None,
            probabilities=with_probs,
            batch_size=cfg.data.batch_size,
        )
        for c in val_cases
    ]
    rows = metric_rows(preds, classes)
    write_text_atomic(run_dir / _run.VALIDATION_FILE, rows_to_csv(rows))
    plan = select_postprocessing(
        [p.probabilities if p.probabilities is not None else p.labels for p in preds],
        [p.reference for p in preds],
        [p.spacing for p in preds],
        classes=classes,
    )
    save_plan(plan, run_dir / _run.POSTPROCESSING_FILE)
    return summarize(rows, classes)
