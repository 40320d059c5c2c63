"""evaluate_batch(): many prediction/reference pairs, computed in parallel by the native core."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastseg import _native
from fastseg.errors import InputError
from fastseg.metrics import _inputs
from fastseg.metrics._evaluate import METRICS, LabelRow, prepare_pair, rows_from_native

COLUMNS = ("case", "label", *METRICS, "pred_voxels", "ref_voxels", "empty")


def _load(x: Any) -> Any:
    if isinstance(x, (str, os.PathLike)):
        from fastseg.io import read

        return read(x)
    return x


def _case_name(index: int, pred: Any) -> str:
    if isinstance(pred, (str, os.PathLike)):
        name = Path(pred).name
        for suffix in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr"):
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return name
    return str(index)


@contextmanager
def _threads(workers: int | None) -> Iterator[None]:
    if workers is None:
        yield
        return
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers: expected a positive integer or None, got {workers!r}")
    before = int(_native.build_info()["openmp_threads"])
    _native.set_num_threads(workers)
    try:
        yield
    finally:
        _native.set_num_threads(before)


def evaluate_batch(
    pairs: Sequence[tuple[Any, Any]] | Mapping[str, tuple[Any, Any]],
    workers: int | None = None,
    labels: Iterable[int] | None = None,
    spacing: Any = None,
    hd95: str = "max_directed",
    nsd_tolerance: float | None = 1.0,
    chunk: int | None = None,
    progress: bool = False,
    device: str = "cpu",
) -> list[LabelRow]:
    """:func:`evaluate` over many pairs; one row per case and label.

    Parameters
    ----------
    pairs : sequence of ``(pred, ref)``, or mapping ``case -> (pred, ref)``; each item an array
        ``(z, y, x)``, a ``fastseg.io.Volume`` or a path that ``fastseg.io.read`` opens. Case names
        are the mapping keys, else the prediction's file name without extension, else the index.
    workers : OpenMP threads (default: all); pairs are spread over them.
    labels, spacing, hd95, nsd_tolerance : as in :func:`evaluate` (spacing for array pairs).
    chunk : pairs loaded and computed at a time (default 8 per thread), bounding memory.
    progress : show a progress bar (tqdm).
    device : ``"cpu"`` (the native engine, OpenMP across pairs) or ``"cuda"``/``"cuda:N"``: each
        pair is computed on that GPU with tensor operations (:mod:`fastseg.metrics._device`,
        the same numbers); pairs may then also be CUDA tensors (with ``spacing``).

    Returns
    -------
    list of dicts with keys ``COLUMNS`` = case, label, dice, jaccard, hd, hd95, avd, assd, vs, nsd,
    pred_voxels, ref_voxels, empty; in case order, labels ascending (or as requested).
    """
    items: list[tuple[str, Any, Any]]
    if isinstance(pairs, Mapping):
        items = [(str(k), *_pair(v, str(k))) for k, v in pairs.items()]
    else:
        items = [
            (_case_name(i, v[0] if _is_pair(v) else None), *_pair(v, str(i)))
            for i, v in enumerate(pairs)
        ]
    wanted = _inputs.label_list(labels)
    convention = _inputs.hd95_convention(hd95)
    tol = _inputs.tolerance(nsd_tolerance)
    compute = _native.label_metrics_batch if device == "cpu" else _on_device(device)
    rows: list[LabelRow] = []
    with _threads(workers):
        threads = int(_native.build_info()["openmp_threads"])
        step = chunk if chunk is not None else 8 * threads
        if step < 1:
            raise InputError(f"chunk: expected a positive integer, got {chunk!r}")
        bar = _progress_bar(len(items)) if progress else None
        try:
            for start in range(0, len(items), step):
                part = items[start : start + step]
                arrays, spacings = [], []
                for case, pred, ref in part:
                    if device != "cpu" and _is_tensor_pair(pred, ref):
                        p, r, sp = _tensor_pair(pred, ref, spacing, case)
                    else:
                        p, r, sp = prepare_pair(
                            _load(pred), _load(ref), spacing, f"{case}: pred", f"{case}: ref"
                        )
                    arrays.append((p, r))
                    spacings.append(sp)
                results = compute(arrays, spacings, wanted, convention, tol)
                for (case, _, _), result in zip(part, results, strict=True):
                    for label, row in rows_from_native(result).items():
                        rows.append({"case": case, "label": label, **row})
                if bar is not None:
                    bar.update(len(part))
        finally:
            if bar is not None:
                bar.close()
    return rows


def _on_device(device: str) -> Any:
    """``label_metrics_batch`` computed on a CUDA device (the label boxes in stacks)."""
    import re

    import torch

    from fastseg.metrics._device import pairs_metrics

    if not isinstance(device, str) or not re.fullmatch(r"cuda(:\d+)?", device):
        raise InputError(f"device: expected cpu, cuda or cuda:N, got {device!r}")
    if not torch.cuda.is_available():
        raise InputError(f"device: {device!r} requested but CUDA is not available")

    def compute(
        pairs: Sequence[tuple[Any, Any]],
        spacings: Sequence[tuple[float, float, float]],
        labels: list[int] | None,
        hd95: str,
        tolerance: float,
    ) -> list[dict[str, Any]]:
        return pairs_metrics(pairs, spacings, labels, hd95, tolerance, device)

    return compute


def _is_tensor_pair(pred: Any, ref: Any) -> bool:
    return type(pred).__module__.startswith("torch") and type(ref).__module__.startswith("torch")


def _tensor_pair(
    pred: Any, ref: Any, spacing: Any, case: str
) -> tuple[Any, Any, tuple[float, float, float]]:
    """A pair of torch label maps, checked: integer or bool ``(z, y, x)`` of one shape."""
    for name, t in (("pred", pred), ("ref", ref)):
        if t.dim() != 3 or t.dtype.is_floating_point or t.dtype.is_complex:
            raise InputError(
                f"{case}: {name}: expected an integer (z, y, x) label map, got a {t.dim()}D "
                f"{t.dtype} tensor"
            )
    _inputs.check_shapes(pred, ref, f"{case}: pred", f"{case}: ref")
    return pred, ref, _inputs.spacing3(spacing if spacing is not None else (1.0, 1.0, 1.0))


def _is_pair(v: Any) -> bool:
    return isinstance(v, (tuple, list)) and len(v) == 2


def _pair(v: Any, where: str) -> tuple[Any, Any]:
    if not _is_pair(v):
        raise InputError(f"pairs[{where}]: expected a (pred, ref) pair, got {type(v).__name__}")
    return v[0], v[1]


def _progress_bar(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="pair", desc="evaluate")
