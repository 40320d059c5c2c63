"""Finding the cases of a source folder: MSD/nnU-Net layout, a plain folder of images, or a folder
of DICOM series. Only file names and content hashes are recorded, never DICOM attributes."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastseg.errors import ImageReadError, InputError
from fastseg.io._dispatch import has_dicom_preamble
from fastseg.store._schema import check_case_id

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr")
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class CaseSource:
    """Where one case comes from. ``images``: per channel ``(path, index)``, the index picking a
    volume of a 4-d file (None for 3-d files); ``label``: the label file or None."""

    case_id: str
    images: tuple[tuple[str, int | None], ...]
    label: str | None
    root: str

    def files(self) -> list[str]:
        """The distinct source files/folders of this case, in channel order, label last."""
        out: list[str] = []
        for path, _ in self.images:
            if path not in out:
                out.append(path)
        if self.label is not None:
            out.append(self.label)
        return out


@dataclass
class DatasetSource:
    """All cases of a source folder and what its ``dataset.json`` says (if any)."""

    kind: str
    root: Path
    cases: list[CaseSource]
    channel_names: list[str]
    modalities: list[str | None]
    label_names: dict[int, str] | None
    problems: dict[str, str] = field(default_factory=dict)


def strip_suffix(name: str) -> str:
    low = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _is_image(path: Path) -> bool:
    return (
        path.is_file()
        and not path.name.startswith(".")
        and path.name.lower().endswith(IMAGE_SUFFIXES)
    )


def _modality(name: str) -> str | None:
    upper = name.strip().upper()
    if upper == "CT":
        return "ct"
    if upper in ("MR", "MRI") or upper.startswith(("T1", "T2", "FLAIR", "ADC", "DWI", "PD")):
        return "mr"
    return None


def _parse_labels(raw: Any, where: Path) -> dict[int, str]:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: 'labels' must be an object, got {type(raw).__name__}")
    out: dict[int, str] = {}
    for key, value in raw.items():
        if isinstance(value, int):
            out[int(value)] = str(key)
        elif isinstance(key, str) and key.lstrip("-").isdigit():
            out[int(key)] = str(value)
        else:
            raise InputError(
                f"{where}: label entry {key!r}: {value!r} is neither 'value: name' (MSD) nor "
                "'name: value' (nnU-Net v2); region-based labels are not supported"
            )
    return dict(sorted(out.items()))


def _read_dataset_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"{path}: cannot read dataset.json ({exc})") from exc
    if not isinstance(doc, dict):
        raise ImageReadError(f"{path}: expected a JSON object")
    return doc


def group_channel_files(
    files: list[Path], n_channels: int, expectation: str
) -> tuple[dict[str, tuple[tuple[str, int | None], ...]], dict[str, str]]:
    """Group image files into cases: ``<case>_0000``, ``<case>_0001``... are the channels of one
    case (nnU-Net naming); any other file is a case of its own (one file, or one 4D file read
    volume by volume when ``n_channels`` > 1). Returns, per case name (sorted), the channel
    images as ``(path, volume index or None)``, and per bad case the reason (``expectation``
    says where ``n_channels`` comes from)."""
    grouped: dict[str, dict[int, Path]] = {}
    plain: dict[str, Path] = {}
    for p in files:
        stem = strip_suffix(p.name)
        m = _CHANNEL.match(stem)
        if m:
            grouped.setdefault(m["case"], {})[int(m["channel"])] = p
        else:
            plain[stem] = p
    cases: dict[str, tuple[tuple[str, int | None], ...]] = {}
    problems: dict[str, str] = {}
    for name in sorted(set(grouped) | set(plain)):
        if name in grouped and name in plain:
            problems[name] = f"both {plain[name].name} and channel files {name}_XXXX exist"
        elif name in grouped:
            chans = grouped[name]
            if sorted(chans) != list(range(n_channels)):
                problems[name] = (
                    f"expected channel files {name}_0000..{name}_{n_channels - 1:04d} "
                    f"({expectation}), found {sorted(chans)}"
                )
            else:
                cases[name] = tuple((str(chans[k]), None) for k in range(n_channels))
        else:
            first = plain[name]
            cases[name] = tuple(
                (str(first), None if n_channels == 1 else k) for k in range(n_channels)
            )
    return cases, problems


def _msd(root: Path) -> DatasetSource:
    doc = _read_dataset_json(root / "dataset.json")
    channels_raw = doc.get("channel_names", doc.get("modality", {"0": "unknown"}))
    if not isinstance(channels_raw, dict) or not channels_raw:
        raise InputError(
            f"{root / 'dataset.json'}: 'modality'/'channel_names' must be a non-empty object"
        )
    channel_names = [str(channels_raw[k]) for k in sorted(channels_raw, key=int)]
    modalities = [_modality(n) for n in channel_names]
    label_names = _parse_labels(doc["labels"], root / "dataset.json") if "labels" in doc else None
    images_dir, labels_dir = root / "imagesTr", root / "labelsTr"
    if not images_dir.is_dir():
        raise InputError(f"{root}: dataset.json found but no imagesTr/ folder")
    files = sorted(p for p in images_dir.iterdir() if _is_image(p))
    n = len(channel_names)
    grouped, problems = group_channel_files(files, n, f"dataset.json names {n} channels")
    problems = {k: f"{images_dir}: {v}" for k, v in problems.items()}
    cases: list[CaseSource] = []
    label_files = (
        {strip_suffix(p.name): p for p in labels_dir.iterdir() if _is_image(p)}
        if labels_dir.is_dir()
        else {}
    )
    for case_id, images in grouped.items():
        label = label_files.get(case_id)
        if label is None:
            problems[case_id] = f"{labels_dir}: no label file for case {case_id!r}"
            continue
        try:
            check_case_id(case_id)
        except InputError as exc:
            problems[case_id] = str(exc)
            continue
        cases.append(CaseSource(case_id, images, str(label), str(root)))
    return DatasetSource("msd", root, cases, channel_names, modalities, label_names, problems)


def _visible_files(folder: Path, recursive: bool) -> Iterator[Path]:
    """Files in ``folder`` (and below it when ``recursive``), skipping hidden files and folders,
    in sorted order of their path relative to ``folder`` — the files fastseg.io.read considers."""
    if not recursive:
        yield from sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        return
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        for name in sorted(filenames):
            if not name.startswith(".") and (here / name).is_file():
                yield here / name


def _is_dicom_file(path: Path) -> bool:
    return path.suffix.lower() in (".dcm", ".dicom", ".ima") or has_dicom_preamble(path)


def _has_dicom(folder: Path, recursive: bool = False) -> bool:
    """Whether ``folder`` holds a DICOM file (anywhere below it when ``recursive``, as
    fastseg.io.read searches a series folder)."""
    return any(_is_dicom_file(p) for p in _visible_files(folder, recursive))


def discover(src: str | os.PathLike[str]) -> DatasetSource:
    """The cases of ``src``: an MSD/nnU-Net folder (``dataset.json``, ``imagesTr/``,
    ``labelsTr/``, channels as ``_0000``, ``_0001`` files or 4-d files), a folder of image files
    (one unlabelled case each), a folder of DICOM series folders, or one DICOM series folder.

    A DICOM case is a top-level subfolder of ``src`` with DICOM files anywhere below it (read
    recursively, as fastseg.io.read does); ``src`` itself is the one case when DICOM files sit
    directly in it."""
    root = Path(src).expanduser().absolute()
    if not root.is_dir():
        raise InputError(f"{root}: source must be a folder (MSD layout, images or DICOM series)")
    if (root / "dataset.json").is_file():
        return _msd(root)
    problems: dict[str, str] = {}
    images = sorted(p for p in root.iterdir() if _is_image(p))
    if images:
        cases = []
        for p in images:
            case_id = strip_suffix(p.name)
            try:
                cases.append(CaseSource(check_case_id(case_id), ((str(p), None),), None, str(root)))
            except InputError as exc:
                problems[case_id] = str(exc)
        return DatasetSource("folder", root, cases, ["image"], [None], None, problems)
    if _has_dicom(root):
        case_id = root.name
        cases = [CaseSource(check_case_id(case_id), ((str(root), None),), None, str(root.parent))]
        return DatasetSource("dicom", root, cases, ["image"], [None], None, problems)
    cases = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not _has_dicom(sub, recursive=True):
            continue
        try:
            cases.append(CaseSource(check_case_id(sub.name), ((str(sub), None),), None, str(root)))
        except InputError as exc:
            problems[sub.name] = str(exc)
    if not cases and not problems:
        raise InputError(
            f"{root}: no dataset.json, no image files ({', '.join(IMAGE_SUFFIXES)}) and no DICOM "
            "series folders found"
        )
    return DatasetSource("dicom", root, cases, ["image"], [None], None, problems)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes; of a folder: of the lines ``relative path<TAB>file hash``
    of every visible file below it (hidden files and folders skipped, as fastseg.io.read
    does), sorted by relative path (for a flat folder: its sorted file names)."""
    p = Path(path)
    if p.is_dir():
        h = hashlib.sha256()
        lines = sorted((f.relative_to(p).as_posix(), f) for f in _visible_files(p, True))
        for rel, f in lines:
            h.update(f"{rel}\t{sha256_of(f)}\n".encode())
        return h.hexdigest()
    h = hashlib.sha256()
    try:
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise ImageReadError(f"{p}: cannot read ({exc})") from exc
    return h.hexdigest()


def relative(path: str, root: str) -> str:
    """``path`` relative to ``root`` with ``/`` separators (never an absolute path)."""
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:
        return Path(path).name
