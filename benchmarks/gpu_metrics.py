"""GPU batch evaluation: pairs/s of ``evaluate_batch(device="cuda")`` against the native CPU engine
(all cores) on the same pairs, and the largest difference between the two results.

Pairs: the organ-like masks of bench_metrics.py, MR-sized (z, y, x) = (96, 160, 160) with spacing
(2.5, 0.8, 0.8) mm and CT-sized (200, 512, 512) with (1.5, 0.8, 0.8) mm. The GPU figures are
given twice: label maps copied from host memory for every pair, and already on the device
(CUDA tensors). Prints 'RESULT name|value|detail' lines that benchmarks/gpu_check.sh collects;
imports only numpy, scipy, torch and fastseg. ``--torch-cpu`` runs the device path on torch's
CPU device instead (to check the script where there is no GPU). ``--profile`` then runs
torch.profiler over one device evaluation of the MR pairs and prints its operator table (CPU
and, on a GPU, CUDA times; not a RESULT line).

Usage: python benchmarks/gpu_metrics.py [--mr 64] [--ct 4] [--repeats 3] [--torch-cpu] [--profile]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import make_pair
from fastseg.metrics import evaluate_batch
from fastseg.metrics._device import pairs_metrics

SETTINGS = {
    "MR 160x160x96": ((96, 160, 160), (2.5, 0.8, 0.8), (30.0, 25.0, 20.0)),
    "CT 512x512x200": ((200, 512, 512), (1.5, 0.8, 0.8), (60.0, 50.0, 40.0)),
}
METRICS = ("dice", "jaccard", "vs", "hd", "hd95", "avd", "assd", "nsd")


def pairs_per_s(run: Callable[[], Any], n: int, repeats: int) -> tuple[float, Any]:
    """Median pairs/s over ``repeats`` runs after one warm-up run, and the last result."""
    result = run()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times), result


def max_relative_difference(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        for key in METRICS:
            u, v = float(x[key]), float(y[key])
            if u == v or (np.isnan(u) and np.isnan(v)):
                continue
            worst = max(worst, abs(u - v) / max(abs(u), 1e-12))
    return worst


def torch_cpu_rows(pairs: dict[str, tuple[np.ndarray, np.ndarray]], spacing: Any) -> list[Any]:
    """``evaluate_batch``'s rows computed by the device path on torch's CPU device (all pairs
    in one call, as ``evaluate_batch`` passes a chunk)."""
    rows = []
    results = pairs_metrics(
        list(pairs.values()), [spacing] * len(pairs), None, "max_directed", 1.0, "cpu"
    )
    for case, res in zip(pairs, results, strict=True):
        for k, label in enumerate(res["label"].tolist()):
            rows.append({"case": case, "label": label, **{m: res[m][k] for m in METRICS}})
    return rows


def device_run(
    pairs: dict[str, tuple[np.ndarray, np.ndarray]], spacing: Any, torch_cpu: bool
) -> Callable[[], Any]:
    """One evaluation of ``pairs`` by the device path: on torch's CPU device, or
    ``evaluate_batch(device="cuda")``."""
    if torch_cpu:
        return lambda: torch_cpu_rows(pairs, spacing)
    return lambda: evaluate_batch(pairs, spacing=spacing, device="cuda")


def profile(run: Callable[[], Any]) -> None:
    """torch.profiler's operator table of one ``run()``, by self CPU time (with CUDA times on a
    GPU)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with profiler(activities=activities) as prof:
        run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mr", type=int, default=64, help="MR-sized pairs")
    parser.add_argument("--ct", type=int, default=4, help="CT-sized pairs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torch-cpu", action="store_true", help="device path on torch's CPU")
    parser.add_argument(
        "--profile", action="store_true", help="then profile one device run of the MR pairs"
    )
    args = parser.parse_args(argv)
    if not args.torch_cpu and not torch.cuda.is_available():
        print("RESULT metrics cuda|skipped|no CUDA device")
        return 0
    card = "torch CPU" if args.torch_cpu else torch.cuda.get_device_name(0)
    threads = os.cpu_count() or 1
    profiled: Callable[[], Any] | None = None
    for (name, (shape, spacing, radii)), n in zip(
        SETTINGS.items(), (args.mr, args.ct), strict=True
    ):
        if n < 1:
            continue
        pairs = {f"p{k}": make_pair(shape, spacing, radii, seed=k) for k in range(n)}
        cpu_rate, cpu_rows = pairs_per_s(
            lambda pairs=pairs, spacing=spacing: evaluate_batch(pairs, spacing=spacing),
            n,
            args.repeats,
        )
        if args.torch_cpu:
            dev_rate, dev_rows = pairs_per_s(
                lambda pairs=pairs, spacing=spacing: torch_cpu_rows(pairs, spacing), n, 1
            )
            resident_rate = None
        else:
            dev_rate, dev_rows = pairs_per_s(
                lambda pairs=pairs, spacing=spacing: evaluate_batch(
                    pairs, spacing=spacing, device="cuda"
                ),
                n,
                args.repeats,
            )
            on_device = {
                c: (torch.from_numpy(p).cuda(), torch.from_numpy(r).cuda())
                for c, (p, r) in pairs.items()
            }
            resident_rate, _ = pairs_per_s(
                lambda on_device=on_device, spacing=spacing: evaluate_batch(
                    on_device, spacing=spacing, device="cuda"
                ),
                n,
                args.repeats,
            )
        if name.startswith("MR"):
            profiled = device_run(pairs, spacing, args.torch_cpu)
        diff = max_relative_difference(cpu_rows, dev_rows)
        print(
            f"RESULT metrics {name} device pairs/s|{dev_rate:.1f}|{card}; native CPU "
            f"{cpu_rate:.1f} pairs/s ({threads} threads) = {dev_rate / cpu_rate:.2f}x; "
            f"max rel. diff {diff:.1e}"
        )
        if resident_rate is not None:
            print(
                f"RESULT metrics {name} on-device pairs/s|{resident_rate:.1f}|{card}; "
                f"{resident_rate / cpu_rate:.2f}x the native CPU engine"
            )
    if args.profile and profiled is not None:
        print(f"torch.profiler, one device evaluation of the MR pairs ({card}):")
        profile(profiled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
