"""MSD Task04 hippocampus, end to end with the `fastseg` command line, on one fixed fold.

The split: the 208 training cases sorted by case id, case i in fold ``i % 5``; fold 0 (42 cases)
is validation, the other 166 train (the trainer's ``split`` settings; run.json records the ids).

Steps (each printed with its exact command and wall time):

1. ``fastseg convert DATA OUT/store.zarr``             (RAS, crop, 1 mm, z-score on read)
2. ``fastseg plan OUT/store.zarr``                     (patch, network, batch, CPU time budget)
3. ``fastseg train OUT/store.zarr --out OUT/run3d``    (fold 0, the plan's settings)
4. ``fastseg predict OUT/run3d VAL_IMAGES OUT/pred3d`` with the post-processing chosen on
   validation, plus the same without post-processing and with mirror TTA
5. ``fastseg evaluate`` of each against the fold's reference labels
6. ``fastseg compare``: with vs without post-processing, with vs without TTA
7. with ``--second 2d``: the plan's 2D U-Net trained the same way, and 3D vs 2D compared
8. ``fastseg report`` of the 3D metrics (against the 2D ones when trained)

Prints per class Dice, HD95 and AVD (mean ± std over the validation cases), the wall times and
the device. nnU-Net (3d_fullres, 5-fold cross-validation, 1000 epochs on a GPU) reports Dice
0.8975 (anterior) / 0.8807 (posterior).

Usage: python benchmarks/hippocampus.py --out /tmp/hippo [--data ../shared/data/hippocampus]
       [--minutes 40] [--second 2d --second-minutes 15] [--device cpu] [--skip-train]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LABELS = {1: "anterior", 2: "posterior"}
NNUNET_CV = {1: 0.8975, 2: 0.8807}


def run(command: list[str], log: Path, timings: dict[str, float], name: str) -> None:
    """Run one fastseg command, echo it, tee its output to ``log``, record its wall time."""
    print(f"\n$ {shlex.join(command)}", flush=True)
    t0 = time.perf_counter()
    with log.open("a") as sink:
        sink.write(f"\n$ {shlex.join(command)}\n")
        sink.flush()
        proc = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, check=False)
    timings[name] = time.perf_counter() - t0
    print(f"  {name}: {timings[name]:.0f} s (exit {proc.returncode})", flush=True)
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-30:]
        sys.exit(
            f"{name} failed (exit {proc.returncode}); last lines of {log}:\n" + "\n".join(tail)
        )


def fastseg(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastseg", *args]


def link_fold(data: Path, cases: list[str], out: Path) -> tuple[Path, Path]:
    """Folders of symlinks to the fold's images and labels (file names as in the dataset)."""
    images, labels = out / "val_images", out / "val_labels"
    for folder in (images, labels):
        folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        for src, folder in ((data / "imagesTr", images), (data / "labelsTr", labels)):
            target = folder / f"{case}.nii.gz"
            if not target.exists():
                target.symlink_to((src / f"{case}.nii.gz").resolve())
    return images, labels


def summary(path: Path) -> dict[int, dict[str, tuple[float, float]]]:
    """Per label: (mean, std) over cases of dice, hd95, avd (distances over finite values)."""
    rows = list(csv.DictReader(path.open()))
    out: dict[int, dict[str, tuple[float, float]]] = {}
    for label in LABELS:
        chosen = [r for r in rows if int(r["label"]) == label]
        stats = {}
        for metric in ("dice", "hd95", "avd"):
            values = [float(r[metric]) for r in chosen]
            values = [v for v in values if math.isfinite(v)]
            stats[metric] = (
                statistics.fmean(values) if values else math.nan,
                statistics.stdev(values) if len(values) > 1 else math.nan,
            )
        out[label] = stats
    return out


def print_table(title: str, table: dict[int, dict[str, tuple[float, float]]]) -> None:
    print(f"\n{title}")
    print(f"  {'class':<10} {'Dice':>15} {'HD95 mm':>15} {'AVD mm':>15} {'nnU-Net CV Dice':>16}")
    for label, stats in table.items():
        cells = [f"{m:.4f} ± {s:.4f}" for m, s in (stats[k] for k in ("dice", "hd95", "avd"))]
        print(f"  {LABELS[label]:<10} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} "
              f"{NNUNET_CV[label]:>16.4f}")  # fmt: skip


def write_config(path: Path, store: Path, minutes: float, alternative: str | None) -> Path:
    """A config file over the store's plan: the time budget, and for an alternative of the
    plan (e.g. ``2d``) that alternative's model and data sections."""
    import yaml

    from fastseg.store import Store

    config: dict[str, Any] = {"schedule": {"time_budget_s": int(minutes * 60)}}
    if alternative is not None:
        plan = Store.open(store).training_plan or {}
        chosen = plan.get("alternatives", {}).get(alternative)
        if chosen is None:
            sys.exit(f"the store's plan has no {alternative!r} alternative")
        config.update({k: v for k, v in chosen.items() if k in ("model", "data")})
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def train_and_predict(
    args: argparse.Namespace, store: Path, name: str, minutes: float, alternative: str | None,
    log: Path, timings: dict[str, float],
) -> tuple[Path, dict[str, Any]]:  # fmt: skip
    out: Path = args.out
    run_dir = out / f"run{name}"
    if not args.skip_train:
        config = write_config(out / f"config{name}.yaml", store, minutes, alternative)
        train = fastseg(
            "train", str(store), "--out", str(run_dir), "--config", str(config), "--quiet"
        )
        if args.device:
            train += ["--device", args.device]
        run(train, log, timings, f"train {name}")
    spec = json.loads((run_dir / "run.json").read_text())
    return run_dir, spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/hippocampus"))
    parser.add_argument("--minutes", type=float, default=40.0, help="3D training budget")
    parser.add_argument("--second", choices=["2d"], help="also train this configuration")
    parser.add_argument("--second-minutes", type=float, default=15.0)
    parser.add_argument("--device", help="training/inference device (default: the plan's)")
    parser.add_argument("--skip-train", action="store_true", help="reuse OUT/run3d (and run2d)")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = out / "commands.log"
    timings: dict[str, float] = {}
    started = time.perf_counter()

    store = out / "store.zarr"
    run(fastseg("convert", str(args.data), str(store)), log, timings, "convert")
    run(fastseg("plan", str(store)), log, timings, "plan")

    runs: list[tuple[str, float, str | None]] = [("3d", args.minutes, None)]
    if args.second == "2d":
        runs.append(("2d", args.second_minutes, "2d"))
    metrics: dict[str, Path] = {}
    for name, minutes, alternative in runs:
        run_dir, spec = train_and_predict(args, store, name, minutes, alternative, log, timings)
        cases = list(spec["split"]["validation"])
        images, labels = link_fold(args.data, cases, out)
        variants = [("", []), ("_raw", ["--no-postprocess"])]
        if name == "3d":
            variants.append(("_tta", ["--tta"]))
        for suffix, extra in variants:
            pred = out / f"pred{name}{suffix}"
            command = fastseg("predict", str(run_dir), str(images), str(pred), "--quiet", *extra)
            if args.device:
                command += ["--device", args.device]
            run(command, log, timings, f"predict {name}{suffix}")
            table = out / f"metrics{name}{suffix}.csv"
            run(fastseg("evaluate", "--pred", str(pred), "--ref", str(labels), "--out",
                        str(table), "--quiet"), log, timings, f"evaluate {name}{suffix}")  # fmt: skip
            metrics[f"{name}{suffix}"] = table

    comparisons = [("3d", "3d_raw", "post-processing"), ("3d_tta", "3d", "mirror TTA")]
    if "2d" in metrics:
        comparisons.append(("3d", "2d", "3D vs 2D U-Net"))
    for a, b, what in comparisons:
        report = out / f"compare_{a}_vs_{b}.json"
        run(fastseg("compare", str(metrics[a]), str(metrics[b]), "--out", str(report)),
            log, timings, f"compare {what}")  # fmt: skip
    report_cmd = fastseg(
        "report", "--metrics", str(metrics["3d"]), "--out", str(out / "report.html")
    )
    if "2d" in metrics:
        report_cmd += ["--compare", str(metrics["2d"])]
    run(report_cmd, log, timings, "report")

    for key, table in metrics.items():
        print_table(f"validation fold 0 ({len(cases)} cases): {key}", summary(table))
    print("\ncomparisons (fastseg compare; full reports in OUT/compare_*.json and commands.log)")
    for a, b, what in comparisons:
        doc = json.loads((out / f"compare_{a}_vs_{b}.json").read_text())
        for group, r in doc["results"].items():
            verdict = "significant" if r["significant"] else "not significant"
            print(f"  {what}, label {group}: {a} - {b} = {r['estimate']:+.4f} Dice "
                  f"({r['estimate_name']}); {r['test']}, p = {r['pvalue']:.3g}: {verdict}; "
                  f"why: {r['reason']}")  # fmt: skip
    print("\nwall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    print(f"total {time.perf_counter() - started:.0f} s on {platform.processor() or platform.machine()}"
          f", {os.cpu_count()} CPUs, device {args.device or 'plan default'}")  # fmt: skip


if __name__ == "__main__":
    main()
