"""Raw key access to a store location: a local folder or any fsspec URL.

Readers use it to fetch chunk bytes directly (no zarr machinery on the hot path); writers use
:meth:`Backend.zarr_store` so every array stays a standard Zarr v3 array.
"""

from __future__ import annotations

import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastseg.errors import ImageReadError


class Backend(ABC):
    """Keys are ``/``-separated paths relative to the store root."""

    url: str

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The object's bytes, None when it does not exist."""

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self.get(k) for k in keys]

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically: readers see the old object or the new one."""

    @abstractmethod
    def list_dir(self, prefix: str) -> list[str]:
        """Names directly below ``prefix`` (files and folders), sorted; [] when absent."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Remove everything under ``prefix`` (nothing when absent)."""

    @abstractmethod
    def zarr_store(self, read_only: bool = False) -> Any:
        """A zarr v3 store object for this location."""

    @property
    def shared_between_processes(self) -> bool:
        """False for in-memory stores, which other processes cannot see."""
        return True

    @property
    def local_root(self) -> Path | None:
        """The folder of a local store (None for remote ones): lets readers open chunk files."""
        return None


class LocalBackend(Backend):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def get(self, key: str) -> bytes | None:
        try:
            with open(self.root / key, "rb") as fh:
                return fh.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def list_dir(self, prefix: str) -> list[str]:
        try:
            return sorted(os.listdir(self.root / prefix))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def delete_prefix(self, prefix: str) -> None:
        import shutil

        path = self.root / prefix
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    def zarr_store(self, read_only: bool = False) -> Any:
        from zarr.storage import LocalStore

        if not read_only:
            self.root.mkdir(parents=True, exist_ok=True)
        return LocalStore(self.root, read_only=read_only)

    @property
    def local_root(self) -> Path | None:
        return self.root


class FsspecBackend(Backend):
    def __init__(self, url: str) -> None:
        from fsspec.core import url_to_fs

        self.url = url
        self.fs, path = url_to_fs(url)
        self.root = str(path).rstrip("/")

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def get(self, key: str) -> bytes | None:
        try:
            data: bytes = self.fs.cat_file(self._path(key))
        except (FileNotFoundError, IsADirectoryError):
            return None
        return data

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        paths = [self._path(k) for k in keys]
        got = self.fs.cat(paths, on_error="return")
        if not isinstance(got, dict):
            got = {paths[0]: got}
        out: list[bytes | None] = []
        for p in paths:
            value = got.get(p)
            if value is None:
                value = got.get(self.fs._strip_protocol(p))
            if isinstance(value, FileNotFoundError) or value is None:
                out.append(None)
            elif isinstance(value, BaseException):
                raise ImageReadError(f"{self.url}: cannot read {p}: {value}") from value
            else:
                out.append(bytes(value))
        return out

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(path, data)

    def list_dir(self, prefix: str) -> list[str]:
        try:
            entries = self.fs.ls(self._path(prefix), detail=False)
        except FileNotFoundError:
            return []
        base = self._path(prefix).rstrip("/")
        names = []
        for entry in entries:
            name = str(entry).rstrip("/").rsplit("/", 1)[-1]
            if str(entry).rstrip("/") != base and name:
                names.append(name)
        return sorted(set(names))

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def zarr_store(self, read_only: bool = False) -> Any:
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(self.url, read_only=read_only)

    @property
    def shared_between_processes(self) -> bool:
        protocol = self.fs.protocol
        names = (protocol,) if isinstance(protocol, str) else tuple(protocol)
        return "memory" not in names


def backend_for(url: str | os.PathLike[str]) -> Backend:
    """A local folder (plain path or ``file://``) or any other fsspec URL (``s3://``, ``memory://``)."""
    text = os.fspath(url)
    if "://" not in text:
        return LocalBackend(Path(text).expanduser().absolute())
    if text.startswith("file://"):
        return LocalBackend(Path(text[len("file://") :]).absolute())
    return FsspecBackend(text)
