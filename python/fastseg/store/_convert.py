"""``convert(src, dst)``: a source folder to a fastseg store, in parallel, resumable.

Two passes, as nnU-Net plans and preprocesses: (1) a fingerprint of every case (spacing, shape
after cropping, sampled foreground intensities) from which the plan follows (target spacing =
median spacing unless given; CT clip window and z-score statistics from the pooled foreground);
the plan is stored in the root attributes before (2) each case is preprocessed and written.
A re-run reuses the stored plan and converts only the cases that are not complete, so a killed
conversion followed by a re-run gives the same store as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

import fastseg
from fastseg.errors import InputError
from fastseg.store import _schema as sc
from fastseg.store._backend import Backend, backend_for
from fastseg.store._pipeline import convert_task, fingerprint_task
from fastseg.store._reader import _case_attrs, _json
from fastseg.store._report import ConversionReport
from fastseg.store._sources import CaseSource, DatasetSource, discover, relative, sha256_of

_MODALITIES = ("ct", "mr")


def _bias_params(bias_field: bool | dict[str, Any]) -> dict[str, Any] | None:
    from fastseg.preprocess._bias_field import N4_DEFAULTS

    if bias_field is False or bias_field is None:
        return None
    params = dict(N4_DEFAULTS)
    if isinstance(bias_field, dict):
        unknown = set(bias_field) - set(params)
        if unknown:
            raise InputError(
                f"bias_field: unknown N4 parameter(s) {sorted(unknown)}; known: {sorted(params)}"
            )
        params.update(bias_field)
    params["iterations"] = [int(i) for i in params["iterations"]]
    return params


def _spacing_arg(spacing: Sequence[float] | None) -> list[float] | None:
    if spacing is None:
        return None
    s = [float(v) for v in spacing]
    if len(s) != 3 or not all(np.isfinite(s)) or min(s) <= 0:
        raise InputError(f"spacing: expected 3 positive millimetres (z, y, x), got {spacing!r}")
    return s


def _map(
    fn: Callable[..., dict[str, Any]],
    items: list[tuple[Any, ...]],
    *,
    workers: int,
    scheduler: Any,
    in_process: bool,
    desc: str,
    progress: bool,
) -> Generator[dict[str, Any], None, None]:
    """Run ``fn(*item)`` for every item, yielding results as they finish, with a progress bar
    (cases/s, ETA). Dask cluster when ``scheduler`` is given, else a process pool (spawned
    workers), else in this process."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(items), desc=desc, unit="case", disable=not progress, smoothing=0.1)
    results = _results(fn, items, workers=workers, scheduler=scheduler, in_process=in_process)
    try:
        with closing(results):  # stops the workers now when the consumer stops early
            for result in results:
                bar.update(1)
                yield result
    finally:
        bar.close()


def _results(
    fn: Callable[..., dict[str, Any]],
    items: list[tuple[Any, ...]],
    *,
    workers: int,
    scheduler: Any,
    in_process: bool,
) -> Generator[dict[str, Any], None, None]:
    if not items:
        return
    if scheduler is not None:
        yield from _dask_results(fn, items, scheduler)
        return
    if in_process or workers <= 1 or len(items) == 1:
        for item in items:
            yield fn(*item)
        return
    import multiprocessing
    from concurrent.futures import as_completed

    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(items)), mp_context=ctx, initializer=_ignore_sigint
    )
    try:
        futures = {pool.submit(fn, *item): item for item in items}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as exc:  # the worker died (e.g. killed for memory)
                yield _lost(futures[fut], exc)
    except BaseException:  # Ctrl-C, or the consumer stopped early: stop now, not after the queue
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _ignore_sigint() -> None:
    """Worker initializer: Ctrl-C reaches the whole process group, but only the parent handles
    it (by terminating the workers); a worker would otherwise report it as a task result and
    take the next queued case."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued tasks of a process pool and terminate its workers; cases being written
    stay incomplete (invisible to readers), so a re-run converts them."""
    processes = list((pool._processes or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        proc.terminate()
    for proc in processes:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout=10)
    pool.shutdown(wait=True)


def _lost(item: tuple[Any, ...], exc: BaseException) -> dict[str, Any]:
    """The result of a task whose worker process died (the task itself reports bad input)."""
    return {
        "case_id": item[0].case_id,
        "ok": False,
        "error": f"worker died before finishing this case ({type(exc).__name__}: {exc}); "
        "re-run to retry",
    }


def _dask_results(
    fn: Callable[..., dict[str, Any]], items: list[tuple[Any, ...]], scheduler: Any
) -> Generator[dict[str, Any], None, None]:
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise InputError(
            "scheduler: running on a Dask cluster needs dask.distributed "
            "(pip install 'fastseg[dask]')"
        ) from exc
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    futures = {client.submit(fn, *item, pure=False): item for item in items}
    try:
        for fut in as_completed(list(futures)):
            try:
                yield fut.result()
            except Exception as exc:  # KilledWorker, lost connection, ...
                yield _lost(futures[fut], exc)
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        if own:
            client.close()


def _check_apart(src: Path, backend: Backend) -> None:
    """Refuse a destination that is the source folder, lies inside it or contains it (local
    paths resolved, links followed; fsspec URLs compared as strings)."""
    src = src.resolve()
    if backend.local_root is not None:
        dst = backend.local_root.resolve()
        overlap = dst == src or src in dst.parents or dst in src.parents
    else:
        url = backend.url.rstrip("/")
        overlap = any(
            url == s or url.startswith(f"{s}/") or s.startswith(f"{url}/")
            for s in (src.as_posix(), src.as_uri())
        )
    if overlap:
        raise InputError(
            f"{backend.url}: the destination is the source folder {src}, inside it or contains "
            "it; choose a destination outside the source"
        )


def _existing_root(backend: Backend, overwrite: bool) -> dict[str, Any] | None:
    """The dataset attributes of the fastseg store at the destination (None: start a new one).

    With ``overwrite`` an existing fastseg store (or the leftovers of a conversion that stopped
    before writing its plan) is deleted; anything else that is not empty is refused, never
    deleted."""
    doc = _json(backend, "zarr.json")
    attrs = None if doc is None else doc.get("attributes", {}).get(sc.ATTRS_KEY)
    is_store = isinstance(attrs, dict) and ("plan" in attrs or "schema_version" in attrs)
    entries = backend.list_dir("")
    if backend.local_root is not None and backend.local_root.exists():
        if not backend.local_root.is_dir():
            raise InputError(f"{backend.url}: exists and is not a folder; choose a new destination")
    leftover = (  # nothing, or what a conversion writes before its plan
        set(entries) <= {"zarr.json", sc.CASES}
        and set(backend.list_dir(sc.CASES)) <= {"zarr.json"}
        and ("zarr.json" not in entries or doc is not None)
    )
    if overwrite:
        if not is_store and not leftover:
            raise InputError(
                f"{backend.url}: not a fastseg store and not empty; overwrite replaces only a "
                "fastseg store, so nothing was deleted: choose another destination or empty it"
            )
        if entries:
            backend.delete_prefix("")
        return None
    if doc is None:
        if entries:
            raise InputError(
                f"{backend.url}: exists and is not a Zarr store; choose a new destination"
            )
        return None
    if not isinstance(attrs, dict) or "plan" not in attrs:
        if any(n not in ("zarr.json", sc.CASES) for n in entries):
            raise InputError(
                f"{backend.url}: a Zarr group that is not a fastseg store; choose a new destination"
            )
        return None
    sc.check_schema(attrs, backend.url)
    return attrs


def _source_record(dataset: DatasetSource) -> dict[str, Any]:
    """What a store records of its source (no paths): layout, channels, declared modalities and
    labels. A resume must find the same."""
    labels = dataset.label_names
    record = {
        "kind": dataset.kind,
        "channel_names": list(dataset.channel_names),
        "modalities": list(dataset.modalities),
        "label_names": None if labels is None else {str(k): v for k, v in labels.items()},
    }
    loaded: dict[str, Any] = json.loads(json.dumps(record))
    return loaded


def _check_same_source(attrs: dict[str, Any], dataset: DatasetSource, url: str) -> None:
    """Refuse to resume a store with a source of another layout, channels, modalities or
    labels (stores from before these were recorded: layout, channels and labels)."""
    recorded = dict(attrs.get("source") or {})
    recorded.setdefault("channel_names", attrs.get("channel_names"))
    if "label_names" not in recorded:
        has_labels = attrs.get("plan", {}).get("label_values") is not None
        recorded["label_names"] = attrs.get("label_names") if has_labels else None
    mine = _source_record(dataset)
    diffs = [
        f"{key} {recorded.get(key)!r} (store) vs {mine[key]!r} (source)"
        for key in ("kind", "channel_names", "modalities", "label_names")
        if key in recorded and recorded[key] != mine[key]
    ]
    if diffs:
        raise InputError(
            f"{url}: this store was made from a different source ({'; '.join(diffs)}); choose "
            "another destination, or overwrite=True (--overwrite) to replace the store"
        )


def _check_unchanged(
    cases: list[CaseSource], complete: dict[str, dict[str, Any]], url: str, threads: int
) -> None:
    """Re-hash the source files of the cases already complete in the store; refuse (naming the
    cases) when any differ from the files and SHA-256 recorded at conversion."""
    from concurrent.futures import ThreadPoolExecutor

    def current(case: CaseSource) -> list[list[str]]:
        return [[relative(p, case.root), sha256_of(p)] for p in case.files()]

    mine = [c for c in cases if c.case_id in complete]
    pool = ThreadPoolExecutor(max_workers=max(1, min(threads, 8)))
    try:
        hashes = list(pool.map(current, mine))
    except BaseException:  # Ctrl-C: do not hash the rest of the dataset first
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    changed = []
    for case, now in zip(mine, hashes, strict=True):
        files = complete[case.case_id].get("source", {}).get("files", [])
        if now != [[f.get("path"), f.get("sha256")] for f in files]:
            changed.append(case.case_id)
    if changed:
        raise InputError(
            f"{url}: the source files of already converted case(s) {changed} changed since "
            "they were converted; choose another destination, or overwrite=True (--overwrite) "
            "to convert the dataset again"
        )


def _complete_cases(backend: Backend) -> dict[str, dict[str, Any]]:
    """Case id -> attributes of every complete case in the store."""
    names = [n for n in backend.list_dir(sc.CASES) if n != "zarr.json"]
    docs = backend.get_many([f"{sc.CASES}/{n}/zarr.json" for n in names])
    done = {}
    for name, blob in zip(names, docs, strict=True):
        try:
            doc = json.loads(blob) if blob is not None else None
        except ValueError:
            continue
        attrs = _case_attrs(doc) if isinstance(doc, dict) else None
        if attrs is not None:
            done[name] = attrs
    return done


def _stats(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {}
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "median": float(np.median(values)),
        "min": float(values.min()),
        "max": float(values.max()),
        "percentile_00_5": float(np.percentile(values, 0.5)),
        "percentile_99_5": float(np.percentile(values, 99.5)),
    }


def _fingerprint(results: list[dict[str, Any]], n_channels: int) -> dict[str, Any]:
    results = sorted(results, key=lambda r: r["case_id"])
    spacings = np.array([r["spacing"] for r in results], dtype=np.float64)
    shapes = np.array([r["shape"] for r in results], dtype=np.float64)
    intensity = []
    for c in range(n_channels):
        pooled = np.concatenate([r["samples"][c] for r in results])
        intensity.append(_stats(pooled))
    return {
        "n_cases": len(results),
        "median_spacing": [float(v) for v in np.median(spacings, axis=0)],
        "median_shape_after_crop": [float(v) for v in np.median(shapes, axis=0)],
        "foreground_intensity": intensity,
        "cases": {
            r["case_id"]: {
                "spacing": [float(v) for v in r["spacing"]],
                "shape_after_crop": r["shape"],
            }
            for r in results
        },
    }


def _modalities(
    dataset: DatasetSource, modality: str | None, results: list[dict[str, Any]]
) -> list[str]:
    n = len(dataset.channel_names)
    if modality is not None:
        return [modality] * n
    out = []
    dicom = {str(r.get("dicom_modality") or "").upper() for r in results}
    for known in dataset.modalities:
        if known is not None:
            out.append(known)
        elif dicom == {"CT"}:
            out.append("ct")
        else:
            out.append("mr")
    return out


def _plan(
    dataset: DatasetSource,
    results: list[dict[str, Any]],
    request: dict[str, Any],
    storage: sc.StorageOptions,
) -> dict[str, Any]:
    from fastseg.preprocess._resample import ANISOTROPY_THRESHOLD

    n = len(dataset.channel_names)
    fingerprint = _fingerprint(results, n)
    modalities = _modalities(dataset, request["modality"], results)
    target = request["spacing"] or fingerprint["median_spacing"]
    normalization: list[dict[str, Any]] = []
    for c, mod in enumerate(modalities):
        fi = fingerprint["foreground_intensity"][c]
        if mod == "ct":
            normalization.append({
                "channel": c, "scheme": "ct", "lo": fi["percentile_00_5"],
                "hi": fi["percentile_99_5"], "mean": fi["mean"], "std": max(fi["std"], 1e-8),
                "statistics": "dataset foreground (label > 0), unclipped mean/std as nnU-Net",
            })  # fmt: skip
        else:
            normalization.append({"channel": c, "scheme": "zscore", "statistics": "per image"})
    if dataset.label_names is not None:
        label_names = {str(k): v for k, v in dataset.label_names.items()}
        label_values: list[int] | None = sorted(dataset.label_names)
    else:
        seen = sorted({c for r in results for c in r["classes"]})
        label_names = {"0": "background", **{str(c): f"class_{c}" for c in seen}}
        label_values = None
    modality_all = modalities[0] if len(set(modalities)) == 1 else "mixed"
    preprocessing = {
        "orientation": "RAS",
        "crop": "bounding box of non-zero voxels of any image channel or the label",
        "target_spacing": [float(v) for v in target],
        "target_spacing_rule": "given" if request["spacing"] else "median of case spacings",
        "resampling": {
            "image_order": 3,
            "label": "per-class linear one-hot, argmax (no new classes)",
            "anisotropy_threshold": ANISOTROPY_THRESHOLD,
            "order_separate_axis": 0,
            "grid": "outer voxel edges aligned (grid_mode)",
        },
        "modalities": modalities,
        "channel_alignment": request["register"] or "world",
        "normalization": normalization,
        "normalized_on_read": True,
        "image_storage": "source units and dtype on the stored grid (interpolated integers rounded)",
        "bias_field": request["bias_field"],
        "padding": {"image": "per-case channel minimum", "label": 0},
        "foreground_samples": {
            "per_class": sc.FOREGROUND_SAMPLES,
            "min_fraction": sc.FOREGROUND_MIN_FRACTION,
        },
    }
    return {
        "schema_version": sc.SCHEMA_VERSION,
        "fastseg_version": fastseg.__version__,
        "modality": modality_all,
        "channel_names": dataset.channel_names,
        "label_names": label_names,
        "preprocessing": preprocessing,
        "fingerprint": fingerprint,
        "storage": storage.to_dict(),
        "source": _source_record(dataset),
        "request": request,
        "plan": {
            "preprocessing": preprocessing,
            "storage": storage.to_dict(),
            "label_values": label_values,
        },
    }


def _put_group(backend: Backend, prefix: str, attributes: dict[str, Any]) -> None:
    """Write a Zarr v3 group metadata document in one atomic object write."""
    from fastseg.store._pipeline import _jsonable

    doc = {"zarr_format": 3, "node_type": "group", "attributes": _jsonable(attributes)}
    key = f"{prefix}/zarr.json" if prefix else "zarr.json"
    backend.put(key, json.dumps(doc, indent=1, allow_nan=False).encode())


def _write_root(backend: Backend, attrs: dict[str, Any]) -> None:
    _put_group(backend, sc.CASES, {})
    _put_group(backend, "", {sc.ATTRS_KEY: attrs})


def _write_report(backend: Backend, report: ConversionReport) -> None:
    _put_group(backend, sc.REPORT, {sc.REPORT_KEY: report.to_dict(anonymous=True)})


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    spacing: Sequence[float] | None = None,
    modality: str | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    progress: bool = True,
    bias_field: bool | dict[str, Any] = False,
    storage: sc.StorageOptions | None = None,
    register: str | None = None,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert ``src`` (MSD/nnU-Net folder, folder of images, DICOM series) into a store at
    ``dst`` (a folder or an fsspec URL) and return the :class:`ConversionReport`.

    Parameters
    ----------
    spacing : target spacing (z, y, x) in mm; default the median spacing of the dataset.
    modality : "ct" or "mr" for every channel; default from dataset.json / DICOM, else "mr".
    workers : local worker processes (default: all CPUs; 1 runs in this process). Stores
        that other processes cannot see (``memory://``) always convert in this process.
    scheduler : a Dask scheduler address, ``distributed.Client`` or cluster: run the same
        per-case tasks there instead (the store URL must be reachable from the workers).
    bias_field : N4 bias-field correction of MR channels (True, or a dict of N4 parameters).
    storage : chunking and codec (default :class:`StorageOptions`).
    register : for multi-channel cases whose channels are not on one grid: None resamples
        them onto the first channel's grid by world position; "rigid" or "affine" registers
        them to it first (SimpleITK, mutual information).
    overwrite : replace the fastseg store at ``dst``. Only a fastseg store is deleted: a
        destination that holds anything else is refused (InputError), as is, always, a
        destination that is the source folder, lies inside it or contains it.
        Without ``overwrite`` an existing store is resumed: the same request (spacing,
        modality, bias_field, storage, register) and the same kind of source (layout, channel
        names, declared modalities, labels) are required, else InputError. The source files of
        cases already complete are hashed again and compared with the SHA-256 recorded in
        the store: a changed case is an InputError naming it (it is not reconverted, as the
        plan was made from the old data). New cases of the source are converted with the
        stored plan; only cases that are not complete are converted.

    Bad cases are listed in ``report.failed`` (the other cases still convert); the report is
    also written into the store (group ``conversion_report``). On KeyboardInterrupt (Ctrl-C) the
    queued cases are cancelled and the worker processes terminated before it propagates; cases
    being written stay incomplete, and a re-run converts them.
    """
    t0 = time.perf_counter()
    if modality is not None and modality not in _MODALITIES:
        raise InputError(f"modality: expected one of {_MODALITIES} or None, got {modality!r}")
    storage = storage or sc.StorageOptions()
    if register not in (None, "rigid", "affine"):
        raise InputError(f"register: expected None, 'rigid' or 'affine', got {register!r}")
    request = {
        "spacing": _spacing_arg(spacing),
        "modality": modality,
        "bias_field": _bias_params(bias_field),
        "storage": storage.to_dict(),
        "register": register,
    }
    n_workers = int(workers) if workers is not None else (os.cpu_count() or 1)
    if n_workers < 1:
        raise InputError(f"workers: expected >= 1, got {workers}")
    dataset = discover(src)
    backend = backend_for(dst)
    in_process = not backend.shared_between_processes
    report = ConversionReport(source=str(dataset.root), destination=backend.url)
    report.failed.update(dataset.problems)
    run = {
        "workers": n_workers,
        "scheduler": scheduler,
        "in_process": in_process,
        "progress": progress,
    }

    _check_apart(dataset.root, backend)
    attrs = _existing_root(backend, overwrite)
    if attrs is not None:
        if attrs["request"] != json.loads(json.dumps(request)):
            raise InputError(
                f"{backend.url}: this store was made with {attrs['request']}, not {request}; "
                "re-run with the same options, or choose a new destination / overwrite=True"
            )
        _check_same_source(attrs, dataset, backend.url)
    else:
        label_values = sorted(dataset.label_names) if dataset.label_names is not None else None
        alignment = register or "world"
        items: list[tuple[Any, ...]] = [(c, label_values, alignment) for c in dataset.cases]
        ok = []
        with closing(_map(fingerprint_task, items, desc="fingerprint", **run)) as results:
            for res in results:
                if res["ok"]:
                    ok.append(res)
                else:
                    report.failed[res["case_id"]] = res["error"]
        if not ok:
            report.elapsed_s = time.perf_counter() - t0
            return report
        attrs = _plan(dataset, ok, request, storage)
        _write_root(backend, attrs)

    plan = attrs["plan"]
    done = _complete_cases(backend)
    _check_unchanged(dataset.cases, done, backend.url, n_workers)
    todo: list[CaseSource] = []
    for case in dataset.cases:
        if case.case_id in done:
            report.skipped.append(case.case_id)
        elif case.case_id not in report.failed:
            todo.append(case)
    url = backend.url if backend.local_root is None else os.fspath(backend.local_root)
    tasks = [(c, plan, url) for c in todo]
    with closing(_map(convert_task, tasks, desc="convert", **run)) as results:
        for res in results:
            if res["ok"]:
                report.converted.append(res["case_id"])
                report.source_bytes += int(res["source_bytes"])
            else:
                report.failed[res["case_id"]] = res["error"]
    report.converted.sort()
    report.skipped.sort()
    report.failed = dict(sorted(report.failed.items()))
    report.elapsed_s = time.perf_counter() - t0
    _write_report(backend, report)
    return report
