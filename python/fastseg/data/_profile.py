"""The loader profiler: is training held up by the data loader or by the model?

``profile(store)`` runs the configured :class:`~fastseg.data.PatchLoader` and model three ways —
the loader alone (batches/s with no training), the training step alone (synthetic batches
already on the device) and both together (the loader's workers feeding the training loop) —
and reports the time per batch of every stage, the fraction of the concurrent run the device
spent waiting for data, and a diagnosis with advice computed from those figures. Batches are
``(N, C, z, y, x)``; times are seconds (milliseconds in the text report).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from fastseg.errors import InputError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from fastseg.train import TrainConfig

BALANCE = 0.10
"""Loader and step rates within this fraction of each other are reported as balanced."""
LAUNCH_BOUND_HOST = 0.8
BUSY_PCT = 80.0
"""A CUDA step whose host part (queueing its kernels) is at least ``LAUNCH_BOUND_HOST`` of it and
whose GPU computes less than ``BUSY_PCT`` % of it (NVML) is launch-bound."""
HOT_CELSIUS = 85.0
"""A GPU at or above this temperature gets a warning."""
STAGES = ("read_s", "assemble_s", "augment_s", "copy_s")
"""Per-batch loader timings (``Batch.timings`` keys) the report averages."""


@dataclass
class ProfileReport:
    """What :func:`profile` measured, and its diagnosis.

    ``stages_s``: seconds per batch of ``read`` (chunk read + decompression), ``assemble``
    (patch assembly/padding), ``augment``, ``copy`` (host→device), all from the loader-alone
    run, and ``step`` (forward + backward + optimizer) and ``step_host`` (the host's part of it:
    queueing the kernels on a GPU, all of it on the CPU) from the step-alone run.
    ``loader_batches_per_s`` / ``step_batches_per_s``: the rates of those two runs;
    ``concurrent``: the run with both (``batches``, ``wall_s``, ``wait_s``,
    ``batches_per_s``); ``device_wait_fraction`` = ``wait_s / wall_s`` there. ``verdict`` is
    ``"loader-bound"``, ``"compute-bound"``, ``"launch-bound"`` (a GPU that idles between the
    kernels Python launches although the data is ready) or ``"balanced"``; ``advice`` sentences
    follow from the figures. ``gpu``: NVML samples of the run with both (``None`` off CUDA or
    without nvidia-ml-py, ``notes`` says which), with ``step_utilization_mean_pct`` of the
    step-alone run.
    """

    store: str
    device: str
    cpu_count: int
    settings: dict[str, Any]
    stages_s: dict[str, float]
    loader_batches_per_s: float
    step_batches_per_s: float
    concurrent: dict[str, float]
    device_wait_fraction: float
    verdict: str
    advice: list[str]
    workers_needed: int
    gpu: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the schema of ``fastseg profile --json``)."""
        return asdict(self)

    def summary(self) -> str:
        """The text report: settings, a table of ms/batch per stage, rates, diagnosis."""
        s = self.settings
        where = f"loader ({s['workers']} worker{'s' if s['workers'] != 1 else ''})"
        if s["workers"] == 0:
            where = "loader (in the training process)"
        aug_where = where if s["augment_device"] == "cpu" else f"{self.device} (training process)"
        if not s["augmentation"]:
            aug_where = "(no augmentation)"
        rows = [
            ("chunk read + decompression", self.stages_s["read"], where),
            ("patch assembly", self.stages_s["assemble"], where),
            ("augmentation", self.stages_s["augment"], aug_where),
            ("host→device copy", self.stages_s["copy"], "training process"),
            ("training step", self.stages_s["step"], self.device),
        ]
        if self.device.startswith("cuda"):
            rows.append(("  host part (queueing)", self.stages_s["step_host"], "training process"))
        patch = "x".join(str(v) for v in s["patch_size"])
        lines = [
            f"fastseg profile {self.store}",
            f"device {self.device}, {self.cpu_count} CPU cores; patch {patch} (z, y, x), "
            f"batch {s['batch_size']}, workers {s['workers']}, augmentation "
            f"{s['augmentation'] or 'none'} on {s['augment_device']}, "
            f"model {s['model']}, store codec {s['codec']}",
            "",
            f"{'stage':<28}{'ms/batch':>10}  runs in",
        ]
        lines += [f"{name:<28}{1000 * sec:>10.1f}  {loc}" for name, sec, loc in rows]
        c = self.concurrent
        lines += [
            "",
            f"loader alone        {self.loader_batches_per_s:8.2f} batches/s",
            f"training step alone {self.step_batches_per_s:8.2f} batches/s",
            f"together            {c['batches_per_s']:8.2f} batches/s over {int(c['batches'])} "
            f"batches; the device waits for data {100 * self.device_wait_fraction:.0f}% of "
            "the time",
        ]
        if self.gpu is not None:
            g = self.gpu
            alone = g.get("step_utilization_mean_pct", math.nan)
            alone_text = "" if math.isnan(alone) else f"; the step alone {alone:.0f}%"
            lines.append(
                f"GPU {g['name']}: utilisation mean {g['utilization_mean_pct']:.0f}% "
                f"(max {g['utilization_max_pct']:.0f}%{alone_text}), memory max "
                f"{g['memory_max_mib']:.0f} MiB, temperature max {g['temperature_max_c']:.0f} °C"
            )
        lines += ["", f"verdict: {self.verdict}"]
        lines += [f"  {a}" for a in self.advice]
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# ---------------------------------------------------------------- configuration


def _load_config(store: Any, config: Any) -> TrainConfig:
    """A :class:`fastseg.train.TrainConfig` as given, else ``load_config`` of a file path or of
    overrides (nested or dotted keys) over the store's training plan."""
    from fastseg.train import TrainConfig, load_config

    if isinstance(config, TrainConfig):
        return config
    if config is None or isinstance(config, str | os.PathLike):
        return load_config(path=config, store=store)
    if isinstance(config, Mapping):
        return load_config(store=store, overrides=config)
    raise InputError(
        f"config: expected a config file, a mapping of overrides or a TrainConfig, got "
        f"{type(config).__name__}"
    )


def _resolve_device(device: Any, configured: str) -> torch.device:
    import torch

    name = str(device if device is not None else configured)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"device: expected auto, cpu, cuda or cuda:N, got {name!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device: {name!r} asked for, but torch sees no CUDA device")
    return dev


def _amp_dtype(mode: str, dev: torch.device) -> torch.dtype | None:
    """The trainer's rule: ``auto`` is bf16 (fp16 where unsupported) on CUDA and off on CPU."""
    import torch

    if mode == "off" or (mode == "auto" and dev.type != "cuda"):
        return None
    if mode == "fp16" and dev.type != "cuda":
        raise InputError("training.amp: fp16 needs a CUDA device (use bf16 or off on CPU)")
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if mode == "bf16" else torch.float16


def _describe_augmentation(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return "+".join(str(step.get("name", "?")) for step in value)


def _codec(store: Any) -> str:
    """The image codec from the store's ``storage`` attributes, e.g. ``"zstd level 5"``."""
    storage = store.attrs.get("storage") or {}
    cname, level = storage.get("cname"), storage.get("clevel")
    if not cname:
        return "unknown codec"
    return str(cname) if level is None else f"{cname} level {int(level)}"


# ---------------------------------------------------------------- the training step


class _Step:
    """Forward + backward + optimizer step of ``model`` with ``loss`` on one batch, as the
    trainer runs it (AdamW or SGD, AMP, gradient clipping, replayed as a CUDA graph when
    ``training.cuda_graph`` allows it); on CUDA it waits for the device, so that the time of a
    step is the device's. ``host_s`` sums the seconds the host spent in the steps before that
    wait (queueing the kernels; the whole step on the CPU), ``calls`` counts them."""

    def __init__(
        self, model: nn.Module, loss: Callable[..., Any], cfg: TrainConfig, dev: torch.device
    ) -> None:
        import torch

        from fastseg.train._graph_step import GraphedStep, graph_obstacle
        from fastseg.train._optim import make_optimizer

        self.model = model.to(dev).train()
        self.loss = loss
        self.device = dev
        params = [p for p in model.parameters() if p.requires_grad]
        o = cfg.optim
        self.amp_dtype = _amp_dtype(cfg.training.amp, dev)
        graph = (
            cfg.training.cuda_graph != "off"
            and bool(params)
            and graph_obstacle(dev, self.amp_dtype, False) is None
        )
        self.optimizer = (
            make_optimizer(
                params, o.optimizer, cfg.learning_rate, o.weight_decay, o.momentum, capturable=graph
            )
            if params
            else None
        )
        self.clip = o.grad_clip
        self.scaler = torch.amp.GradScaler(dev.type, enabled=self.amp_dtype == torch.float16)
        self.graphed = (
            GraphedStep(self.model, loss, self.optimizer, self.amp_dtype, self.clip)
            if graph and self.optimizer is not None
            else None
        )
        self.host_s = 0.0
        self.calls = 0

    @property
    def amp(self) -> str:
        return "off" if self.amp_dtype is None else str(self.amp_dtype).removeprefix("torch.")

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> None:
        import torch

        from fastseg.train._graph_step import GraphCaptureError
        from fastseg.train._optim import conform_optimizer

        start = time.perf_counter()
        self.calls += 1
        image = image.to(self.device, non_blocking=True)
        label = label.to(self.device, non_blocking=True)
        if self.graphed is not None:
            try:
                self.graphed(image, label)
                self.host_s += time.perf_counter() - start
                torch.cuda.synchronize(self.device)
                return
            except GraphCaptureError:  # a loss that syncs with the host: eager steps
                self.graphed = None
                if self.optimizer is not None:
                    conform_optimizer(self.optimizer, False)
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None
        ):
            value = self.loss(self.model(image), label)
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        if isinstance(value, torch.Tensor) and value.requires_grad:
            self.scaler.scale(value).backward()
        if self.optimizer is not None:
            if self.clip is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(self.clip))
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.host_s += time.perf_counter() - start
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _build_model(cfg: TrainConfig, in_channels: int, num_classes: int) -> nn.Module:
    from fastseg.nn import build_model

    spec = dict(asdict(cfg.model), name="unet", in_channels=in_channels, num_classes=num_classes)
    return build_model(spec)


def _build_loss(cfg: TrainConfig) -> Callable[..., Any]:
    """The trainer's loss: Dice or Dice+CE, through DeepSupervisionLoss (which passes a single
    output straight through). Labels unchecked, as in the trainer (it checks the stored classes
    once at start-up; a check per step would keep the step out of a CUDA graph)."""
    from fastseg.nn import DeepSupervisionLoss, DiceCELoss, DiceLoss

    background = cfg.loss.include_background
    base: nn.Module
    if cfg.loss.name == "dice":
        base = DiceLoss(include_background=background, check_labels=False)
    else:
        base = DiceCELoss(include_background=background, check_labels=False)
    return DeepSupervisionLoss(base)


def _describe_model(net: nn.Module) -> str:
    widths = getattr(net, "widths", None)
    dims = getattr(net, "dimensions", None)
    name = type(net).__name__ + (f" {dims}D" if dims else "")
    return name + (f" widths {list(widths)}" if isinstance(widths, Sequence) else "")


# ---------------------------------------------------------------- GPU sampling


class _NvmlSampler:
    """Samples utilisation, memory and temperature of one GPU through NVML in a thread."""

    def __init__(self, index: int, interval_s: float = 0.2) -> None:
        import pynvml  # nvidia-ml-py, optional

        self._nvml = pynvml
        pynvml.nvmlInit()
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.name = str(pynvml.nvmlDeviceGetName(self._handle))
        self._interval = interval_s
        self._stop = threading.Event()
        self._samples: list[tuple[float, float, float, float]] = []  # time, util, MiB, °C
        self._thread = threading.Thread(target=self._run, name="fastseg-nvml", daemon=True)

    def _run(self) -> None:
        nv = self._nvml
        while not self._stop.is_set():
            try:
                util = nv.nvmlDeviceGetUtilizationRates(self._handle).gpu
            except nv.NVMLError:
                break
            # memory and temperature are extras: a card or sandbox without them reads NaN
            mem = temp = math.nan
            try:
                mem = nv.nvmlDeviceGetMemoryInfo(self._handle).used / 2**20
            except nv.NVMLError:
                pass
            try:
                temp = nv.nvmlDeviceGetTemperature(self._handle, nv.NVML_TEMPERATURE_GPU)
            except nv.NVMLError:
                pass
            self._samples.append((time.monotonic(), float(util), float(mem), float(temp)))
            self._stop.wait(self._interval)

    def __enter__(self) -> _NvmlSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._nvml.nvmlShutdown()

    def summary(
        self, since: float | None = None, until: float | None = None
    ) -> dict[str, Any] | None:
        """Mean/max of the samples (those taken at ``since <= time.monotonic() <= until`` when
        given); None without any."""
        samples = [
            x
            for x in self._samples
            if (since is None or x[0] >= since) and (until is None or x[0] <= until)
        ]
        if not samples:
            return None
        _, util, mem, temp = zip(*samples, strict=True)
        return {
            "name": self.name,
            "samples": len(util),
            "utilization_mean_pct": sum(util) / len(util),
            "utilization_max_pct": max(util),
            "memory_max_mib": _max_or_nan(mem),
            "temperature_max_c": _max_or_nan(temp),
        }


def _max_or_nan(values: Sequence[float]) -> float:
    """The largest of the values that are not NaN; NaN when none is."""
    known = [v for v in values if not math.isnan(v)]
    return max(known) if known else math.nan


def _gpu_warnings(gpu: Mapping[str, Any] | None) -> list[str]:
    """A warning when the card ran at or above :data:`HOT_CELSIUS`."""
    if gpu is None or not gpu["temperature_max_c"] >= HOT_CELSIUS:  # NaN: not known
        return []
    return [
        f"the GPU reached {gpu['temperature_max_c']:.0f} °C (≥ {HOT_CELSIUS:.0f} °C): it may be "
        "throttling; check its cooling and airflow"
    ]


# ---------------------------------------------------------------- measurement


@dataclass
class _Run:
    batches: int = 0
    wall_s: float = 0.0
    wait_s: float = 0.0
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, timings: Mapping[str, float]) -> None:
        for key in STAGES:
            self.timings[key] += float(timings.get(key, 0.0))


def _enough(n: int, start: float, budget: float, batches: int | None) -> bool:
    """Stop after ``batches`` measured batches, or after ``budget`` seconds and >= 2 batches."""
    if batches is not None and n >= batches:
        return True
    return n >= 2 and time.perf_counter() - start >= budget


def _run_loader(
    make: Callable[[], Any], step: _Step | None, budget: float, batches: int | None
) -> _Run:
    """Iterate a fresh loader (feeding ``step`` when given); the first batch (worker start-up,
    cold caches) is left out of every figure."""
    run = _Run()
    with make() as loader:
        it: Iterator[Any] = iter(loader)
        first = next(it)
        if step is not None:
            step(first.image, first.label)
        start = time.perf_counter()
        while not _enough(run.batches, start, budget, batches):
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            run.wait_s += time.perf_counter() - t0
            if step is not None:
                step(batch.image, batch.label)
            run.add(batch.timings)
            run.batches += 1
        run.wall_s = time.perf_counter() - start
    return run


@dataclass
class _StepRun:
    step_s: float
    """Seconds per training step."""
    host_s: float
    """The host's part of them (see :class:`_Step`)."""
    started: float
    """``time.monotonic()`` when the measured steps began (after the warm-up)."""


def _run_step(
    step: _Step, shape: tuple[int, ...], classes: int, budget: float, batches: int | None
) -> _StepRun:
    """Time training steps on a synthetic batch already on the device."""
    import torch

    gen = torch.Generator().manual_seed(0)
    image = torch.randn(shape, generator=gen).to(step.device)
    label = torch.randint(0, classes, (shape[0], *shape[2:]), generator=gen).to(step.device)
    from fastseg.train._graph_step import WARMUP_STEPS

    # warm-up: allocator, cuDNN autotuning, and a CUDA graph's eager steps and capture
    for _ in range(1 if step.graphed is None else WARMUP_STEPS + 2):
        step(image, label)
    step.host_s, step.calls = 0.0, 0
    started = time.monotonic()
    n, start = 0, time.perf_counter()
    while not _enough(n, start, budget, batches):
        step(image, label)
        n += 1
    return _StepRun((time.perf_counter() - start) / n, step.host_s / step.calls, started)


def _diagnose(
    loader_rate: float,
    step_s: float,
    wait_fraction: float,
    stages: Mapping[str, float],
    settings: Mapping[str, Any],
    device: str,
    cores: int,
    *,
    step_utilization: float | None = None,
) -> tuple[str, list[str], int]:
    """Verdict, advice and the worker count the step rate needs (see :func:`profile`).
    ``stages["step_host"]``: the host's seconds per step (queueing kernels);
    ``step_utilization``: the GPU's NVML utilisation (%) while the step ran alone, None when
    not sampled."""
    step_rate = 1.0 / step_s
    ratio = loader_rate / step_rate
    cpu_aug = settings["augment_device"] == "cpu" and bool(settings["augmentation"])
    worker_s = stages["read"] + stages["assemble"] + (stages["augment"] if cpu_aug else 0.0)
    needed = max(1, math.ceil(worker_s / step_s))
    workers = int(settings["workers"])
    ms = lambda s: f"{1000 * s:.0f} ms/batch"  # noqa: E731
    cname, level = settings["codec"].partition(" level ")[::2]
    read = f"reads cost {ms(stages['read'])} with {settings['codec']}"
    if cname in ("zstd", "zlib", "lz4hc") or (cname == "blosclz" and level not in ("", "1")):
        read += " — lz4 would roughly halve that (convert with StorageOptions(cname='lz4'))"
    if abs(ratio - 1.0) <= BALANCE:
        return (
            "balanced",
            [
                f"balanced: the loader ({loader_rate:.2f} batches/s) and the training step "
                f"({step_rate:.2f} batches/s) are within {100 * BALANCE:.0f}% of each other; "
                f"the device waits {100 * wait_fraction:.0f}% of the time",
                f"use ≥{needed + 1} workers (this machine has {cores} cores) to give the "
                "loader headroom",
            ],
            needed,
        )
    if ratio > 1.0:
        host_s = stages.get("step_host", 0.0)
        host_heavy = device == "cuda" and host_s >= LAUNCH_BOUND_HOST * step_s
        if host_heavy and step_utilization is not None and step_utilization < BUSY_PCT:
            return (
                "launch-bound",
                _launch_advice(ratio, step_s, host_s, wait_fraction, step_utilization, settings),
                needed,
            )
        advice = [
            f"compute-bound: the device waits for data {100 * wait_fraction:.0f}% of the time, "
            f"the loader could feed {ratio:.1f}x more: nothing to fix on the data side",
        ]
        if host_heavy and step_utilization is None:
            advice.append(
                f"the host needs {ms(host_s)} of the {ms(step_s)} step to queue its kernels: "
                "if the GPU's utilisation is low (pip install nvidia-ml-py to have it "
                "measured), the step is launch-bound, not compute-bound; "
                + _launch_remedies(settings)
            )
        if device == "cpu":
            ideas = ["a GPU (training runs on the CPU)", "a smaller network or patch"]
        else:
            ideas = ["AMP (training.amp)"] if settings["amp"] == "off" else []
            ideas += ["a smaller network or patch"]
        advice.append("consider " + ", ".join(ideas))
        return "compute-bound", advice, needed
    advice = [
        f"loader-bound: the device waits {100 * wait_fraction:.0f}% of the time; the loader "
        f"gives {loader_rate:.2f} batches/s, the training step alone {step_rate:.2f}",
    ]
    more = f"use ≥{needed} workers (this machine has {cores} cores)"
    if needed > cores:
        more += f"; {needed} workers is more than the cores, so lighten the loader's work"
    heaviest = max(("read", "assemble", "augment"), key=lambda k: stages[k])
    if cpu_aug and heaviest == "augment":
        gpu_hint = ", when training on one" if device == "cpu" else ""
        w = f"{workers} worker{'s' if workers != 1 else ''}" if workers else "no workers"
        advice.append(
            f"augmentation on CPU costs {ms(stages['augment'])} with {w}; move it to the GPU "
            f"(augment_device: cuda{gpu_hint}) or {more}"
        )
    else:
        advice.append(more)
    if workers == 0:
        advice.append(
            "workers: 0 reads and augments in the training process, so loading and training "
            "never overlap"
        )
    advice.append(read)
    return "loader-bound", advice, needed


def _launch_remedies(settings: Mapping[str, Any]) -> str:
    """What gives a launch-bound step's GPU more to do per host-side second."""
    ideas = []
    if not settings.get("cuda_graph"):
        if settings["amp"] == "float16":
            ideas.append(
                "bf16 AMP (training.amp: bf16) with training.cuda_graph: auto, so that the step "
                "is replayed as one CUDA graph (fp16 needs a GradScaler, which cannot be)"
            )
        else:
            ideas.append(
                "training.cuda_graph: auto (the step replayed as one CUDA graph instead of "
                "thousands of launches from Python)"
            )
    ideas.append("more work per kernel: a larger batch (data.batch_size) or patch")
    return "use " + "; or ".join(ideas)


def _launch_advice(
    ratio: float,
    step_s: float,
    host_s: float,
    wait_fraction: float,
    utilization: float,
    settings: Mapping[str, Any],
) -> list[str]:
    """The advice of the launch-bound verdict (see :func:`_diagnose`)."""
    return [
        f"launch-bound: the data is ready (the device waits for it {100 * wait_fraction:.0f}% "
        f"of the time, the loader could feed {ratio:.1f}x more), but the GPU computes only "
        f"{utilization:.0f}% of the training step: the host needs {1000 * host_s:.0f} ms to "
        f"queue the kernels of a {1000 * step_s:.0f} ms step, so the GPU idles between short "
        "kernels",
        _launch_remedies(settings),
    ]


def profile(
    store_url: str | os.PathLike[str],
    config: Any = None,
    seconds: float = 20.0,
    batches: int | None = None,
    device: Any = None,
    *,
    model: nn.Module | None = None,
    loss: Callable[..., Any] | None = None,
) -> ProfileReport:
    """Profile the configured loader and training step on ``store_url``.

    ``config``: a training config file (YAML/TOML), a nested mapping of overrides, a
    :class:`fastseg.train.TrainConfig`, or None (defaults and the store's plan). ``seconds``
    is the total measuring time, split over three runs: the loader alone (40%), the training
    step alone on a synthetic batch (20%) and the two together (40%); ``batches``, when given,
    caps each run at that many measured batches. Every run measures at least 2 batches, after
    one unmeasured batch (worker start-up, cold caches, allocator warm-up), so a slow step can
    take the profile past ``seconds``. ``device`` overrides ``training.device``. ``model`` / ``loss`` replace
    the configured network (``fastseg.nn.build_model``) and loss.

    The verdict compares the loader-alone rate with the step-alone rate: loader-bound when the
    loader is slower by more than 10%, compute-bound when faster by more than 10%, balanced
    otherwise. A compute-bound CUDA step is launch-bound instead when the host spends at least
    80% of it queueing kernels and NVML saw the GPU computing less than 80% of it. The workers
    needed are ``ceil(worker-side seconds per batch / step seconds)``.
    """
    from fastseg.data import PatchLoader
    from fastseg.store import Store

    if not (isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds > 0):
        raise InputError(f"seconds: expected a positive number, got {seconds!r}")
    if batches is not None and (
        isinstance(batches, bool) or not isinstance(batches, int) or batches < 1
    ):
        raise InputError(f"batches: expected a positive integer, got {batches!r}")
    store = Store.open(store_url)
    cfg = _load_config(store, config)
    d = cfg.data
    dev = _resolve_device(device, cfg.training.device)
    from fastseg.train._batches import training_augmentation

    augmentation = training_augmentation(cfg)
    augment_device = d.augment_device
    if augment_device == "auto":
        augment_device = "cuda" if dev.type == "cuda" else "cpu"
    if d.patch_size is not None:
        patch = list(d.patch_size)
    else:
        from fastseg.train._runner import default_patch_size

        patch = default_patch_size(store, store.cases, cfg.model.dimensions)
    in_channels = len(store.channel_names)
    label_names = store.label_names
    classes = max(label_names) + 1 if label_names else 2  # as the trainer counts them
    net = model if model is not None else _build_model(cfg, in_channels, classes)
    if loss is None:
        from fastseg.train._runner import check_stored_classes

        check_stored_classes(store, store.cases, classes)  # the loss checks no labels
    step = _Step(net, loss if loss is not None else _build_loss(cfg), cfg, dev)
    settings: dict[str, Any] = {
        "patch_size": patch,
        "batch_size": d.batch_size,
        "workers": d.workers,
        "prefetch": d.prefetch,
        "augmentation": _describe_augmentation(None if augmentation is None else d.augmentation),
        "augment_device": augment_device,
        "model": _describe_model(net),
        "parameters": sum(p.numel() for p in net.parameters()),
        "amp": step.amp,
        "cuda_graph": step.graphed is not None,
        "codec": _codec(store),
        "seconds": float(seconds),
        "batches": batches,
    }

    def make() -> Any:
        return PatchLoader(
            store,
            patch_size=patch,
            batch_size=d.batch_size,
            oversample_foreground=d.oversample_foreground,
            augmentation=augmentation,
            augment_device=augment_device,
            workers=d.workers,
            prefetch=d.prefetch,
            seed=cfg.training.seed,
            device=dev,
        )

    notes: list[str] = []
    if d.loader != "native":
        notes.append(f"data.loader is {d.loader!r}: these figures are the native PatchLoader's")
    sampler: Any = None
    if dev.type == "cuda":
        try:
            sampler = _NvmlSampler(dev.index if dev.index is not None else 0)
        except ImportError:
            notes.append(
                "no GPU utilisation/memory/temperature samples: pynvml is not installed "
                "(pip install nvidia-ml-py)"
            )
        except Exception as exc:  # pynvml.NVMLError: no driver or no permission
            notes.append(f"no GPU utilisation/memory/temperature samples: NVML failed ({exc})")
    alone = _run_loader(make, None, 0.4 * seconds, batches)
    shape = (d.batch_size, in_channels, *patch)
    with sampler if sampler is not None else contextlib.nullcontext():
        steps = _run_step(step, shape, classes, 0.2 * seconds, batches)
        together_started = time.monotonic()
        together = _run_loader(make, step, 0.4 * seconds, batches)
    gpu = step_utilization = None
    if sampler is not None:
        gpu = sampler.summary(since=together_started)
        alone_gpu = sampler.summary(since=steps.started, until=together_started)
        if alone_gpu is not None:
            step_utilization = alone_gpu["utilization_mean_pct"]
        if gpu is not None:
            gpu["step_utilization_mean_pct"] = (
                math.nan if step_utilization is None else step_utilization
            )
    step_s = steps.step_s
    n = max(alone.batches, 1)
    stages = {k.removesuffix("_s"): v / n for k, v in alone.timings.items()}
    stages["step"] = step_s
    stages["step_host"] = steps.host_s
    loader_rate = alone.batches / alone.wall_s if alone.wall_s > 0 else math.inf
    wait_fraction = together.wait_s / together.wall_s if together.wall_s > 0 else 0.0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > cores:
        notes.append(
            f"the load average ({os.getloadavg()[0]:.1f}) exceeds the {cores} cores: other "
            "processes share this machine, so every figure is slower than on a quiet one"
        )
    verdict, advice, needed = _diagnose(
        loader_rate,
        step_s,
        wait_fraction,
        stages,
        settings,
        dev.type,
        cores,
        step_utilization=step_utilization,
    )
    warnings = _gpu_warnings(gpu)
    return ProfileReport(
        store=store.url,
        device=str(dev),
        cpu_count=cores,
        settings=settings,
        stages_s=stages,
        loader_batches_per_s=loader_rate,
        step_batches_per_s=1.0 / step_s,
        concurrent={
            "batches": float(together.batches),
            "wall_s": together.wall_s,
            "wait_s": together.wait_s,
            "batches_per_s": together.batches / together.wall_s if together.wall_s else 0.0,
        },
        device_wait_fraction=wait_fraction,
        verdict=verdict,
        advice=advice,
        workers_needed=needed,
        gpu=gpu,
        notes=notes,
        warnings=warnings,
    )
