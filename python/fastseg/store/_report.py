"""The conversion report: what was converted, skipped (already complete) or failed, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any


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
        source folder's name and drops the destination, so no full path is stored."""
        d = asdict(self)
        d["ok"] = self.ok
        if anonymous:
            d["source"] = PurePath(self.source).name
            del d["destination"]
        return d

    def summary(self) -> str:
        lines = [
            f"{self.destination}: {len(self.converted)} converted, {len(self.skipped)} already "
            f"complete, {len(self.failed)} failed in {self.elapsed_s:.1f} s "
            f"({self.mb_per_s:.1f} MB/s of source)"
        ]
        for case_id, reason in sorted(self.failed.items()):
            lines.append(f"  FAILED {case_id}: {reason.splitlines()[0]}")
        return "\n".join(lines)
