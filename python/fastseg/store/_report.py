"""The conversion report: what was converted, skipped (already complete) or failed, and why."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

# An absolute path not inside a word or a relative path: POSIX /a/b or Windows C:\a\b.
_ABSOLUTE = re.compile(r"(?<![\w.:/\\)\]~+-])(?:/|[A-Za-z]:[\\/])[^\s'\"`,;:()\[\]<>|]+")
# A DICOM UID (root 0, 1 or 2, at least 5 components): DICOM exporters name files and folders by
# SOP/series instance UIDs, which can embed dates.
_UID = re.compile(r"(?<![\w.])[0-2](?:\.(?:0|[1-9][0-9]*)){4,}(?![\w])")


@dataclass
class ConversionReport:
    """Outcome of :func:`fastseg.store.convert`.

    ``failed`` maps case id to the reason (unreadable file, image/label mismatch, label classes
    not in dataset.json, NaN intensities, ...); the CLI exits non-zero when it is not empty.
    """

    source: str
    destination: str
    converted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    elapsed_s: float = 0.0
    source_bytes: int = 0

    @property
    def ok(self) -> bool:
        """True when no case failed."""
        return not self.failed

    @property
    def mb_per_s(self) -> float:
        """Source megabytes converted per second of this run."""
        return self.source_bytes / 1e6 / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self, *, anonymous: bool = False) -> dict[str, Any]:
        """As a JSON-able dict; ``anonymous=True`` (the copy kept in the store) keeps only the
        source folder's name, drops the destination and, in failure reasons, writes paths below
        the source relative to it, any other absolute path as its file name and DICOM UIDs as
        ``<UID>``, so no full path or UID is stored."""
        d = asdict(self)
        d["ok"] = self.ok
        if anonymous:
            d["source"] = PurePath(self.source).name
            del d["destination"]
            d["failed"] = {k: self._anonymous(v) for k, v in self.failed.items()}
        return d

    def _anonymous(self, text: str) -> str:
        """``text`` with paths under the source made relative to it, the source and the
        destination by their names, any other absolute path by its file name, and DICOM UIDs
        (in file or folder names) by ``<UID>``."""
        for root in (self.source, self.destination):
            root = root.rstrip("/\\")
            if not root:
                continue
            text = re.sub(re.escape(root) + r"[/\\]", "", text)
            text = re.sub(
                re.escape(root) + r"(?![\w.~-])", PurePath(root).name.replace("\\", "/"), text
            )
        return _UID.sub("<UID>", _ABSOLUTE.sub(_file_name, text))

    def summary(self) -> str:
        lines = [
            f"{self.destination}: {len(self.converted)} converted, {len(self.skipped)} already "
            f"complete, {len(self.failed)} failed in {self.elapsed_s:.1f} s "
            f"({self.mb_per_s:.1f} MB/s of source)"
        ]
        for case_id, reason in sorted(self.failed.items()):
            lines.append(f"  FAILED {case_id}: {reason.splitlines()[0]}")
        return "\n".join(lines)


def _file_name(match: re.Match[str]) -> str:
    path = match.group(0).rstrip(".")
    name = re.split(r"[/\\]", path.rstrip("/\\"))[-1]
    return (name or "/") + match.group(0)[len(path) :]
