"""GPU busy time during 3D training: the native loader (CPU worker processes reading the store)
feeding a 3D U-Net on the GPU, with the augmentation on the GPU (issue #6; aim: above 95%).

Trains the store's GPU plan (``fastseg.plan.plan_training(store, device="cuda")``: for MSD
hippocampus nnU-Net's 40x56x40 patch, batch 9, widths 32-256) for ``--seconds`` with
``fastseg.train.train_run`` (no validation), while NVML samples the card's utilisation every
100 ms. The busy fraction is the mean NVML utilisation (the share of time a kernel was running)
after the first ``--warmup`` seconds (worker start-up, cuDNN autotuning). Also reported: the
iterations/s, the share of the run the training loop waited for a batch (the loader's own
count) and the loader's host time per batch for the copy and the GPU augmentation's launches.
Each mode of ``--cuda-graph`` (default: ``off`` then ``auto``, the training step eager, then
replayed as a CUDA graph) is one run. Then ``fastseg.data.profile`` (``--profile-seconds``
each, 0 skips it) profiles the same configuration in each mode, to check its verdict on a real
GPU (eager small-patch steps: launch-bound). Prints 'RESULT name|value|detail' lines that
benchmarks/gpu_check.sh collects.

The store travels with the repository to the GPU machine (which has no network and no zarr);
``benchmarks/gpu_prepare.sh`` puts a copy of the converted hippocampus store and the numcodecs
wheel under .gpu_data/. ``--device cpu`` runs the same measurement without a GPU (no NVML
figure), to check the script.

Usage: python benchmarks/gpu_train.py [--store .gpu_data/hippocampus.zarr] [--seconds 45]
       [--warmup 15] [--workers N] [--augment-device cuda|cpu] [--device cuda|cpu]
       [--cuda-graph off,auto] [--profile-seconds 12]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def overrides(store: Any, args: argparse.Namespace, cuda_graph: str) -> dict[str, Any]:
    """The run's configuration: the GPU plan's model and data sections, no validation."""
    from fastseg.plan import plan_training

    plan = plan_training(store, device="cuda")
    return {
        "model": plan["model"],
        "data": {
            **plan["data"],
            "workers": args.workers,
            "augment_device": args.augment_device,
        },
        "split": {"fold": -1},
        "schedule": {"time_budget_s": args.seconds, "max_iterations": None},
        "training": {
            "device": args.device,
            "tensorboard": False,
            "log_every_s": 5.0,
            "cuda_graph": cuda_graph,
        },
    }


def run_events(run_dir: Path) -> dict[str, Any]:
    """From the run's log: the ``loader`` event (stage timings, wait fraction), whether the step
    ran as a CUDA graph (``start`` event), and the notes (a failed capture says why)."""
    out: dict[str, Any] = {"loader": {}, "cuda_graph": None, "notes": []}
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        event = json.loads(line)
        kind = event.get("event")
        if kind == "loader":
            out["loader"] = event
        elif kind == "start":
            out["cuda_graph"] = event.get("cuda_graph")
        elif kind == "note":
            out["notes"].append(event.get("message", ""))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=".gpu_data/hippocampus.zarr")
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--augment-device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--cuda-graph", default="off,auto", help="modes, comma-separated")
    parser.add_argument("--profile-seconds", type=float, default=12.0)
    args = parser.parse_args(argv)
    if args.device == "cpu" and args.augment_device == "cuda":
        args.augment_device = "cpu"

    import torch

    from fastseg.store import Store

    if not Path(args.store).exists():
        print(f"RESULT gpu train busy|skipped|no store at {args.store} (gpu_prepare.sh)")
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("RESULT gpu train busy|skipped|no CUDA device")
        return 0
    store = Store.open(args.store)
    modes = [mode.strip() for mode in args.cuda_graph.split(",")]
    for mode in modes:
        measure(store, args, mode)
    if args.profile_seconds > 0:
        for mode in modes:
            diagnose(store, args, mode)
    return 0


def diagnose(store: Any, args: argparse.Namespace, mode: str) -> None:
    """``fastseg profile`` of the same configuration; prints its report and verdict."""
    from fastseg.data import profile

    report = profile(
        args.store,
        overrides(store, args, mode),
        seconds=args.profile_seconds,
        device=args.device,
    )
    print(report.summary(), flush=True)
    s = report.stages_s
    gpu = report.gpu or {}
    print(
        f"RESULT gpu profile [cuda_graph {mode}] verdict|{report.verdict}|step "
        f"{1e3 * s['step']:.1f} ms, host part {1e3 * s['step_host']:.1f} ms, GPU busy with the "
        f"step alone {gpu.get('step_utilization_mean_pct', float('nan')):.0f}%, loader "
        f"{report.loader_batches_per_s:.0f} batches/s"
    )


def measure(store: Any, args: argparse.Namespace, mode: str) -> None:
    """One training run with ``training.cuda_graph: mode``; prints its RESULT lines."""
    from fastseg.train import train_run

    config = overrides(store, args, mode)
    print(json.dumps(config), flush=True)
    sampler: Any = None
    card = "cpu"
    if args.device == "cuda":
        from fastseg.data._profile import _NvmlSampler

        sampler = _NvmlSampler(0, interval_s=0.1)
        card = sampler.name
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        start = time.monotonic()
        with sampler if sampler is not None else contextlib.nullcontext():
            result = train_run(args.store, run_dir, overrides=config, progress=False, log=print)
        events = run_events(run_dir)
    rate = result.iterations / result.seconds if result.seconds > 0 else 0.0
    graph = {True: "CUDA graph", False: "eager", None: "?"}[events["cuda_graph"]]
    setting = (
        f"patch {config['data']['patch_size']} batch {config['data']['batch_size']}, "
        f"{args.workers} workers, augmentation on {args.augment_device}, {card}"
    )
    tag = f"gpu train [cuda_graph {mode}: {graph}]"
    busy = sampler.summary(since=start + args.warmup) if sampler is not None else None
    if busy is not None:
        print(
            f"RESULT {tag} busy (NVML, after {args.warmup:g} s)|"
            f"{busy['utilization_mean_pct']:.1f}%|{setting}"
        )
        print(f"RESULT {tag} memory max|{busy['memory_max_mib']:.0f} MiB|{card}")
    else:
        print(f"RESULT {tag} busy|n/a|no NVML samples ({setting})")
    print(f"RESULT {tag} iterations/s|{rate:.2f}|{result.iterations} in {result.seconds:.0f} s")
    loader = events["loader"]
    if "wait_fraction" in loader:
        host = ", ".join(
            f"{stage} {1e3 * loader[f'{stage}_median']:.2f} ms"
            for stage in ("copy_s", "augment_s")
            if isinstance(loader.get(f"{stage}_median"), float)
        )
        print(
            f"RESULT {tag} loader wait|{100 * loader['wait_fraction']:.1f}%|"
            f"share of the run waiting for data; host per batch: {host}"
        )
    for note in events["notes"]:
        if "CUDA graph" in note:
            print(f"RESULT {tag} note|capture failed|{note[:300]}")


if __name__ == "__main__":
    sys.exit(main())
