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

    if kind == "dali":
        return _dali_loader(
            store, cases, patch_size, batch_size, oversample_foreground, augmentation is not None,
            workers, prefetch, seed, device, rank, world_size, start, note,
        )  # fmt: skip
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


def _dali_loader(
    store: Any,
    cases: Sequence[str],
    patch_size: Sequence[int],
    batch_size: int,
    oversample_foreground: float,
    augmentation: bool,
    workers: int,
    prefetch: int,
    seed: int,
    device: Any,
    rank: int,
    world_size: int,
    start: int,
    note: Callable[[str], None],
) -> Any:
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
    return DaliPatchLoader(
        store,
        cases=list(cases),
        patch_size=tuple(patch_size),
        batch_size=batch_size,
        oversample_foreground=oversample_foreground,
        seed=seed,
        device=device,
        workers=workers,
        augmentation=augmentation,
        prefetch=prefetch,
        rank=rank,
        world_size=world_size,
    )
