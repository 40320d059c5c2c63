"""``fastseg predict``: a trained run's model applied to new scans, a folder or a store.

Each scan gets the training preprocessing recorded in the run (``run.json["store"]["plan"]``,
through :func:`fastseg.store._preprocess.preprocess`, the converter's own code), sliding-window
inference with the run's patch size, optional mirror TTA, and the result goes back to the
scan's original grid and geometry (:func:`fastseg.store._preprocess.restore`), where the run's
post-processing plan (``RUN/postprocessing.json``) is applied.

Outputs (existing files are overwritten; every file is written atomically):

- ``OUTPUT/<name><ext>``: the label map (uint8/uint16), ``<name>`` the input file name minus an
  nnU-Net channel suffix ``_0000``; ``<ext>`` the input's extension for ``.nii``, ``.nii.gz``,
  ``.mha``, ``.nrrd``, else ``.nii.gz``. A store's cases are written as ``<case_id>.nii.gz``.
- ``OUTPUT/<name>_probabilities.npz`` (``probabilities=True`` or ``"npz"``): ``probabilities``
  ``(K, z, y, x)`` float32 softmax on the original grid (linear resampling, renormalised),
  ``affine`` (4, 4) the voxel-to-RAS+ mm matrix of ``(z, y, x)`` indices, ``spacing`` ``(z, y, x)``
  mm (nnU-Net's choice of format).
- ``OUTPUT/<name>_probabilities.nii.gz`` (``probabilities="nifti"``): the same probabilities as a
  4D NIfTI image, class k the 4th index, on the label map's geometry (for viewers; MONAI's).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastseg.errors import FastsegError, InputError

_KEEP_EXT = (".nii.gz", ".nii", ".mha", ".nrrd")
DEFAULT_EXT = ".nii.gz"


def pad_values(image: np.ndarray) -> np.ndarray:
    """Per channel, the value training pads a normalised ``(C, z, y, x)`` image with: the
    normalised minimum of the case (:attr:`fastseg.store.Case.normalized_pad_values`), which,
    normalisation being monotone, is the minimum of the normalised image."""
    return np.asarray(image.reshape(image.shape[0], -1).min(axis=1), dtype=np.float32)


@dataclass
class PredictReport:
    """What :func:`predict` did: ``written`` maps each case name to its label file,
    ``skipped`` those already complete (``resume``), ``failed`` maps names to the reason,
    ``elapsed_s`` seconds in all, ``notes`` what the user should know about the options."""

    written: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [f"note: {note}" for note in self.notes]
        lines.append(f"predicted {len(self.written)} case(s) in {self.elapsed_s:.1f} s")
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} case(s) already predicted")
        if self.failed:
            lines.append(f"FAILED {len(self.failed)} case(s):")
            lines += [f"  {name}: {reason}" for name, reason in self.failed.items()]
        return "\n".join(lines)


@dataclass
class _Scan:
    """One input case: image files (per channel ``(path, volume index)``) or a store case."""

    name: str
    ext: str
    images: tuple[tuple[str, int | None], ...] = ()
    case: Any = None


def _split_name(filename: str) -> tuple[str, str]:
    from fastseg.store._sources import strip_suffix

    stem = strip_suffix(filename)
    return stem, filename[len(stem) :]


def _out_ext(ext: str) -> str:
    return ext if ext.lower() in _KEEP_EXT else DEFAULT_EXT


def _is_store(source: str) -> bool:
    return "://" in source or (Path(source).is_dir() and (Path(source) / "zarr.json").is_file())


def _files_scans(files: list[Path], n_channels: int) -> tuple[list[_Scan], dict[str, str]]:
    from fastseg.store._sources import group_channel_files

    cases, problems = group_channel_files(files, n_channels, f"the run has {n_channels} channel(s)")
    scans = [
        _Scan(name, _out_ext(_split_name(Path(images[0][0]).name)[1]), images)
        for name, images in cases.items()
    ]
    return scans, problems


def _discover(text: str, n_channels: int) -> tuple[list[_Scan], dict[str, str], Any]:
    """Scans of ``text`` (a file, a folder of image files, or a store), problems, store."""
    from fastseg.store import Store
    from fastseg.store._sources import _has_dicom, _is_image

    if _is_store(text):
        store = Store.open(text)
        return [_Scan(c, DEFAULT_EXT, case=store[c]) for c in store.cases], {}, store
    source = Path(text).expanduser()
    if source.is_file():
        scans, problems = _files_scans([source], n_channels)
        return scans, problems, None
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if _is_image(p))
        if files:
            scans, problems = _files_scans(files, n_channels)
            return scans, problems, None
        series = [source] if _has_dicom(source) else [
            p for p in sorted(source.iterdir())
            if p.is_dir() and not p.name.startswith(".") and _has_dicom(p)
        ]  # fmt: skip
        if not series:
            raise InputError(
                f"{source}: no image files (.nii, .nii.gz, .mha, .nrrd, ...) and no DICOM "
                "series here"
            )
        if n_channels != 1:
            raise InputError(f"{source}: DICOM input needs a 1-channel run (this one has "
                             f"{n_channels})")  # fmt: skip
        return [_Scan(p.name, DEFAULT_EXT, ((str(p), None),)) for p in series], {}, None
    raise InputError(f"{source}: no such file or folder")


def _canonical_json(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def _check_store_plan(store: Any, plan: Mapping[str, Any]) -> None:
    """A store's cases are used as stored: its preprocessing must be the run's."""
    mine = _canonical_json(store.attrs["plan"]["preprocessing"])
    theirs = _canonical_json(plan["preprocessing"])
    keys = ("target_spacing", "modalities", "normalization", "resampling", "bias_field")
    diff = [k for k in keys if mine.get(k) != theirs.get(k)]
    if diff:
        raise InputError(
            f"{store.url}: the store's preprocessing differs from the run's ({', '.join(diff)}); "
            "predict the source scans instead"
        )


def _probabilities_volume(probs: np.ndarray, record: Mapping[str, Any]) -> np.ndarray:
    """Class probabilities ``(K, z, y, x)`` on the stored grid → the original grid (linear
    resampling, outside the crop: background 1), renormalised to sum 1."""
    from fastseg.store._preprocess import restore

    out = None
    for k in range(probs.shape[0]):
        vol = restore(
            np.asarray(probs[k], dtype=np.float32),
            record,
            kind="image",
            dtype=np.float32,
            fill=1.0 if k == 0 else 0.0,
            order=1,
        )
        if out is None:
            out = np.empty((probs.shape[0], *vol.shape), dtype=np.float32)
        out[k] = np.clip(vol.array, 0.0, 1.0)
    assert out is not None
    total = out.sum(axis=0, keepdims=True)
    np.divide(out, np.maximum(total, 1e-12), out=out)
    return out


def _save_probabilities(path: Path, probs: np.ndarray, vol: Any) -> None:
    """``probs`` (K, z, y, x) on ``vol``'s grid as .npz or a 4D .nii.gz (by ``path``'s name)."""
    from fastseg._atomic import atomic_path

    if path.name.endswith(".nii.gz"):
        from fastseg.io._nifti import write_nifti_channels

        write_nifti_channels(probs, vol.affine, path)
        return

    with atomic_path(path, ".npz") as tmp:
        np.savez_compressed(
            tmp,
            probabilities=probs,
            affine=vol.affine,
            spacing=np.asarray(vol.spacing, dtype=np.float64),
        )


class _Predictor:
    """The run's model, inference settings and post-processing plan."""

    def __init__(
        self,
        run_dir: Path,
        *,
        device: str,
        tta: bool,
        checkpoint: str,
        overlap: float | None,
        postprocess: bool,
        batch_size: int = 1,
    ) -> None:
        from fastseg.postprocess import load_plan
        from fastseg.train._run import POSTPROCESSING_FILE, load_model

        self.model, spec = load_model(run_dir, checkpoint, device)
        self.spec = spec
        self.plan = spec["store"]["plan"]
        self.pre = self.plan["preprocessing"]
        self.n_channels = len(self.pre["modalities"])
        self.patch = [int(v) for v in spec["patch_size"]]
        inference = spec["inference"]
        self.overlap = float(inference.get("overlap", 0.5) if overlap is None else overlap)
        if not 0.0 <= self.overlap < 1.0:
            raise InputError(f"overlap: expected 0 <= overlap < 1, got {self.overlap}")
        self.mirror_axes = [int(a) for a in inference.get("mirror_axes", [])] if tta else []
        self.device = device
        self.batch_size = batch_size
        self.post: dict[str, Any] | None = None
        path = run_dir / POSTPROCESSING_FILE
        if postprocess and path.is_file():
            self.post = load_plan(path)

    def thresholds(self) -> dict[int, float | None]:
        if self.post is None:
            return {}
        return {int(c): e.get("threshold") for c, e in self.post["classes"].items()}

    def infer(self, image: np.ndarray, probabilities: bool) -> tuple[np.ndarray, Any]:
        """Labels ``(z, y, x)`` and (when asked or thresholds need them) probabilities on the
        stored grid of a normalised ``(C, z, y, x)`` image."""
        from fastseg.infer._sliding_window import sliding_window_inference
        from fastseg.postprocess import labels_from_probabilities

        if image.shape[0] != self.n_channels:
            raise InputError(
                f"expected {self.n_channels} channel(s) as in training, got {image.shape[0]}"
            )
        thresholds = {c: t for c, t in self.thresholds().items() if t is not None}
        want = probabilities or bool(thresholds)
        kwargs: dict[str, Any] = {
            "pad_value": pad_values(image),
            "batch_size": self.batch_size,
            "device": self.device,
            "mirror_axes": self.mirror_axes,
            "progress": False,
        }
        if not want:
            labels = sliding_window_inference(self.model, image, self.patch, self.overlap, **kwargs)
            return labels, None
        labels, probs = sliding_window_inference(
            self.model, image, self.patch, self.overlap, return_probabilities=True, **kwargs
        )
        probs = np.asarray(probs.cpu() if hasattr(probs, "cpu") else probs, dtype=np.float32)
        if thresholds:
            labels = labels_from_probabilities(probs, thresholds)
        return labels, probs

    def finish(self, labels: np.ndarray, record: Mapping[str, Any]) -> Any:
        """Stored-grid labels → a label Volume on the original grid, post-processed."""
        from fastseg.postprocess import apply_postprocessing
        from fastseg.store._preprocess import restore

        vol = restore(labels, record, kind="label")
        if self.post is not None:
            vol = vol.with_array(apply_postprocessing(vol.array, self.post, vol.spacing))
        return vol


def _load_scan(scan: _Scan, pre: Mapping[str, Any]) -> tuple[np.ndarray, Mapping[str, Any]]:
    from fastseg.store._pipeline import load_case
    from fastseg.store._preprocess import preprocess
    from fastseg.store._sources import CaseSource

    if scan.case is not None:
        case = scan.case
        return case.image(normalized=True), case.attrs
    src = CaseSource(scan.name, scan.images, None, os.path.dirname(scan.images[0][0]))
    channels, _, _ = load_case(src, None, pre.get("channel_alignment", "world"))
    return preprocess(channels, pre)


def predict(
    run_dir: str | os.PathLike[str],
    inputs: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    device: str = "cpu",
    tta: bool = False,
    checkpoint: str = "best",
    probabilities: bool | str = False,
    postprocess: bool = True,
    overlap: float | None = None,
    batch_size: int = 1,
    progress: bool = True,
    resume: bool = False,
) -> PredictReport:
    """Segment ``inputs`` (an image file, a folder of image files — nnU-Net ``_0000``,
    ``_0001`` channel files of one case are grouped —, a DICOM series folder or a folder of
    them, or a fastseg store) with the model of
    ``run_dir`` and write label maps on each scan's original grid into the folder ``output``
    (or, for one input file, the file ``output`` when it has an image extension).

    ``device`` ``cpu``/``cuda``/``cuda:N``; ``tta`` mirrors over the run's
    ``inference.mirror_axes``; ``checkpoint`` ``best``/``last``; ``probabilities`` also writes
    ``<name>_probabilities.npz`` (True or ``"npz"``) or ``.nii.gz`` (``"nifti"``); ``postprocess`` applies ``RUN/postprocessing.json`` when
    present; ``overlap`` overrides the run's sliding-window overlap; ``batch_size`` windows go
    through the model per forward pass (more use a GPU better). A case that fails is
    listed in ``report.failed`` and skipped; the others are still written. Existing output
    files are overwritten (each is replaced atomically, never left half-written), unless
    ``resume``: then a case whose label file (and, with ``probabilities``, probability file)
    exists is skipped — an interrupted run continues where it stopped (the label file is
    written last, so its presence means the case is complete).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    if not (device == "cpu" or device == "cuda" or re.fullmatch(r"cuda:\d+", device)):
        raise InputError(f"device: expected cpu, cuda or cuda:N, got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise InputError(f"device: {device!r} requested but CUDA is not available")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size: expected an integer >= 1, got {batch_size!r}")
    prob_format = _probability_format(probabilities)
    run = _Predictor(
        Path(run_dir),
        device=device,
        tta=tta,
        checkpoint=checkpoint,
        overlap=overlap,
        postprocess=postprocess,
        batch_size=batch_size,
    )
    scans, problems, store = _discover(os.fspath(inputs), run.n_channels)
    if store is not None:
        _check_store_plan(store, run.plan)
    out = Path(output).expanduser()
    single_file = (
        store is None
        and Path(inputs).is_file()
        and len(scans) == 1
        and _split_name(out.name)[1].lower() in _KEEP_EXT
    )
    report = PredictReport(failed=dict(problems))
    if tta and not run.mirror_axes:
        report.notes.append(
            "tta: this run mirrors no axis (its data.mirror_axes is empty: `fastseg plan` "
            "leaves out the axes along which the labels depend on side), so test-time "
            "augmentation changes nothing"
        )
    bar = tqdm(total=len(scans), desc="predict", unit="case", disable=not progress)
    try:
        for scan in scans:
            bar.set_postfix_str(scan.name)
            target = out if single_file else out / f"{scan.name}{scan.ext}"
            if resume and _complete(target, prob_format):
                report.skipped[scan.name] = str(target)
                bar.update(1)
                continue
            try:
                _predict_one(run, scan, target, prob_format)
            except (FastsegError, OSError, ValueError, RuntimeError, MemoryError) as exc:
                report.failed[scan.name] = f"{type(exc).__name__}: {exc}"
            else:
                report.written[scan.name] = str(target)
            bar.update(1)
    finally:
        bar.close()
    report.failed = dict(sorted(report.failed.items()))
    report.elapsed_s = time.perf_counter() - t0
    return report


_PROBABILITY_SUFFIX = {"npz": ".npz", "nifti": ".nii.gz"}


def _probability_format(probabilities: bool | str) -> str | None:
    """None (no probabilities), "npz" or "nifti" from ``predict``'s argument."""
    if probabilities is False:
        return None
    if probabilities is True:
        return "npz"
    if probabilities in _PROBABILITY_SUFFIX:
        return str(probabilities)
    raise InputError(
        f"probabilities: expected True, False, 'npz' or 'nifti', got {probabilities!r}"
    )


def _probabilities_path(target: Path, fmt: str) -> Path:
    stem = _split_name(target.name)[0]
    return target.with_name(f"{stem}_probabilities{_PROBABILITY_SUFFIX[fmt]}")


def _complete(target: Path, prob_format: str | None) -> bool:
    """Whether a case's outputs exist (labels are written after the probabilities)."""
    return target.is_file() and (
        prob_format is None or _probabilities_path(target, prob_format).is_file()
    )


def _predict_one(run: _Predictor, scan: _Scan, target: Path, prob_format: str | None) -> None:
    from fastseg.io import write

    image, record = _load_scan(scan, run.pre)
    labels, probs = run.infer(image, prob_format is not None)
    vol = run.finish(labels, record)
    target.parent.mkdir(parents=True, exist_ok=True)
    if prob_format is not None:
        full = _probabilities_volume(probs, record)
        _save_probabilities(_probabilities_path(target, prob_format), full, vol)
    write(vol, target)  # last: its presence marks the case complete (resume)
