"""Several methods: pairwise comparisons with Holm's correction."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from fastseg.errors import InputError
from fastseg.stats._compare import compare
from fastseg.stats._result import ComparisonResult


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values, in the order given.

    The i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``;
    reject where the adjusted value is below alpha (controls the family-wise error rate).
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise InputError(f"pvalues must be 1-d, got shape {p.shape}")
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise InputError("pvalues must all lie in [0, 1] (no NaN)")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def compare_many(
    groups: Mapping[str, object],
    paired: bool | None = None,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    *,
    test: str = "auto",
) -> dict[tuple[str, str], ComparisonResult]:
    """Compare every pair of methods with :func:`compare`, Holm-correcting across the pairs.

    ``groups`` maps a method name to its values (as :func:`compare` takes them); pairs are
    taken in the order of ``groups`` (first vs second, first vs third, ...) and each result's
    difference is ``groups[first] - groups[second]``. Each result carries
    ``pvalue_adjusted`` and ``significant`` judged on it.
    """
    if not isinstance(groups, Mapping) or len(groups) < 2:
        raise InputError("groups must be a dict of at least 2 {method name: values}")
    results: dict[tuple[str, str], ComparisonResult] = {}
    for first, second in itertools.combinations(list(groups), 2):
        results[(str(first), str(second))] = compare(
            groups[first],
            groups[second],
            paired=paired,
            alpha=alpha,
            alternative=alternative,
            test=test,
            names=(str(first), str(second)),
        )
    adjusted = holm([r.pvalue for r in results.values()])
    return {
        key: dataclasses.replace(r, names=key, pvalue_adjusted=float(p))
        for (key, r), p in zip(results.items(), adjusted, strict=True)
    }
