"""Rank distributions, pairwise order statistics and Hodges-Lehmann intervals against brute
force and against SciPy's exact tests (the interval is the inverted test)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hs
from scipy import stats as st

from fastseg.stats import _ranks

values = hs.lists(
    hs.one_of(
        hs.integers(-5, 5).map(float),
        hs.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=25,
)


def _walsh(d: np.ndarray) -> np.ndarray:
    x = np.sort(d)
    i, j = np.triu_indices(x.size)
    return np.sort(x[i] + x[j])


@given(values, hs.data())
def test_kth_walsh_sum_matches_sorting(d: list[float], data: hs.DataObject) -> None:
    x = np.sort(np.array(d))
    sums = _walsh(x)
    k = data.draw(hs.integers(1, sums.size))
    assert _ranks.kth_pairwise_sum(x, x, k, True) == sums[k - 1]


@given(values, values, hs.data())
def test_kth_difference_matches_sorting(
    a: list[float], b: list[float], data: hs.DataObject
) -> None:
    x, y = np.sort(np.array(a)), np.sort(-np.array(b))
    sums = np.sort((x[:, None] + y[None, :]).ravel())
    k = data.draw(hs.integers(1, sums.size))
    assert _ranks.kth_pairwise_sum(x, y, k, False) == sums[k - 1]


def test_kth_rejects_out_of_range() -> None:
    x = np.arange(3.0)
    with pytest.raises(ValueError, match="k must be"):
        _ranks.kth_pairwise_sum(x, x, 7, True)


@pytest.mark.parametrize("n", [1, 2, 5, 9])
def test_signed_rank_pmf_by_enumeration(n: int) -> None:
    sums = [
        sum(r for r, s in zip(range(1, n + 1), signs, strict=True) if s)
        for signs in itertools.product([0, 1], repeat=n)
    ]
    expected = np.bincount(sums, minlength=n * (n + 1) // 2 + 1) / 2**n
    np.testing.assert_allclose(_ranks.signed_rank_pmf(n), expected, rtol=1e-12)


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (1, 4), (3, 5), (5, 3), (4, 6)])
def test_rank_sum_pmf_by_enumeration(n1: int, n2: int) -> None:
    counts = []
    for chosen in itertools.combinations(range(n1 + n2), n1):
        counts.append(sum(sum(1 for j in range(c) if j not in chosen) for c in chosen))
    expected = np.bincount(counts, minlength=n1 * n2 + 1) / len(counts)
    np.testing.assert_allclose(_ranks.rank_sum_pmf(n1, n2), expected, rtol=1e-12)


@pytest.mark.parametrize(("n", "q"), [(60, 0.025), (80, 0.05), (120, 0.005), (300, 0.025)])
def test_normal_critical_count_close_to_exact(n: int, q: float) -> None:
    total = n * (n + 1) // 2
    sd = np.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    exact = _ranks.critical_count(_ranks.signed_rank_pmf(n), total / 2, sd, q)
    approx = _ranks.critical_count(None, total / 2, sd, q)
    assert abs(exact - approx) <= max(1.0, 0.02 * sd)


def test_normal_critical_count_rank_sum_close_to_exact() -> None:
    n1, n2 = 55, 60
    sd = np.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)
    exact = _ranks.critical_count(_ranks.rank_sum_pmf(n1, n2), n1 * n2 / 2, sd, 0.025)
    approx = _ranks.critical_count(None, n1 * n2 / 2, sd, 0.025)
    assert abs(exact - approx) <= 1


def _just_outside_inside(bound: float, gaps: np.ndarray, side: str) -> tuple[float, float]:
    eps = 1e-3 * float(np.min(np.diff(np.unique(gaps))))
    return (bound - eps, bound + eps) if side == "low" else (bound + eps, bound - eps)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize(("n", "seed"), [(8, 1), (15, 2), (30, 3)])
def test_paired_interval_inverts_exact_signed_rank_test(
    alternative: str, n: int, seed: int
) -> None:
    d = np.random.default_rng(seed).normal(0.3, 1.0, n)
    alpha = 0.05
    estimate, (low, high) = _ranks.hodges_lehmann_paired(d, alpha, alternative)
    walsh = _walsh(d) / 2
    assert estimate == pytest.approx(np.median(walsh), abs=1e-12)

    def p(mu: float) -> float:
        return float(st.wilcoxon(d - mu, alternative=alternative, method="exact").pvalue)

    if alternative != "less":
        outside, inside = _just_outside_inside(low, walsh, "low")
        assert p(outside) <= alpha < p(inside)
    else:
        assert low == -np.inf
    if alternative != "greater":
        outside, inside = _just_outside_inside(high, walsh, "high")
        assert p(outside) <= alpha < p(inside)
    else:
        assert high == np.inf


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize(("n1", "n2", "seed"), [(6, 9, 4), (20, 14, 5)])
def test_independent_interval_inverts_exact_rank_sum_test(
    alternative: str, n1: int, n2: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0.5, 1.0, n1), rng.normal(0.0, 1.0, n2)
    alpha = 0.1
    estimate, (low, high) = _ranks.hodges_lehmann_independent(a, b, alpha, alternative)
    diffs = np.sort((a[:, None] - b[None, :]).ravel())
    assert estimate == pytest.approx(np.median(diffs), abs=1e-12)

    def p(mu: float) -> float:
        res = st.mannwhitneyu(a - mu, b, alternative=alternative, method="exact")
        return float(res.pvalue)

    if alternative != "less":
        outside, inside = _just_outside_inside(low, diffs, "low")
        assert p(outside) <= alpha < p(inside)
    if alternative != "greater":
        outside, inside = _just_outside_inside(high, diffs, "high")
        assert p(outside) <= alpha < p(inside)


def test_tied_sample_interval_is_order_statistic_of_normal_critical_count() -> None:
    d = np.round(np.random.default_rng(6).exponential(1.0, 90) - 0.5, 1)
    _, (low, high) = _ranks.hodges_lehmann_paired(d, 0.05, "two-sided")
    n = d.size
    total = n * (n + 1) // 2
    c = _ranks.critical_count(None, total / 2, np.sqrt(n * (n + 1) * (2 * n + 1) / 24), 0.025)
    walsh = _walsh(d) / 2
    assert (low, high) == (walsh[c], walsh[total - 1 - c])


def test_too_small_sample_gives_unbounded_interval() -> None:
    _, ci = _ranks.hodges_lehmann_paired(np.array([0.5, 1.0]), 0.05, "two-sided")
    assert ci == (-np.inf, np.inf)
    _, ci = _ranks.hodges_lehmann_independent(np.array([1.0, 2.0]), np.array([0.0]), 0.05, "less")
    assert ci == (-np.inf, np.inf)
