"""The loader profiler: verdicts on a deliberately loader-bound and a deliberately
compute-bound configuration (the two differ by far more than 5x, so the verdicts hold on a
loaded 2-core machine), the advice formula, the report's JSON schema, bad input."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from fastseg.cli import main
from fastseg.data import ProfileReport, profile
from fastseg.data import _profile as prof
from fastseg.errors import ImageReadError, InputError
from fastseg.store import Store

# Every step at p=1: ~20-50 ms per 40x80x80 sample on one core, run in the training process.
HEAVY_AUGMENTATION = [
    {"name": "elastic", "p": 1.0},
    {"name": "affine", "p": 1.0},
    {"name": "blur", "p": 1.0},
    {"name": "lowres", "p": 1.0},
    {"name": "bias_field", "p": 1.0},
    {"name": "noise", "p": 1.0},
    {"name": "gamma", "p": 1.0},
]

KEYS = {
    "store",
    "device",
    "cpu_count",
    "settings",
    "stages_s",
    "loader_batches_per_s",
    "step_batches_per_s",
    "concurrent",
    "device_wait_fraction",
    "verdict",
    "advice",
    "workers_needed",
    "gpu",
    "notes",
    "warnings",
}


class TinyModel(nn.Module):
    """Next to no compute: one scale per class on every 4th voxel."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, classes, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::4, ::4, ::4] * self.scale


class SlowModel(nn.Module):
    """A 1x1 convolution behind an artificial 0.3 s stall (a "heavy" network that costs no
    CPU, so the loader keeps its speed)."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.3)
        return self.conv(x)


def mean_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return logits.float().mean()


@pytest.fixture(scope="module")
def loader_bound(small_store: Path) -> ProfileReport:
    config = {
        "data": {
            "workers": 0,
            "patch_size": [40, 80, 80],
            "batch_size": 2,
            "augmentation": HEAVY_AUGMENTATION,
            "augment_device": "cpu",
        }
    }
    return profile(
        small_store,
        config,
        seconds=1.0,
        batches=3,
        device="cpu",
        model=TinyModel(),
        loss=mean_loss,
    )


@pytest.fixture(scope="module")
def compute_bound(small_store: Path) -> ProfileReport:
    config = {"data": {"workers": 0, "patch_size": [8, 8, 8], "augmentation": "none"}}
    return profile(small_store, config, seconds=1.0, batches=3, device="cpu", model=SlowModel())


def test_loader_bound_verdict(loader_bound: ProfileReport) -> None:
    r = loader_bound
    assert r.verdict == "loader-bound", r.summary()
    assert r.loader_batches_per_s < r.step_batches_per_s
    assert r.device_wait_fraction > 0.5, r.summary()
    text = " ".join(r.advice)
    assert "workers" in text and "augmentation on CPU" in text and "augment_device: cuda" in text
    assert "zstd level 5" in text and "lz4" in text  # the store's codec, from its attributes
    worker_s = r.stages_s["read"] + r.stages_s["assemble"] + r.stages_s["augment"]
    assert r.workers_needed == math.ceil(worker_s / r.stages_s["step"])
    assert f"≥{r.workers_needed} workers" in text
    assert r.stages_s["augment"] > 0 and r.stages_s["read"] > 0


def test_compute_bound_verdict(compute_bound: ProfileReport) -> None:
    r = compute_bound
    assert r.verdict == "compute-bound", r.summary()
    assert r.loader_batches_per_s > r.step_batches_per_s
    assert r.stages_s["step"] >= 0.3  # the stall is inside the measured step
    assert r.device_wait_fraction < 0.5, r.summary()
    assert "nothing to fix on the data side" in r.advice[0]
    # on the CPU the host runs the whole step: no launch-bound verdict or hint there
    assert r.stages_s["step_host"] <= r.stages_s["step"]
    assert r.stages_s["step_host"] >= 0.8 * r.stages_s["step"]
    assert "launch" not in " ".join(r.advice)
    assert r.stages_s["augment"] == 0.0 and r.settings["augmentation"] == ""


def test_report_json_and_text(compute_bound: ProfileReport) -> None:
    d = json.loads(json.dumps(compute_bound.to_dict(), allow_nan=False))
    assert set(d) == KEYS
    assert set(d["stages_s"]) == {"read", "assemble", "augment", "copy", "step", "step_host"}
    assert set(d["concurrent"]) == {"batches", "wall_s", "wait_s", "batches_per_s"}
    assert d["settings"]["patch_size"] == [8, 8, 8] and d["settings"]["workers"] == 0
    assert d["settings"]["codec"] == "zstd level 5" and d["settings"]["amp"] == "off"
    assert 0.0 <= d["device_wait_fraction"] <= 1.0
    assert d["gpu"] is None and d["device"] == "cpu"
    assert 2 <= d["concurrent"]["batches"] <= 3
    text = compute_bound.summary()
    for row in ("chunk read + decompression", "patch assembly", "augmentation", "training step"):
        assert row in text
    assert "verdict: compute-bound" in text


def test_cli_profile_configured_unet(small_store: Path, tmp_path: Path) -> None:
    """The configured path: a config file, the U-Net from build_model with deep supervision,
    the trainer's Dice+CE loss, the store's training plan and defaults."""
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        "model:\n  widths: [2, 4]\n  deep_supervision: true\n"
        "data:\n  workers: 0\n  patch_size: [8, 16, 16]\n  augmentation: none\n"
    )
    out = tmp_path / "profile.json"
    argv = ["profile", str(small_store), "--config", str(cfg), "--seconds", "0.5"]
    code = main([*argv, "--batches", "2", "--device", "cpu", "--json", str(out)])
    assert code == 0
    d = json.loads(out.read_text())
    assert set(d) == KEYS
    assert d["verdict"] in ("loader-bound", "compute-bound", "balanced")
    assert d["settings"]["model"] == "UNet 3D widths [2, 4]"
    assert d["settings"]["patch_size"] == [8, 16, 16]
    assert d["stages_s"]["step"] > 0


def test_default_patch_size(small_store: Path) -> None:
    """No patch in the config: the trainer's default (median case shape, capped)."""
    r = profile(
        small_store,
        {"data": {"workers": 0, "augmentation": "none"}},
        seconds=0.2,
        batches=2,
        device="cpu",
        model=TinyModel(),
        loss=mean_loss,
    )
    store = Store.open(small_store)
    shapes = np.array([store[c].shape for c in store.cases])
    assert r.settings["patch_size"] == [int(v) for v in np.median(shapes, axis=0)]


def test_bad_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nothing.zarr"
    with pytest.raises(ImageReadError, match=r"nothing\.zarr"):
        profile(missing, seconds=1)
    assert main(["profile", str(missing), "--seconds", "1"]) == 2
    assert "nothing.zarr" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seconds": 0}, "seconds"),
        ({"seconds": True}, "seconds"),
        ({"batches": 0}, "batches"),
        ({"config": 3}, "config"),
        ({"config": {"data": {"workers": -1}}}, r"data\.workers"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_arguments(small_store: Path, kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"seconds": 1.0, **kwargs}
    with pytest.raises(InputError, match=match):
        profile(small_store, **args)


SETTINGS = {"augmentation": "default", "augment_device": "cpu", "codec": "zstd level 5"}


def diagnose(
    loader_rate: float,
    step_s: float,
    wait: float,
    workers: int,
    utilization: float | None = None,
    amp: str = "off",
    cuda_graph: bool = False,
    **stages: float,
):
    figures = {"read": 0.0, "assemble": 0.0, "augment": 0.0, "copy": 0.0, **stages}
    settings = {**SETTINGS, "workers": workers, "amp": amp, "cuda_graph": cuda_graph}
    return prof._diagnose(
        loader_rate, step_s, wait, figures, settings, "cuda", 16, step_utilization=utilization
    )


def test_diagnosis_loader_bound_advice() -> None:
    """The issue's example: 410 ms of CPU augmentation with 2 workers, a 62 ms step."""
    verdict, advice, needed = diagnose(
        4.4, 0.062, 0.62, 2, read=0.035, assemble=0.005, augment=0.410
    )
    assert verdict == "loader-bound" and needed == math.ceil(0.450 / 0.062) == 8
    text = "\n".join(advice)
    assert "the device waits 62% of the time" in text
    assert "augmentation on CPU costs 410 ms/batch with 2 workers" in text
    assert "augment_device: cuda)" in text and "≥8 workers (this machine has 16 cores)" in text
    assert "reads cost 35 ms/batch with zstd level 5 — lz4 would roughly halve that" in text


def test_diagnosis_read_bound_and_few_cores() -> None:
    settings = {**SETTINGS, "augmentation": "", "workers": 1, "amp": "off", "codec": "lz4 level 5"}
    figures = {"read": 0.9, "assemble": 0.0, "augment": 0.0, "copy": 0.0}
    verdict, advice, needed = prof._diagnose(1.1, 0.1, 0.9, figures, settings, "cpu", 2)
    assert verdict == "loader-bound" and needed == 9
    text = "\n".join(advice)
    assert "augmentation" not in text and "more than the cores" in text
    assert "reads cost 900 ms/batch with lz4 level 5" in text and "halve" not in text


def test_diagnosis_compute_bound_and_balanced() -> None:
    verdict, advice, _ = diagnose(31.0, 0.1, 0.03, 2, augment=0.05)
    assert verdict == "compute-bound"
    assert "waits for data 3% of the time, the loader could feed 3.1x more" in advice[0]
    assert "AMP" in advice[1]
    verdict, advice, needed = diagnose(10.5, 0.1, 0.05, 2, augment=0.15)
    assert verdict == "balanced" and needed == 2
    assert "≥3 workers" in advice[1]


def test_diagnosis_launch_bound() -> None:
    """The H200 measured in session 5 (hippocampus, batch 7): the data was ready, yet the GPU
    computed 45% of the time while Python queued ~1,000 kernels per step."""
    verdict, advice, _ = diagnose(60.0, 0.027, 0.027, 8, 45.0, "bfloat16", step_host=0.025)
    assert verdict == "launch-bound"
    assert "the GPU computes only 45% of the training step" in advice[0]
    assert "the host needs 25 ms to queue the kernels of a 27 ms step" in advice[0]
    assert "loader could feed 1.6x more" in advice[0]  # 60 batches/s x 0.027 s
    assert "training.cuda_graph: auto" in advice[1] and "larger batch" in advice[1]
    # already a CUDA graph: only more work per kernel helps
    _, advice, _ = diagnose(60.0, 0.027, 0.027, 8, 45.0, "bfloat16", True, step_host=0.025)
    assert "cuda_graph" not in advice[1] and "larger batch" in advice[1]
    # fp16 cannot be captured: bf16 first
    _, advice, _ = diagnose(60.0, 0.027, 0.027, 8, 45.0, "float16", step_host=0.025)
    assert "training.amp: bf16" in advice[1]


def test_diagnosis_busy_or_unmeasured_gpu_is_not_launch_bound() -> None:
    """A host that needs the whole step to queue it can also be one the GPU holds back (a full
    launch queue): only a low NVML utilisation makes it launch-bound; unmeasured, it is a hint."""
    verdict, advice, _ = diagnose(60.0, 0.027, 0.02, 8, 97.0, step_host=0.026)
    assert verdict == "compute-bound" and "launch" not in " ".join(advice)
    verdict, advice, _ = diagnose(60.0, 0.027, 0.02, 8, None, step_host=0.026)
    assert verdict == "compute-bound"
    assert "the host needs 26 ms/batch of the 27 ms/batch step" in advice[1]
    assert "nvidia-ml-py" in advice[1] and "training.cuda_graph: auto" in advice[1]
    # a host part well below the step: the GPU sets the pace, whatever NVML says
    verdict, advice, _ = diagnose(60.0, 0.027, 0.02, 8, 45.0, step_host=0.010)
    assert verdict == "compute-bound" and "launch" not in " ".join(advice)
    # the loader sets the pace: loader-bound, launches or not
    verdict, _, _ = diagnose(20.0, 0.027, 0.4, 8, 45.0, step_host=0.026)
    assert verdict == "loader-bound"


class NVMLError(Exception):
    pass


def fake_nvml(utilization: int, memory: Any, temperature: Any) -> types.SimpleNamespace:
    """A stand-in for the pynvml module of a one-GPU machine ("Fake GPU")."""
    return types.SimpleNamespace(
        NVMLError=NVMLError,
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetName=lambda h: "Fake GPU",
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=utilization),
        nvmlDeviceGetMemoryInfo=memory,
        nvmlDeviceGetTemperature=temperature,
    )


def test_gpu_sampler_with_fake_nvml(
    monkeypatch: pytest.MonkeyPatch, compute_bound: ProfileReport
) -> None:
    """The NVML path (it needs a GPU to run for real): samples summarised, hot card warned."""
    temps = iter([70.0, 88.0] + [88.0] * 1000)
    monkeypatch.setitem(
        sys.modules,
        "pynvml",
        fake_nvml(
            utilization=90,
            memory=lambda h: types.SimpleNamespace(used=2 * 2**30),
            temperature=lambda h, kind: next(temps),
        ),
    )
    with prof._NvmlSampler(0, interval_s=0.01) as sampler:
        deadline = time.monotonic() + 10
        while len(sampler._samples) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    gpu = sampler.summary()
    assert gpu is not None and gpu["samples"] >= 2 and gpu["name"] == "Fake GPU"
    assert sampler.summary(since=time.monotonic() + 1) is None  # nothing sampled after now
    later = sampler.summary(since=sampler._samples[1][0])
    assert later is not None and later["samples"] == gpu["samples"] - 1
    assert gpu["utilization_mean_pct"] == 90 and gpu["memory_max_mib"] == 2048
    assert gpu["temperature_max_c"] == 88
    (warning,) = prof._gpu_warnings(gpu)
    assert "88 °C" in warning
    assert prof._gpu_warnings({**gpu, "temperature_max_c": 84.0}) == []
    text = dataclasses.replace(compute_bound, gpu=gpu, warnings=[warning]).summary()
    assert "GPU Fake GPU: utilisation mean 90%" in text and "warning: the GPU reached 88" in text


def test_gpu_sampler_without_temperature(monkeypatch: pytest.MonkeyPatch) -> None:
    """A card (or sandbox) whose NVML has no temperature or memory reading still gives the
    utilisation; the extras read NaN and no heat warning is made up."""

    def unsupported(*args: object) -> None:
        raise NVMLError("Not Supported")

    fake = fake_nvml(utilization=97, memory=unsupported, temperature=unsupported)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with prof._NvmlSampler(0, interval_s=0.01) as sampler:
        deadline = time.monotonic() + 10
        while len(sampler._samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    gpu = sampler.summary()
    assert gpu is not None and gpu["samples"] >= 3 and gpu["utilization_mean_pct"] == 97
    assert math.isnan(gpu["temperature_max_c"]) and math.isnan(gpu["memory_max_mib"])
    assert prof._gpu_warnings(gpu) == []
