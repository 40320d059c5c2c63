"""The trainer's batch source: :class:`fastseg.data.PatchLoader`, started at a given batch
index so that a resumed run sees the batches an uninterrupted run would have seen.

Batch ``k`` of rank ``r`` depends only on ``(seed, r, k)``. PatchLoader has no public start
argument yet: :func:`open_loader` moves a fresh loader's batch counter; were that impossible it
says so and the resumed run draws fresh batches from a seed derived from ``(seed, k)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


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
) -> Any:
    """A loader context manager yielding batches ``start, start + 1, ...`` of this rank."""
    from fastseg.data import PatchLoader

    kwargs: dict[str, Any] = {
        "cases": list(cases),
        "patch_size": tuple(patch_size),
        "batch_size": batch_size,
        "oversample_foreground": oversample_foreground,
        "augmentation": augmentation,
        "augment_device": augment_device,
        "workers": workers,
        "prefetch": prefetch,
        "seed": seed,
        "device": device,
        "rank": rank,
        "world_size": world_size,
    }
    params = inspect.signature(PatchLoader).parameters
    for name in ("start", "start_batch", "first_batch"):
        if start and name in params:
            kwargs[name] = start
            return PatchLoader(store, **kwargs)
    loader = PatchLoader(store, **kwargs)
    if start:
        # No public start argument: a loader not yet started delivers batch ``_k`` next and
        # schedules ``_scheduled`` first, so moving both to ``start`` continues the sequence.
        if getattr(loader, "_k", None) == 0 and getattr(loader, "_scheduled", None) == 0:
            loader._k = loader._scheduled = start
        else:
            note(
                f"PatchLoader cannot start at batch {start}: the resumed run draws batches "
                "from a seed derived from (seed, start) instead of the uninterrupted sequence"
            )
            loader.close()
            kwargs["seed"] = int(np.random.SeedSequence([seed, start]).generate_state(1)[0])
            loader = PatchLoader(store, **kwargs)
    return loader
