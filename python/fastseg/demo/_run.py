"""``fastseg demo``: phantoms → preprocess → train → infer → clean-up → metrics → stats → report."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastseg._atomic import atomic_path, write_text_atomic
from fastseg.demo._dataset import write_dataset
from fastseg.demo._phantom import DEFAULT_SHAPE, DEFAULT_SPACING, LABELS
from fastseg.errors import InputError

METRIC_COLUMNS = (
    "dice", "jaccard", "vs", "hd", "hd95", "avd", "assd", "nsd", "pred_voxels", "ref_voxels", "empty",
)  # fmt: skip
MIN_COMPONENT_MM3 = {1: 500.0, 2: 40.0, 3: 30.0}
"""Clean-up: components smaller than this (mm³) are removed, per class."""


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _read_cases(root: Path, entries: Sequence[dict[str, str]]) -> list[tuple[str, Any, Any]]:
    """``(case id, image Volume, label Volume)`` per entry, geometry checked."""
    from fastseg.io import check_pair, read

    cases = []
    for entry in entries:
        image_path, label_path = root / entry["image"], root / entry["label"]
        image, label = read(image_path), read(label_path)
        check_pair(image, label, image_path, label_path)
        cases.append((Path(entry["image"]).name.removesuffix(".nii.gz"), image, label))
    return cases


def _save_model(path: Path, model: Any, extra: dict[str, Any]) -> None:
    import torch

    with atomic_path(path, path.suffix) as tmp:
        torch.save({"state_dict": model.state_dict(), **extra}, tmp)


def _metrics_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    columns = ["case", "stage", "label", "label_name", *METRIC_COLUMNS]
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _means(rows: list[dict[str, Any]], stage: str) -> dict[str, dict[str, Any]]:
    """Per label name: mean of each metric over cases (distances over finite values only)."""
    out: dict[str, dict[str, Any]] = {}
    for label, name in LABELS.items():
        chosen = [r for r in rows if r["stage"] == stage and r["label"] == label]
        if not chosen:
            continue
        entry: dict[str, Any] = {"cases": len(chosen)}
        for key in ("dice", "jaccard", "vs", "hd", "hd95", "avd", "assd", "nsd"):
            values = np.array([float(r[key]) for r in chosen if key in r])
            finite = values[np.isfinite(values)]
            entry[key] = _finite_or_none(float(finite.mean())) if finite.size else None
        entry["cases_with_empty_mask"] = sum(1 for r in chosen if r.get("empty"))
        out[name] = entry
    return out


def run_demo(
    out_dir: str | os.PathLike[str] = "fastseg_demo",
    minutes: float = 4.0,
    seed: int = 0,
    *,
    n_train: int = 16,
    n_test: int = 6,
    shape: Sequence[int] = DEFAULT_SHAPE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    patch_size: Sequence[int] = (32, 48, 48),
    widths: Sequence[int] = (8, 16, 32, 64),
    batch_size: int = 2,
    learning_rate: float = 3e-3,
    threads: int | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run the whole workflow on synthetic CT phantoms; returns the summary (also in summary.json).

    Writes to ``out_dir``: ``data/`` (the phantoms in MSD layout), ``model.pt``,
    ``predictions/raw`` and ``predictions/clean`` (NIfTI label maps of the held-out cases),
    ``metrics.csv`` (one row per case, label and stage ``raw``/``clean``), ``summary.json`` and
    ``overlays/*.png`` (tri-planar views). ``minutes`` is the training budget; the rest takes
    about a minute more on 2 cores. ``shape``, ``spacing`` and ``patch_size`` are ``(z, y, x)``
    (voxels, mm). ``threads`` defaults to the CPU cores available. Training stops on time, so
    the number of iterations, and with it the result, depends on the machine's speed.
    """
    # Idle OpenMP threads sleep instead of spinning: on a shared machine spinning threads slow
    # torch's CPU kernels several-fold. Read when the OpenMP runtime starts (first torch import).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from fastseg.infer import sliding_window_inference
    from fastseg.metrics import evaluate
    from fastseg.nn import DiceCELoss, UNet3D
    from fastseg.postprocess import remove_small_components
    from fastseg.preprocess import CTNormalization
    from fastseg.report import save_triplanar
    from fastseg.stats import compare
    from fastseg.train import LoopConfig, PatchSampler, train

    if not (math.isfinite(minutes) and minutes >= 0):
        raise InputError(f"minutes: expected a non-negative training budget, got {minutes}")
    if n_test < 1:
        raise InputError(f"n_test: expected at least one held-out case, got {n_test}")
    say: Callable[[str], None] = log if log is not None else (lambda _msg: None)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or _cores())
    try:
        t0 = time.perf_counter()
        say(f"[1/7] phantoms: {n_train} training + {n_test} held-out cases → {out / 'data'}")
        last = [time.perf_counter()]

        def progress(msg: str) -> None:
            if time.perf_counter() - last[0] >= 5.0:
                say(f"      {msg}")
                last[0] = time.perf_counter()

        dataset_json = write_dataset(out / "data", n_train, n_test, seed, shape, spacing, progress)
        dataset = json.loads(dataset_json.read_text(encoding="utf-8"))
        timings["phantoms_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        say("[2/7] preprocess: read back, CT normalisation (foreground percentiles + z-score)")
        train_cases = _read_cases(out / "data", dataset["training"])
        test_entries = [
            {"image": i, "label": lab}
            for i, lab in zip(dataset["test"], dataset["test_labels"], strict=True)
        ]
        test_cases = _read_cases(out / "data", test_entries)
        norm = CTNormalization.fit(
            [im.array for _, im, _ in train_cases], [lb.array for _, _, lb in train_cases]
        )
        air = float(norm(np.array([-1000.0]))[0])
        sampler = PatchSampler(
            [norm(im.array)[None] for _, im, _ in train_cases],
            [lb.array for _, _, lb in train_cases],
            patch_size,
            oversample_foreground=0.5,
            seed=seed,
            pad_value=air,
        )
        timings["preprocess_s"] = time.perf_counter() - t0
        say(
            f"      clip [{norm.lo:.0f}, {norm.hi:.0f}] HU, mean {norm.mean:.1f}, std {norm.std:.1f}"
        )

        say(
            f"[3/7] train: 3D U-Net {tuple(widths)}, patch {tuple(patch_size)}, batch {batch_size}, "
            f"Dice+CE, AdamW, {minutes:g} min on {torch.get_num_threads()} threads"
        )
        torch.manual_seed(seed)
        model = UNet3D(1, len(LABELS), widths)
        config = LoopConfig(
            batch_size=batch_size,
            learning_rate=learning_rate,
            time_budget_s=minutes * 60.0,
            log_interval_s=10.0,
            seed=seed,
        )
        result = train(model, sampler, DiceCELoss(), config, log=lambda m: say(f"      {m}"))
        timings["train_s"] = result.seconds
        say(
            f"      {result.iterations} iterations in {_clock(result.seconds)}, "
            f"final loss {result.final_loss:.4f}"
        )
        _save_model(
            out / "model.pt",
            model,
            {
                "widths": list(widths),
                "num_classes": len(LABELS),
                "labels": LABELS,
                "patch_size": list(patch_size),
                "normalization": norm.to_dict(),
                "iterations": result.iterations,
            },
        )

        t0 = time.perf_counter()
        say(f"[4/7] predict: sliding window, patch {tuple(patch_size)}, overlap 0.5, Gaussian")
        raw: dict[str, np.ndarray] = {}
        with torch.inference_mode():
            for name, image, _ in test_cases:
                t1 = time.perf_counter()
                raw[name] = sliding_window_inference(
                    model, norm(image.array)[None], patch_size, 0.5, pad_value=air
                ).astype(np.uint8)
                say(f"      {name}: {time.perf_counter() - t1:.1f} s")
        timings["predict_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        say(f"[5/7] clean-up: remove components below {MIN_COMPONENT_MM3} mm³ per class")
        from fastseg.io import write

        clean: dict[str, np.ndarray] = {}
        for name, image, _ in test_cases:
            clean[name] = remove_small_components(raw[name], MIN_COMPONENT_MM3, image.spacing)
            for stage, maps in (("raw", raw), ("clean", clean)):
                write(image.with_array(maps[name]), out / "predictions" / stage / f"{name}.nii.gz")
        timings["cleanup_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        say("[6/7] evaluate: Dice, HD, HD95, AVD, VS, ... per case and label; paired test")
        rows: list[dict[str, Any]] = []
        labels = [k for k in LABELS if k != 0]
        for name, image, label in test_cases:
            for stage, maps in (("raw", raw), ("clean", clean)):
                scores = evaluate(maps[name], label.array, spacing=image.spacing, labels=labels)
                for k in labels:
                    rows.append(
                        {
                            "case": name,
                            "stage": stage,
                            "label": k,
                            "label_name": LABELS[k],
                            **scores[k],
                        }
                    )

        def per_case(stage: str, label: int | None) -> dict[str, float]:
            chosen = [
                r for r in rows if r["stage"] == stage and (label is None or r["label"] == label)
            ]
            cases = sorted({r["case"] for r in chosen})
            return {
                c: float(np.mean([float(r["dice"]) for r in chosen if r["case"] == c]))
                for c in cases
            }

        lesion = next(k for k, v in LABELS.items() if v == "lesion")
        comparisons = {
            "lesion_dice": compare(
                per_case("clean", lesion),
                per_case("raw", lesion),
                paired=True,
                names=("clean", "raw"),
            ),
            "mean_dice": compare(
                per_case("clean", None), per_case("raw", None), paired=True, names=("clean", "raw")
            ),
        }
        timings["evaluate_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        say(f"[7/7] report: {out / 'metrics.csv'}, summary.json, overlays/")
        write_text_atomic(out / "metrics.csv", _metrics_csv(rows))
        overlays = []
        for i, (name, image, label) in enumerate(test_cases):
            dice = per_case("clean", lesion)[name]
            overlays.append(
                save_triplanar(
                    out / "overlays" / f"{name}_prediction.png",
                    image,
                    image.with_array(clean[name]),
                    window="lung",
                    title=f"{name}: prediction after clean-up (lesion Dice {dice:.3f})",
                    label_names=LABELS,
                )
            )
            if i == 0:
                overlays.append(
                    save_triplanar(
                        out / "overlays" / f"{name}_reference.png",
                        image,
                        label,
                        window="lung",
                        title=f"{name}: reference",
                        label_names=LABELS,
                    )
                )
        timings["report_s"] = time.perf_counter() - t0
        timings["total_s"] = time.perf_counter() - started

        means = {stage: _means(rows, stage) for stage in ("raw", "clean")}
        summary: dict[str, Any] = {
            "out_dir": str(out),
            "seed": seed,
            "dataset": {
                "path": str(dataset_json),
                "training_cases": n_train,
                "test_cases": n_test,
                "shape_zyx": [int(n) for n in shape],
                "spacing_zyx_mm": [float(s) for s in spacing],
                "labels": {str(k): v for k, v in LABELS.items()},
            },
            "preprocess": {"ct_normalization": norm.to_dict()},
            "training": {
                "model": f"UNet3D(widths={list(widths)})",
                "loss": "Dice + cross-entropy",
                "patch_size_zyx": [int(p) for p in patch_size],
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "budget_minutes": minutes,
                "iterations": result.iterations,
                "seconds": round(result.seconds, 2),
                "final_loss": _finite_or_none(result.final_loss),
                "threads": torch.get_num_threads(),
            },
            "postprocess": {
                "min_component_mm3": {LABELS[k]: v for k, v in MIN_COMPONENT_MM3.items()}
            },
            "metrics_mean": means,
            "comparisons": {k: v.to_dict() for k, v in comparisons.items()},
            "timings_s": {k: round(v, 2) for k, v in timings.items()},
            "files": {
                "metrics_csv": str(out / "metrics.csv"),
                "summary_json": str(out / "summary.json"),
                "model": str(out / "model.pt"),
                "predictions": str(out / "predictions"),
                "overlays": [str(p) for p in overlays],
            },
            "environment": {"python": platform.python_version(), "torch": torch.__version__},
        }
        write_text_atomic(
            out / "summary.json", json.dumps(summary, indent=2, allow_nan=False, default=str) + "\n"
        )
    finally:
        torch.set_num_threads(previous_threads)

    headline = {name: v["dice"] for name, v in means["clean"].items()}
    lesion_cmp = comparisons["lesion_dice"]
    say("")
    say(
        f"fastseg demo finished in {_clock(timings['total_s'])} (training {_clock(result.seconds)}, {result.iterations} iterations)"
    )
    say(
        f"  Dice on {n_test} held-out phantoms after clean-up: "
        + ", ".join(f"{k} {v:.3f}" for k, v in headline.items())
    )
    raw_lesion = means["raw"].get("lesion", {}).get("dice")
    say(
        f"  lesion Dice raw {raw_lesion:.3f} → clean {headline.get('lesion', math.nan):.3f}: "
        f"{lesion_cmp.test}, p = {lesion_cmp.pvalue:.3g}"
    )
    say(f"  results: {out}  (metrics.csv, summary.json, overlays/, predictions/, model.pt)")
    return summary
