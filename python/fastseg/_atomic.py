"""Atomic file output: write under a temporary name in the target folder, then rename."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path ``.<name>.tmp-XXXX<suffix>`` next to ``path``; on success it is
    renamed onto ``path`` with ``os.replace``, on failure it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    tmp = path.with_name(f".{stem}.tmp-{secrets.token_hex(4)}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder_files(path: Path) -> Iterator[Path]:
    """For formats whose header names a sidecar data file (``.mhd`` + ``.raw``, ``.nhdr``):
    yield ``tmpdir/<name>`` in a hidden temporary folder next to ``path``; on success move the
    data files first and the header last, so a present header means a complete image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    tmpdir.mkdir()
    try:
        yield tmpdir / path.name
        header = tmpdir / path.name
        for item in sorted(tmpdir.iterdir()):
            if item != header:
                os.replace(item, path.parent / item.name)
        os.replace(header, path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file, so a reader never sees half of it."""
    path = Path(path)
    with atomic_path(path, path.suffix) as tmp:
        tmp.write_text(text)
    return path
