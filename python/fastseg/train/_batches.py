"""The trainer's batch source: :class:`fastseg.data.PatchLoader`, started at a given batch
index so that a resumed run sees the batches an uninterrupted run would have seen.

Batch ``k`` of rank ``r`` depends only on ``(seed, r, k)``, and PatchLoader starts at any ``k``.
The DALI loader cannot: a resumed DALI run draws fresh batches from a seed derived from
``(seed, k)`` and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fastseg.errors import InputError


def open_loader(
    store: Any,
    cases: Sequence[str],
    patch_size: Sequence[int],
    *,
    batch_size: int,
    oversample_foreground: float,
    augmentation: Any,
    augment_device: str,
    workers: int,
    prefetch: int,
    seed: int,
    device: Any,
    rank: int,
    world_size: int,
    start: int,
    note: Callable[[str], None],
    kind: str = "native",
) -> Any:
    """A loader context manager yielding batches ``start, start + 1, ...`` of this rank:
    ``kind`` ``"native"`` (:class:`fastseg.data.PatchLoader`) or ``"dali"`` (its DALI backend;
    flips and intensity augmentation when ``augmentation`` is not None)."""
    from fastseg.data import PatchLoader

    kwargs: dict[str, Any] = {
        "cases": list(cases),
        "patch_size": tuple(patch_size),
        "batch_size": batch_size,
        "oversample_foreground": oversample_foreground,
        "workers": workers,
        "prefetch": prefetch,
        "device": device,
        "rank": rank,
        "world_size": world_size,
    }
    if kind == "dali":
        return _dali_loader(store, kwargs, augmentation is not None, seed, start, note)
    return PatchLoader(
        store,
        **kwargs,
        augmentation=augmentation,
        augment_device=augment_device,
        seed=seed,
        start=start,
    )


def _dali_loader(
    store: Any,
    kwargs: dict[str, Any],
    augmentation: bool,
    seed: int,
    start: int,
    note: Callable[[str], None],
) -> Any:
    """The DALI loader with ``kwargs`` (those it shares with PatchLoader); it cannot start at
    batch ``start``, so a resumed run draws from a seed derived from ``(seed, start)``."""
    try:
        from fastseg.data._dali import DaliPatchLoader
    except ImportError as exc:  # pragma: no cover - the module ships with fastseg.data
        raise InputError(f"data.loader: dali is not available ({exc})") from exc
    if start:
        note(
            f"the DALI loader cannot start at batch {start}: the resumed run draws batches from "
            "a seed derived from (seed, start)"
        )
        seed = int(np.random.SeedSequence([seed, start]).generate_state(1)[0])
    return DaliPatchLoader(store, **kwargs, seed=seed, augmentation=augmentation)
