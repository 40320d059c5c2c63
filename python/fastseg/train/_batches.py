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
from fastseg.train._config import TrainConfig


def training_augmentation(cfg: TrainConfig) -> list[dict[str, Any]] | None:
    """The augmentation steps of ``cfg`` (None for ``none``): ``default`` is nnU-Net's set
    (:func:`fastseg.augment.default_config`) with the flip restricted to ``cfg.mirror_axes``
    (dropped when that is empty); a list of steps is used as given."""
    from fastseg.augment import default_config

    chosen = cfg.data.augmentation
    if chosen == "none":
        return None
    if not isinstance(chosen, str):
        return [dict(step) for step in chosen]
    axes = cfg.mirror_axes
    steps = []
    for step in default_config():
        if step["name"] == "flip":
            if not axes:
                continue
            step = {**step, "axes": list(axes)}
        steps.append(dict(step))
    return steps


def _flip_axes(augmentation: Sequence[dict[str, Any]]) -> tuple[int, ...]:
    """The axes the flip step of ``augmentation`` flips (none without a flip step)."""
    for step in augmentation:
        if step["name"] == "flip":
            return tuple(int(a) for a in step.get("axes", (0, 1, 2)))
    return ()


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
    flips along the flip step's axes and its intensity augmentation when ``augmentation`` is not
    None)."""
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
        flips = None if augmentation is None else _flip_axes(augmentation)
        return _dali_loader(store, kwargs, flips, seed, start, note)
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
    flip_axes: tuple[int, ...] | None,
    seed: int,
    start: int,
    note: Callable[[str], None],
) -> Any:
    """The DALI loader with ``kwargs`` (those it shares with PatchLoader), augmenting (flips along
    ``flip_axes``) unless that is None; it cannot start at batch ``start``, so a resumed run draws
    from a seed derived from ``(seed, start)``."""
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
    augmentation = None if flip_axes is None else {"flip_axes": flip_axes}
    return DaliPatchLoader(store, **kwargs, seed=seed, augmentation=augmentation)
