"""GPU busy time during 3D training: the native loader (CPU worker processes reading the store)
feeding a 3D U-Net on the GPU, with the augmentation on the GPU (issue #6; aim: above 95%).

Trains the store's GPU plan (``fastseg.plan.plan_training(store, device="cuda")``: for MSD
hippocampus nnU-Net's 40x56x40 patch, batch 9, widths 32-256) for ``--seconds`` with
``fastseg.train.train_run`` (no validation), while NVML samples the card's utilisation every
100 ms. The busy fraction is the mean NVML utilisation (the share of time a kernel was running)
after the first ``--warmup`` seconds (worker start-up, cuDNN autotuning). Also reported: the
iterations/s and the share of the run the training loop waited for a batch (the loader's own
count). Prints 'RESULT name|value|detail' lines that benchmarks/gpu_check.sh collects.

The store travels with the repository to the GPU machine (which has no network and no zarr);
``benchmarks/gpu_prepare.sh`` puts a copy of the converted hippocampus store and the numcodecs
wheel under .gpu_data/. ``--device cpu`` runs the same measurement without a GPU (no NVML
figure), to check the script.

Usage: python benchmarks/gpu_train.py [--store .gpu_data/hippocampus.zarr] [--seconds 80]
       [--warmup 20] [--workers N] [--augment-device cuda|cpu] [--device cuda|cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def overrides(store: Any, args: argparse.Namespace) -> dict[str, Any]:
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
        "training": {"device": args.device, "tensorboard": False, "log_every_s": 5.0},
    }


def loader_wait(run_dir: Path) -> float | None:
    """The loader's wait fraction from the run's log (its ``loader`` event)."""
    for line in (run_dir / "log.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "loader" and "wait_fraction" in event:
            return float(event["wait_fraction"])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=".gpu_data/hippocampus.zarr")
    parser.add_argument("--seconds", type=float, default=80.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--augment-device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    args = parser.parse_args(argv)
    if args.device == "cpu" and args.augment_device == "cuda":
        args.augment_device = "cpu"

    import torch

    from fastseg.store import Store
    from fastseg.train import train_run

    if not Path(args.store).exists():
        print(f"RESULT gpu train busy|skipped|no store at {args.store} (gpu_prepare.sh)")
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("RESULT gpu train busy|skipped|no CUDA device")
        return 0
    store = Store.open(args.store)
    config = overrides(store, args)
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
        if sampler is not None:
            with sampler:
                result = train_run(args.store, run_dir, overrides=config, progress=False, log=None)
        else:
            result = train_run(args.store, run_dir, overrides=config, progress=False, log=None)
        wait = loader_wait(run_dir)
    rate = result.iterations / result.seconds if result.seconds > 0 else 0.0
    setting = (
        f"patch {config['data']['patch_size']} batch {config['data']['batch_size']}, "
        f"{args.workers} workers, augmentation on {args.augment_device}, {card}"
    )
    busy = sampler.summary(since=start + args.warmup) if sampler is not None else None
    if busy is not None:
        print(
            f"RESULT gpu train busy (NVML, after {args.warmup:g} s)|"
            f"{busy['utilization_mean_pct']:.1f}%|{setting}"
        )
        print(f"RESULT gpu train memory max|{busy['memory_max_mib']:.0f} MiB|{card}")
    else:
        print(f"RESULT gpu train busy|n/a|no NVML samples ({setting})")
    print(f"RESULT gpu train iterations/s|{rate:.2f}|{result.iterations} in {result.seconds:.0f} s")
    if wait is not None:
        print(f"RESULT gpu train loader wait|{100 * wait:.1f}%|share of the run waiting for data")
    return 0


if __name__ == "__main__":
    sys.exit(main())
