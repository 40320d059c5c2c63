"""evaluate_folders(): ``fastseg evaluate`` — predictions and references matched by file name."""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastseg._atomic import write_text_atomic
from fastseg.errors import InputError
from fastseg.metrics._batch import COLUMNS, evaluate_batch
from fastseg.metrics._evaluate import LabelRow

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")


def case_name(path: Path) -> str | None:
    """Case id of an image file (its name without the image suffix), or None for other files."""
    for suffix in IMAGE_SUFFIXES:
        if path.name.endswith(suffix) and not path.name.startswith("."):
            return path.name[: -len(suffix)]
    return None


def _images(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputError(f"--{role} {folder}: not a folder")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        name = case_name(path)
        if name is None:
            continue
        if name in found:
            raise InputError(
                f"--{role} {folder}: case {name!r} is there twice ({found[name].name}, {path.name})"
            )
        found[name] = path
    if not found:
        raise InputError(f"--{role} {folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return found


def match_folders(
    pred_dir: str | os.PathLike[str], ref_dir: str | os.PathLike[str]
) -> tuple[dict[str, tuple[Path, Path]], list[str], list[str]]:
    """``({case: (pred, ref)}, missing, extra)``: cases with a reference but no prediction are
    ``missing``; predictions without a reference are ``extra``."""
    preds, refs = _images(Path(pred_dir), "pred"), _images(Path(ref_dir), "ref")
    pairs = {case: (preds[case], refs[case]) for case in refs if case in preds}
    missing = sorted(set(refs) - set(preds))
    extra = sorted(set(preds) - set(refs))
    return pairs, missing, extra


def _read_pair(item: tuple[str, tuple[Path, Path]]) -> tuple[str, tuple[Any, Any]]:
    from fastseg.io import read

    case, (pred, ref) = item
    return case, (read(pred), read(ref))


def _evaluate_chunk(
    chunk: list[tuple[str, tuple[Path, Path]]], options: dict[str, Any]
) -> list[LabelRow]:
    """Read a chunk of file pairs (threads: decompression releases the GIL), then compute them
    natively across pairs. Runs locally or as one Dask task."""
    with ThreadPoolExecutor(max_workers=min(8, len(chunk))) as pool:
        loaded = dict(pool.map(_read_pair, chunk))
    return evaluate_batch(loaded, **options)


def evaluate_folders(
    pred_dir: str | os.PathLike[str],
    ref_dir: str | os.PathLike[str],
    out_csv: str | os.PathLike[str] | None = None,
    *,
    labels: Iterable[int] | None = None,
    workers: int | None = None,
    hd95: str = "max_directed",
    nsd_tolerance: float | None = 1.0,
    allow_missing: bool = False,
    scheduler: Any = None,
    chunk: int = 32,
    progress: bool = True,
    device: str = "cpu",
) -> list[LabelRow]:
    """Evaluate every prediction in ``pred_dir`` against the reference of the same name in ``ref_dir``.

    Spacing comes from each file's header; a prediction whose grid differs from its reference
    is an error naming both files. Missing predictions are an error listing them (unless
    ``allow_missing``, then they are left out and reported); extra predictions are reported.
    The CSV (columns ``COLUMNS``) is written only when every pair succeeded, through a temporary
    file, so a failed or interrupted run leaves no partial table. ``scheduler``: address of a
    Dask scheduler (or a ``distributed.Client``) to spread chunks of pairs over. ``device``:
    ``cpu`` or ``cuda``/``cuda:N`` (see :func:`evaluate_batch`).
    """
    pairs, missing, extra = match_folders(pred_dir, ref_dir)
    if missing and not allow_missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise InputError(
            f"--pred {pred_dir}: no prediction for {len(missing)} reference case(s): {shown}"
        )
    if not pairs:
        raise InputError(f"--pred {pred_dir}: no prediction matches a reference in {ref_dir}")
    for note in _match_notes(missing, extra):
        print(f"fastseg evaluate: {note}")
    if chunk < 1:
        raise InputError(f"chunk: expected a positive integer, got {chunk!r}")
    items = sorted(pairs.items())
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    options = {"labels": labels, "hd95": hd95, "nsd_tolerance": nsd_tolerance, "device": device}
    if scheduler is not None:
        rows = _run_dask(chunks, options, scheduler)
    else:
        rows = _run_local(chunks, {**options, "workers": workers}, progress)
    if out_csv is not None:
        write_text_atomic(out_csv, rows_to_csv(rows))
    return rows


def _match_notes(missing: Sequence[str], extra: Sequence[str]) -> list[str]:
    notes = []
    if missing:
        notes.append(
            f"{len(missing)} reference case(s) without a prediction left out: {', '.join(missing)}"
        )
    if extra:
        notes.append(f"{len(extra)} prediction(s) without a reference ignored: {', '.join(extra)}")
    return notes


def _run_local(
    chunks: list[list[tuple[str, tuple[Path, Path]]]], options: dict[str, Any], progress: bool
) -> list[LabelRow]:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(c) for c in chunks), unit="pair", desc="evaluate")
    rows: list[LabelRow] = []
    try:
        for part in chunks:
            rows.extend(_evaluate_chunk(part, options))
            if bar is not None:
                bar.update(len(part))
    finally:
        if bar is not None:
            bar.close()
    return rows


def _run_dask(
    chunks: list[list[tuple[str, tuple[Path, Path]]]], options: dict[str, Any], scheduler: Any
) -> list[LabelRow]:
    try:
        from distributed import Client
    except ImportError:
        raise InputError(
            "--scheduler needs dask.distributed: pip install 'fastseg[dask]'"
        ) from None
    client = scheduler if isinstance(scheduler, Client) else Client(scheduler)
    try:
        futures = client.map(_evaluate_chunk, chunks, options=options, pure=False)
        return [row for part in client.gather(futures) for row in part]
    finally:
        if client is not scheduler:
            client.close()


def rows_to_csv(rows: Sequence[LabelRow]) -> str:
    """The metric table as CSV text: one row per case and label, columns ``COLUMNS``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def summarize(
    rows: Sequence[LabelRow], metrics: Sequence[str] = ("dice", "hd95", "avd", "vs")
) -> dict[int, dict[str, dict[str, float]]]:
    """Per label and metric: mean, std (sample) and median over the finite values, and the
    number of cases whose value was infinite (an empty mask on one side)."""
    summary: dict[int, dict[str, dict[str, float]]] = {}
    for label in sorted({int(r["label"]) for r in rows}):
        per_metric = {}
        for metric in metrics:
            values = [float(r[metric]) for r in rows if int(r["label"]) == label]
            finite = [v for v in values if math.isfinite(v)]
            per_metric[metric] = {
                "mean": statistics.fmean(finite) if finite else math.nan,
                "std": statistics.stdev(finite) if len(finite) > 1 else math.nan,
                "median": statistics.median(finite) if finite else math.nan,
                "n": float(len(finite)),
                "n_infinite": float(len(values) - len(finite)),
            }
        summary[label] = per_metric
    return summary


def format_summary(summary: dict[int, dict[str, dict[str, float]]]) -> str:
    """The summary as a small text table."""
    lines = [f"{'label':>5} {'metric':<6} {'mean':>9} {'std':>9} {'median':>9} {'n':>5} {'inf':>4}"]
    for label, per_metric in summary.items():
        for metric, s in per_metric.items():
            lines.append(
                f"{label:>5} {metric:<6} {s['mean']:>9.4f} {s['std']:>9.4f} {s['median']:>9.4f} "
                f"{int(s['n']):>5} {int(s['n_infinite']):>4}"
            )
    return "\n".join(lines)
