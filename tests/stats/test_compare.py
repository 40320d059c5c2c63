"""compare(): each branch of the procedure against SciPy, a published worked example,
effect sizes and intervals against hand computations, pairing and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from fastseg.errors import InputError
from fastseg.stats import ComparisonResult, compare

ALTERNATIVES = ["two-sided", "greater", "less"]

# Student (1908) / Cushny & Peebles: extra hours of sleep with two drugs, same 10 patients
# (R's `sleep` data set).
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _paired_normal() -> tuple[np.ndarray, np.ndarray]:
    a = _rng(10).normal(0.80, 0.05, 30)
    return a, a - _rng(11).normal(0.02, 0.03, 30)


def _paired_skewed() -> tuple[np.ndarray, np.ndarray]:
    a = _rng(12).normal(0.80, 0.05, 30)
    return a, a - _rng(13).exponential(0.03, 30)


def _indep(seed: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = _rng(seed)
    if kind == "equal":
        return rng.normal(0.80, 0.05, 25), rng.normal(0.77, 0.05, 32)
    if kind == "unequal":
        return rng.normal(0.80, 0.01, 30), rng.normal(0.78, 0.08, 30)
    return rng.exponential(1.0, 30), rng.exponential(1.5, 28)


def _dz(a: np.ndarray, b: np.ndarray) -> float:
    d = a - b
    return float(d.mean() / d.std(ddof=1))


def _cohen_d(a: np.ndarray, b: np.ndarray) -> float:
    n1, n2 = a.size, b.size
    pooled = np.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    return float((a.mean() - b.mean()) / pooled)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_paired_normal_uses_paired_t(alternative: str) -> None:
    a, b = _paired_normal()
    shapiro = st.shapiro(a - b).pvalue
    assert shapiro >= 0.05
    r = compare(a, b, paired=True, alternative=alternative)
    ref = st.ttest_rel(a, b, alternative=alternative)
    assert r.test == "paired t-test"
    assert r.checks == {"shapiro_p_diff": pytest.approx(shapiro)}
    assert (r.statistic, r.pvalue, r.df) == pytest.approx((ref.statistic, ref.pvalue, ref.df))
    assert r.effect_size == pytest.approx(_dz(a, b))
    assert r.estimate == pytest.approx(np.mean(a - b))
    assert r.ci == pytest.approx(tuple(ref.confidence_interval(0.95)))
    assert "Shapiro-Wilk p = " in r.reason and "paired t-test" in r.reason


def test_paired_t_interval_by_hand() -> None:
    a, b = _paired_normal()
    d = a - b
    half = st.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    r = compare(a, b, paired=True)
    assert r.ci == pytest.approx((d.mean() - half, d.mean() + half))
    low, high = compare(a, b, paired=True, alternative="greater").ci
    assert high == np.inf
    assert low == pytest.approx(
        d.mean() - st.t.ppf(0.95, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    )


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_paired_skewed_uses_wilcoxon(alternative: str) -> None:
    a, b = _paired_skewed()
    d = a - b
    assert st.shapiro(d).pvalue < 0.05
    r = compare(a, b, paired=True, alternative=alternative)
    ref = st.wilcoxon(a, b, alternative=alternative)
    assert r.test == "Wilcoxon signed-rank test"
    assert (r.statistic, r.pvalue) == pytest.approx((ref.statistic, ref.pvalue))
    ranks = st.rankdata(np.abs(d))
    t_plus, t_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    assert r.effect_size == pytest.approx((t_plus - t_minus) / (t_plus + t_minus))
    i, j = np.triu_indices(d.size)
    assert r.estimate == pytest.approx(np.median((d[i] + d[j]) / 2))
    assert r.estimate_name == "Hodges-Lehmann shift"
    assert "normality is rejected" in r.reason


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_independent_normal_equal_variances_uses_student(alternative: str) -> None:
    a, b = _indep(20, "equal")
    sa, sb, lev = st.shapiro(a).pvalue, st.shapiro(b).pvalue, st.levene(a, b).pvalue
    assert min(sa, sb) >= 0.05 and lev >= 0.05
    r = compare(a, b, paired=False, alternative=alternative)
    ref = st.ttest_ind(a, b, equal_var=True, alternative=alternative)
    assert r.test == "Student's t-test"
    assert r.checks == pytest.approx({"shapiro_p_a": sa, "shapiro_p_b": sb, "levene_p": lev})
    assert (r.statistic, r.pvalue, r.df) == pytest.approx((ref.statistic, ref.pvalue, ref.df))
    assert r.effect_size == pytest.approx(_cohen_d(a, b))
    assert r.ci == pytest.approx(tuple(ref.confidence_interval(0.95)))
    assert "equal variances are assumed" in r.reason


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_independent_unequal_variances_uses_welch(alternative: str) -> None:
    a, b = _indep(21, "unequal")
    assert min(st.shapiro(a).pvalue, st.shapiro(b).pvalue) >= 0.05
    assert st.levene(a, b).pvalue < 0.05
    r = compare(a, b, paired=False, alternative=alternative)
    ref = st.ttest_ind(a, b, equal_var=False, alternative=alternative)
    assert r.test == "Welch's t-test"
    assert (r.statistic, r.pvalue, r.df) == pytest.approx((ref.statistic, ref.pvalue, ref.df))
    assert r.effect_size == pytest.approx(_cohen_d(a, b))
    assert "variances differ" in r.reason


def test_welch_interval_by_hand() -> None:
    a, b = _indep(21, "unequal")
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = st.t.ppf(0.975, df) * np.sqrt(va + vb)
    r = compare(a, b, paired=False)
    assert r.df == pytest.approx(df)
    diff = a.mean() - b.mean()
    assert r.ci == pytest.approx((diff - half, diff + half))


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_independent_skewed_uses_mann_whitney(alternative: str) -> None:
    a, b = _indep(22, "skewed")
    assert min(st.shapiro(a).pvalue, st.shapiro(b).pvalue) < 0.05
    r = compare(a, b, paired=False, alternative=alternative)
    ref = st.mannwhitneyu(a, b, alternative=alternative)
    assert r.test == "Mann-Whitney U test"
    assert (r.statistic, r.pvalue) == pytest.approx((ref.statistic, ref.pvalue))
    greater = (a[:, None] > b[None, :]).mean()
    less = (a[:, None] < b[None, :]).mean()
    assert r.effect_size == pytest.approx(greater - less)
    assert r.estimate == pytest.approx(np.median((a[:, None] - b[None, :]).ravel()))
    assert "levene_p" not in r.checks


def test_ties_match_scipy() -> None:
    rng = _rng(30)
    a = np.round(rng.uniform(0.7, 0.9, 40), 2)
    b = np.round(a - rng.exponential(0.02, 40), 2)
    r = compare(a, b, paired=True)
    ref = st.wilcoxon(a - b)
    assert r.test == "Wilcoxon signed-rank test"
    assert (r.statistic, r.pvalue) == pytest.approx((ref.statistic, ref.pvalue))
    r = compare(a, b, paired=False, test="mann-whitney")
    ref = st.mannwhitneyu(a, b)
    assert (r.statistic, r.pvalue) == pytest.approx((ref.statistic, ref.pvalue))


def test_sleep_worked_example_paired_t() -> None:
    # Published: t = -4.0621, df = 9, p-value = 0.002833, 95% CI -2.4598858 -0.7001142.
    r = compare(SLEEP_1, SLEEP_2, paired=True, test="paired-t")
    assert r.test == "paired t-test"
    assert r.statistic == pytest.approx(-4.0621, abs=1e-4)
    assert r.df == 9
    assert r.pvalue == pytest.approx(0.002833, abs=1e-6)
    assert r.ci == pytest.approx((-2.4598858, -0.7001142), abs=1e-7)
    assert r.estimate == pytest.approx(-1.58)
    assert r.significant
    assert "would have chosen" in r.reason and "Wilcoxon" in r.reason


def test_sleep_worked_example_procedure_chooses_wilcoxon() -> None:
    # The differences are not normal (Shapiro-Wilk W = 0.82987, p = 0.03334), so the procedure
    # takes the signed-rank test: V = 0 (every patient slept more with drug 2).
    r = compare(SLEEP_1, SLEEP_2, paired=True)
    assert r.test == "Wilcoxon signed-rank test"
    assert r.checks["shapiro_p_diff"] == pytest.approx(0.03334, abs=1e-5)
    assert r.statistic == 0.0
    assert r.pvalue == pytest.approx(st.wilcoxon(SLEEP_1, SLEEP_2).pvalue)
    assert r.effect_size == -1.0
    assert r.significant


def test_sleep_worked_example_independent() -> None:
    # Published Welch: t = -1.8608, df = 17.776, p = 0.07939, CI -3.3654832 0.2054832;
    # Student (var.equal): t = -1.8608, df = 18, p = 0.07919.
    welch = compare(SLEEP_1, SLEEP_2, paired=False, test="welch")
    assert (welch.statistic, welch.df) == pytest.approx((-1.8608, 17.776), abs=1e-3)
    assert welch.pvalue == pytest.approx(0.07939, abs=1e-5)
    assert welch.ci == pytest.approx((-3.3654832, 0.2054832), abs=1e-7)
    auto = compare(SLEEP_1, SLEEP_2, paired=False)
    assert auto.test == "Student's t-test"
    assert auto.df == 18
    assert auto.pvalue == pytest.approx(0.07919, abs=1e-5)
    assert not auto.significant


def test_one_sided_direction() -> None:
    a, b = _paired_normal()
    greater = compare(a, b, paired=True, alternative="greater")
    less = compare(a, b, paired=True, alternative="less")
    assert greater.estimate > 0 and greater.pvalue < 0.05 < less.pvalue
    assert greater.pvalue + less.pvalue == pytest.approx(1.0)
    assert less.ci[0] == -np.inf


def test_all_zero_differences_give_no_test() -> None:
    a = [0.9, 0.8, 0.7, 0.85]
    r = compare(a, list(a), paired=True)
    assert r.test == "none" and r.pvalue == 1.0 and not r.significant
    assert "all 4 differences are zero" in r.reason
    json.dumps(r.to_dict(), allow_nan=False)


def test_identical_constant_samples_give_no_test() -> None:
    r = compare([1.0, 1.0, 1.0], [1.0, 1.0], paired=False)
    assert r.test == "none" and r.pvalue == 1.0


def test_constant_nonzero_differences_use_wilcoxon() -> None:
    a = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    r = compare(a, a - 0.125, paired=True)
    assert r.test == "Wilcoxon signed-rank test" and "zero variance" in r.reason
    assert r.pvalue == pytest.approx(st.wilcoxon(a, a - 0.125).pvalue)


def test_small_samples_use_rank_tests() -> None:
    r = compare([0.9, 0.8], [0.7, 0.75], paired=True)
    assert r.test == "Wilcoxon signed-rank test" and "at least 3" in r.reason
    assert r.ci == (-np.inf, np.inf)
    r = compare([0.9, 0.8], [0.7, 0.75, 0.6, 0.65], paired=False)
    assert r.test == "Mann-Whitney U test" and "at least 3" in r.reason
    r = compare([1.0, 1.0, 1.0, 1.0], [0.7, 0.75, 0.6, 0.65], paired=False)
    assert r.test == "Mann-Whitney U test" and "zero variance" in r.reason


def test_shapiro_beyond_5000_does_not_warn() -> None:
    rng = _rng(40)
    a = rng.normal(size=5200)
    r = compare(a, a + rng.normal(0.0, 0.1, 5200), paired=True)
    assert "approximate for n > 5000" in r.reason


def test_pairing_inferred_from_dict_keys_and_aligned() -> None:
    a, b = _paired_skewed()
    keys = [f"case{i:02d}" for i in range(a.size)]
    da = dict(zip(keys, a, strict=True))
    db = dict(zip(reversed(keys), b[::-1], strict=True))
    r = compare(da, db)
    assert r.paired
    assert r.pvalue == pytest.approx(compare(a, b, paired=True).pvalue)
    assert "same 30 cases" in r.reason


def test_pairing_inferred_from_series_index() -> None:
    a, b = _paired_normal()
    sa = pd.Series(a, index=[f"c{i}" for i in range(a.size)])
    sb = sa.iloc[::-1].copy()
    sb[:] = b[::-1]
    r = compare(sa, sb)
    assert r.paired and r.pvalue == pytest.approx(compare(a, b, paired=True).pvalue)


def test_disjoint_keys_and_different_lengths_are_independent() -> None:
    r = compare({"x": 0.1, "y": 0.3, "z": 0.2}, {"u": 0.5, "v": 0.6, "w": 0.4})
    assert not r.paired
    r = compare([0.1, 0.3, 0.2], [0.5, 0.6, 0.4, 0.45])
    assert not r.paired and "different lengths" in r.reason


def test_paired_true_uses_shared_cases() -> None:
    a = {"p": 0.9, "q": 0.8, "r": 0.7, "s": 0.6}
    b = {"q": 0.7, "r": 0.65, "s": 0.5, "t": 0.1}
    r = compare(a, b, paired=True)
    assert r.n_a == r.n_b == 3
    assert "1 only in a and 1 only in b left out" in r.reason
    with pytest.raises(InputError, match="share 3 cases but not all"):
        compare(a, b)


def test_to_dict_is_json() -> None:
    r = compare([0.9, 0.8, 0.85, 0.7], [0.6, 0.7, 0.72, 0.5], paired=True, alternative="greater")
    data = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert data["test"] == r.test and data["pvalue"] == pytest.approx(r.pvalue)
    assert data["ci"][1] is None
    assert isinstance(r, ComparisonResult) and data["significant"] is r.significant
    assert "p = " in r.summary()


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "match"),
    [
        ([0.1, np.nan, 0.3], [0.2, 0.3], {}, "a has 1 NaN or infinite.*position"),
        ({"c1": 3.0, "c2": np.inf}, {"c1": 2.0, "c2": 1.0}, {}, r"a .*\['c2'\].*Hausdorff"),
        ([[0.1, 0.2]], [0.3, 0.4], {"paired": False}, "a must be 1-d"),
        ([0.1, 0.2], ["x", "y"], {"paired": False}, "b must be a sequence of numbers"),
        ([0.1], [0.3, 0.4], {"paired": False}, "a needs at least 2"),
        ([0.1, 0.2, 0.3], [0.3, 0.4, 0.5], {}, "paired=None cannot tell"),
        ([0.1, 0.2, 0.3], [0.3, 0.4], {"paired": True}, "equal length"),
        ({"a": 1.0, "b": 2.0}, [1.0, 2.0], {"paired": True}, "only a is keyed"),
        ([0.1, 0.2], [0.3, 0.4], {"paired": "yes"}, "paired must be"),
        ([0.1, 0.2], [0.3, 0.4], {"paired": True, "alpha": 1.5}, "alpha must be"),
        ([0.1, 0.2], [0.3, 0.4], {"paired": True, "alternative": "bigger"}, "alternative"),
        ([0.1, 0.2], [0.3, 0.4], {"paired": True, "test": "anova"}, "test must be"),
        ([0.1, 0.2], [0.3, 0.4], {"paired": True, "test": "welch"}, "does not apply"),
        ([0.1, 0.2, 0.3], [0.2, 0.3, 0.4], {"paired": True, "test": "paired-t"}, "zero variance"),
    ],
)
def test_bad_input(a: object, b: object, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        compare(a, b, **kwargs)


def test_duplicate_series_index_rejected() -> None:
    s = pd.Series([0.1, 0.2, 0.3], index=["x", "x", "y"])
    with pytest.raises(InputError, match="duplicate case keys"):
        compare(s, s.copy())
