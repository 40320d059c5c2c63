"""Turn the caller's samples into float arrays and decide whether they are paired."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fastseg.errors import InputError


@dataclass(frozen=True)
class Samples:
    a: np.ndarray
    b: np.ndarray
    paired: bool
    note: str


def _keys_and_values(x: object) -> tuple[list[object] | None, object]:
    if isinstance(x, Mapping):
        return list(x.keys()), list(x.values())
    index = getattr(x, "index", None)
    if index is not None and not callable(index) and hasattr(x, "to_numpy"):
        return list(index), x.to_numpy()
    return None, x


def _as_values(x: object, name: str, keys: list[object] | None) -> np.ndarray:
    try:
        values = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name} must be a sequence of numbers: {err}") from None
    if values.ndim != 1:
        raise InputError(f"{name} must be 1-d (one value per case), got shape {values.shape}")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        where = [keys[i] if keys is not None else int(i) for i in bad[:5]]
        kind = "case(s)" if keys is not None else "position(s)"
        raise InputError(
            f"{name} has {bad.size} NaN or infinite value(s), at {kind} {where}"
            f"{' ...' if bad.size > 5 else ''}; an infinite Hausdorff/surface distance means an "
            "empty prediction or reference mask - drop those cases or compare a metric that is "
            "finite for them (such as Dice)"
        )
    if values.size < 2:
        raise InputError(f"{name} needs at least 2 values to be tested, got {values.size}")
    return values


def prepare(
    a: object, b: object, paired: bool | None, name_a: str = "a", name_b: str = "b"
) -> Samples:
    """Values of a and b as float64 arrays, aligned by case when paired.

    ``paired=None`` infers pairing: mappings / pandas Series keyed by the same cases are paired,
    by disjoint cases independent; plain sequences of different lengths are independent, of
    equal lengths ambiguous (InputError). ``paired=True`` with keyed inputs compares the cases
    both share.
    """
    if paired is not None and not isinstance(paired, bool | np.bool_):
        raise InputError(f"paired must be True, False or None, got {paired!r}")
    keys_a, raw_a = _keys_and_values(a)
    keys_b, raw_b = _keys_and_values(b)
    va = _as_values(raw_a, name_a, keys_a)
    vb = _as_values(raw_b, name_b, keys_b)
    for keys, name in ((keys_a, name_a), (keys_b, name_b)):
        if keys is not None and len(set(keys)) != len(keys):
            raise InputError(f"{name} has duplicate case keys; each case must appear once")

    if keys_a is not None and keys_b is not None:
        shared = set(keys_a) & set(keys_b)
        only_a = [k for k in keys_a if k not in shared]
        only_b = [k for k in keys_b if k not in shared]
        if paired is None:
            if not only_a and not only_b:
                paired = True
                note = f"{name_a} and {name_b} are keyed by the same {len(shared)} cases"
            elif not shared:
                return Samples(
                    va, vb, False, f"{name_a} and {name_b} have no case in common (independent)"
                )
            else:
                raise InputError(
                    f"{name_a} and {name_b} share {len(shared)} cases but not all "
                    f"(only in {name_a}: {only_a[:5]}, only in {name_b}: {only_b[:5]}); pass "
                    "paired=True to compare the shared cases, or paired=False"
                )
        elif not paired:
            return Samples(va, vb, False, "paired=False was given")
        else:
            note = f"paired=True, {len(shared)} cases in common"
            if only_a or only_b:
                note += (
                    f" ({len(only_a)} only in {name_a} and {len(only_b)} only in {name_b} left out)"
                )
        if len(shared) < 2:
            raise InputError(
                f"{name_a} and {name_b} share {len(shared)} case(s); at least 2 are needed"
            )
        pos_b = {k: i for i, k in enumerate(keys_b)}
        order_a = [i for i, k in enumerate(keys_a) if k in shared]
        order_b = [pos_b[keys_a[i]] for i in order_a]
        return Samples(va[order_a], vb[order_b], True, note)

    if paired is None:
        if va.size != vb.size:
            return Samples(va, vb, False, f"{name_a} and {name_b} have different lengths")
        raise InputError(
            f"paired=None cannot tell whether {name_a} and {name_b} (both of length {va.size}) "
            "are paired: pass paired=True (same cases in the same order) or paired=False "
            "(independent samples), or give dicts / pandas Series keyed by case"
        )
    if not paired:
        return Samples(va, vb, False, "paired=False was given")
    if (keys_a is None) != (keys_b is None):
        keyed = name_a if keys_a is not None else name_b
        raise InputError(
            f"paired=True but only {keyed} is keyed by case; give both as dicts / pandas Series "
            "keyed by case, or both as sequences in the same case order"
        )
    if va.size != vb.size:
        raise InputError(
            f"paired=True needs {name_a} and {name_b} of equal length, got {va.size} and {vb.size}"
        )
    return Samples(va, vb, True, "paired=True was given")
