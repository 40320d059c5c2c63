"""Patch regions drawn from a fastseg store, a fraction centred on foreground (nnU-Net's scheme)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastseg.errors import InputError

Region = tuple[str, tuple[int, int, int], tuple[int, int, int]]


def int3(value: Any, name: str, low: int) -> tuple[int, int, int]:
    """``value`` as three integers (z, y, x), each >= ``low``, else an InputError naming ``name``."""
    try:
        vals = tuple(value)
    except TypeError:
        vals = ()
    if len(vals) != 3 or not all(
        isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= low for v in vals
    ):
        raise InputError(f"{name}: expected three integers >= {low} (z, y, x), got {value!r}")
    return (int(vals[0]), int(vals[1]), int(vals[2]))


def shard_cases(cases: Sequence[str], rank: int, world_size: int) -> list[str]:
    """This rank's cases: every ``world_size``-th case from ``rank`` (all cases when there are
    fewer cases than ranks)."""
    cases = list(cases)
    if len(cases) < world_size:
        return cases
    return cases[rank::world_size]


class StorePatchSampler:
    """Draws patch regions ``(case_id, start (z, y, x), size (z, y, x))`` from a store.

    Every patch of a batch picks a case uniformly. The last ``round(oversample_foreground *
    batch_size)`` patches of each batch are centred on a stored foreground voxel
    (``case.foreground()``) of a class drawn uniformly among the classes the case has; the
    others start uniformly at random. As nnU-Net does, a case smaller than the patch is padded
    evenly (the start range is ``[-pad // 2, shape + pad // 2 + pad % 2 - patch]`` per axis with
    ``pad = max(patch - shape, 0)``) and a centred start is clipped into that range. The region
    returned is the patch grown by ``margin`` voxels on each side (the source region a spatial
    augmentation resamples from; its centre is the patch's centre). Regions may extend beyond
    the case; reads pad them (image with the case's pad value, label 0).
    """

    def __init__(
        self,
        store: Any,
        cases: Sequence[str] | None = None,
        patch_size: Sequence[int] = (64, 64, 64),
        oversample_foreground: float = 0.33,
        margin: Sequence[int] = (0, 0, 0),
    ) -> None:
        self.store = store
        ids = list(store.cases) if cases is None else list(cases)
        if not ids:
            raise InputError("cases: expected at least one case, got none")
        missing = [c for c in ids if c not in store]
        if missing:
            raise InputError(f"cases: not in the store {store.url}: {missing[:5]}")
        self.cases = ids
        self.patch_size = int3(patch_size, "patch_size", 1)
        self.margin = int3(margin, "margin", 0)
        if isinstance(oversample_foreground, bool) or not (
            isinstance(oversample_foreground, int | float) and 0.0 <= oversample_foreground <= 1.0
        ):
            raise InputError(
                f"oversample_foreground: expected a fraction in [0, 1], got {oversample_foreground!r}"
            )
        self.oversample_foreground = float(oversample_foreground)
        self._shapes = {c: store[c].shape for c in ids}
        self._foreground: dict[str, dict[int, np.ndarray]] = {}

    @property
    def region_size(self) -> tuple[int, int, int]:
        """Size (z, y, x) of the regions drawn: the patch plus ``margin`` on each side."""
        p, m = self.patch_size, self.margin
        return (p[0] + 2 * m[0], p[1] + 2 * m[1], p[2] + 2 * m[2])

    def foreground(self, case_id: str) -> dict[int, np.ndarray]:
        """The stored foreground voxels (n, 3) (z, y, x) per present class of ``case_id`` (cached)."""
        fg = self._foreground.get(case_id)
        if fg is None:
            fg = {c: v for c, v in self.store[case_id].foreground().items() if len(v)}
            self._foreground[case_id] = fg
        return fg

    def forced(self, batch_size: int) -> int:
        """How many patches of a batch of ``batch_size`` are centred on foreground."""
        return round(self.oversample_foreground * batch_size)

    def patch_start(
        self, case_id: str, rng: np.random.Generator, force_foreground: bool
    ) -> tuple[int, int, int]:
        """The start (z, y, x) of one patch of ``case_id`` (see the class docstring)."""
        shape = self._shapes[case_id]
        lo, hi = [], []
        for n, p in zip(shape, self.patch_size, strict=True):
            pad = max(p - n, 0)
            lo.append(-(pad // 2))
            hi.append(n + pad // 2 + pad % 2 - p)
        classes = self.foreground(case_id) if force_foreground else {}
        if classes:
            keys = sorted(classes)
            voxels = classes[keys[int(rng.integers(len(keys)))]]
            center = voxels[int(rng.integers(len(voxels)))]
            return tuple(  # type: ignore[return-value]
                int(min(max(int(c) - p // 2, a), b))
                for c, p, a, b in zip(center, self.patch_size, lo, hi, strict=True)
            )
        return tuple(int(rng.integers(a, b + 1)) for a, b in zip(lo, hi, strict=True))  # type: ignore[return-value]

    def draw(self, batch_size: int, rng: np.random.Generator) -> list[Region]:
        """``batch_size`` regions ``(case_id, start, size)``, (z, y, x) voxels; deterministic in
        ``rng``."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size: expected a positive integer, got {batch_size!r}")
        n_forced = self.forced(batch_size)
        size = self.region_size
        out: list[Region] = []
        for b in range(batch_size):
            case_id = self.cases[int(rng.integers(len(self.cases)))]
            start = self.patch_start(case_id, rng, b >= batch_size - n_forced)
            region_start = (
                start[0] - self.margin[0],
                start[1] - self.margin[1],
                start[2] - self.margin[2],
            )
            out.append((case_id, region_start, size))
        return out
