"""Argument checks shared by the loaders (:class:`fastseg.data.PatchLoader` and the DALI one):
integers, rank/world size, the torch device, and this rank's cases of a store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastseg.data._sampler import shard_cases
from fastseg.errors import InputError


def check_int(value: Any, name: str, low: int) -> int:
    """``value`` as an int >= ``low`` (bools refused), else an InputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise InputError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def check_rank(rank: Any, world_size: Any) -> tuple[int, int]:
    """``(rank, world_size)`` as ints with ``0 <= rank < world_size``, else an InputError."""
    size = check_int(world_size, "world_size", 1)
    index = check_int(rank, "rank", 0)
    if index >= size:
        raise InputError(f"rank: expected 0 <= rank < world_size={world_size}, got {rank}")
    return index, size


def torch_device(device: Any) -> Any:
    """``device`` as a ``torch.device``, else an InputError naming ``device``."""
    import torch

    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"device: not a torch device: {device!r} ({exc})") from exc


def rank_cases(
    store: Any, cases: Sequence[str] | None, rank: int, world_size: int
) -> tuple[list[str], int]:
    """This rank's share of ``cases`` (all of ``store``'s cases when None; see
    :func:`fastseg.data._sampler.shard_cases`) and their one channel count; an InputError naming
    ``cases`` when they are not case ids of ``store`` or their channel counts differ."""
    all_cases = list(store.cases) if cases is None else list(cases)
    if cases is not None and (
        isinstance(cases, str) or not all(isinstance(c, str) for c in all_cases)
    ):
        raise InputError(f"cases: expected a list of case ids, got {cases!r}")
    if not all_cases:
        raise InputError("cases: expected at least one case, got none")
    missing = [c for c in all_cases if c not in store]
    if missing:
        raise InputError(f"cases: not in the store {store.url}: {missing[:5]}")
    mine = shard_cases(all_cases, rank, world_size)
    channels = {store[c].channels for c in mine}
    if len(channels) != 1:
        raise InputError(f"cases: expected one channel count across cases, got {sorted(channels)}")
    return mine, channels.pop()
