"""The test-selection procedure: paired or independent, normality, equal variances."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from scipy import stats as st
from scipy.stats import rankdata

from fastseg.errors import InputError
from fastseg.stats._inputs import prepare
from fastseg.stats._ranks import hodges_lehmann_independent, hodges_lehmann_paired
from fastseg.stats._result import ComparisonResult

ALTERNATIVES = ("two-sided", "greater", "less")
TESTS = ("auto", "paired-t", "wilcoxon", "student", "welch", "mann-whitney")

PAIRED_T = "paired t-test"
WILCOXON = "Wilcoxon signed-rank test"
STUDENT = "Student's t-test"
WELCH = "Welch's t-test"
MANN_WHITNEY = "Mann-Whitney U test"
NONE = "none"

_NAMES = {
    "paired-t": PAIRED_T,
    "wilcoxon": WILCOXON,
    "student": STUDENT,
    "welch": WELCH,
    "mann-whitney": MANN_WHITNEY,
}


def _shapiro(x: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*N > 5000.*", category=UserWarning)
        return float(st.shapiro(x).pvalue)


def _constant(x: np.ndarray) -> bool:
    """All values equal up to floating-point rounding (``0.3 - 0.4 != 0.1 - 0.2``)."""
    return bool(np.ptp(x) <= 1e-12 * np.max(np.abs(x)))


def _fmt(p: float) -> str:
    return f"{p:.3g}"


def _choose_paired(d: np.ndarray, alpha: float, checks: dict[str, float]) -> tuple[str, str]:
    n = d.size
    if n < 3:
        return WILCOXON, (
            f"Shapiro-Wilk needs at least 3 differences (n = {n}), so the non-parametric "
            "Wilcoxon signed-rank test is used"
        )
    if _constant(d):
        return WILCOXON, (
            "the differences are all equal (zero variance), so normality cannot be checked and "
            "the t-test is undefined; the Wilcoxon signed-rank test is used"
        )
    p = checks["shapiro_p_diff"] = _shapiro(d)
    large = " (approximate for n > 5000)" if n > 5000 else ""
    if p >= alpha:
        return PAIRED_T, (
            f"Shapiro-Wilk p = {_fmt(p)}{large} >= alpha = {alpha:g} for the differences, so "
            "normality is not rejected and the paired t-test is used"
        )
    return WILCOXON, (
        f"Shapiro-Wilk p = {_fmt(p)}{large} < alpha = {alpha:g} for the differences, so "
        "normality is rejected and the Wilcoxon signed-rank test is used"
    )


def _choose_independent(
    a: np.ndarray, b: np.ndarray, alpha: float, checks: dict[str, float], names: tuple[str, str]
) -> tuple[str, str]:
    small = [f"{name} (n = {x.size})" for x, name in zip((a, b), names, strict=True) if x.size < 3]
    if small:
        return MANN_WHITNEY, (
            f"Shapiro-Wilk needs at least 3 values and {' and '.join(small)} has fewer, so the "
            "non-parametric Mann-Whitney U test is used"
        )
    constant = [name for x, name in zip((a, b), names, strict=True) if _constant(x)]
    if constant:
        return MANN_WHITNEY, (
            f"{' and '.join(constant)} {'is' if len(constant) == 1 else 'are'} constant (zero "
            "variance), so normality cannot be checked; the Mann-Whitney U test is used"
        )
    pa = checks["shapiro_p_a"] = _shapiro(a)
    pb = checks["shapiro_p_b"] = _shapiro(b)
    large = " (approximate for n > 5000)" if max(a.size, b.size) > 5000 else ""
    shapiro = f"Shapiro-Wilk p = {_fmt(pa)} ({names[0]}) and {_fmt(pb)} ({names[1]}){large}"
    if pa < alpha or pb < alpha:
        rejected = " and ".join(n for p, n in zip((pa, pb), names, strict=True) if p < alpha)
        return MANN_WHITNEY, (
            f"{shapiro}: normality is rejected at alpha = {alpha:g} for {rejected}, so the "
            "Mann-Whitney U test is used"
        )
    pl = checks["levene_p"] = float(st.levene(a, b).pvalue)
    if pl >= alpha:
        return STUDENT, (
            f"{shapiro} >= alpha = {alpha:g}, so normality is not rejected; Levene p = "
            f"{_fmt(pl)} >= alpha, so equal variances are assumed and Student's t-test is used"
        )
    return WELCH, (
        f"{shapiro} >= alpha = {alpha:g}, so normality is not rejected; Levene p = "
        f"{_fmt(pl)} < alpha, so the variances differ and Welch's t-test is used"
    )


def _no_test(reason: str, **common: object) -> ComparisonResult:
    return ComparisonResult(
        test=NONE,
        reason=reason,
        statistic=float("nan"),
        pvalue=1.0,
        effect_size=0.0,
        ci=(0.0, 0.0),
        estimate=0.0,
        estimate_name="difference",
        effect_size_name="none",
        **common,  # type: ignore[arg-type]
    )


def compare(
    a: object,
    b: object,
    paired: bool | None = None,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    *,
    test: str = "auto",
    names: tuple[str, str] = ("a", "b"),
) -> ComparisonResult:
    """Test whether two samples of a metric differ, choosing the test as a reviewer would.

    Paired samples: Shapiro-Wilk on the differences ``a - b``; normal -> paired t-test, else
    Wilcoxon signed-rank (SciPy's defaults: zero differences dropped). Independent samples:
    Shapiro-Wilk on each; both normal -> Levene (SciPy's default, median-centred) -> Student's
    t-test if the variances are equal else Welch's; otherwise Mann-Whitney U. Every
    assumption test uses the same ``alpha``. Fewer than 3 values, or zero variance, make
    normality uncheckable and select the rank test; all-zero paired differences (or
    identical constant samples) allow no test and give ``test="none"``, p = 1.

    Parameters
    ----------
    a, b : one metric value per case: sequences, NumPy arrays, dicts ``{case: value}`` or
        pandas Series indexed by case. NaN/inf values are rejected.
    paired : True, False, or None to infer: dicts / Series keyed by the same cases are paired,
        by disjoint cases independent (partly overlapping keys are an error); plain sequences
        of different lengths are independent, of equal lengths an error (say which). With
        ``paired=True``, keyed inputs are aligned by case and only shared cases are compared.
    alpha : significance level of the test, of the assumption tests and of ``1 - alpha``
        confidence intervals.
    alternative : ``"two-sided"``, ``"greater"`` (a > b) or ``"less"`` (a < b).
    test : ``"auto"`` (the procedure above) or a test to force: ``"paired-t"``,
        ``"wilcoxon"``, ``"student"``, ``"welch"``, ``"mann-whitney"``; the reason then says
        what the procedure would have chosen.
    names : how the result and its reason call a and b.
    """
    if isinstance(alpha, bool) or not (isinstance(alpha, numbers.Real) and 0.0 < alpha < 1.0):
        raise InputError(f"alpha must be a number in (0, 1), got {alpha!r}")
    alpha = float(alpha)
    if alternative not in ALTERNATIVES:
        raise InputError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    if test not in TESTS:
        raise InputError(f"test must be one of {TESTS}, got {test!r}")
    names = (str(names[0]), str(names[1]))
    samples = prepare(a, b, paired, *names)
    x, y = samples.a, samples.b
    if test != "auto" and (test in ("paired-t", "wilcoxon")) != samples.paired:
        kind = "paired" if samples.paired else "independent"
        raise InputError(f"test={test!r} does not apply to {kind} samples ({samples.note})")

    common: dict[str, object] = {
        "paired": samples.paired,
        "alpha": alpha,
        "alternative": alternative,
        "n_a": int(x.size),
        "n_b": int(y.size),
        "names": names,
    }
    checks: dict[str, float] = {}
    if samples.paired:
        d = x - y
        if not d.any():
            return _no_test(
                f"Paired samples ({samples.note}): all {d.size} differences are zero, so no test "
                "is possible and p = 1 (no evidence of a difference)",
                checks=checks,
                **common,
            )
        chosen, why = _choose_paired(d, alpha, checks)
    else:
        if _constant(np.concatenate([x, y])):
            return _no_test(
                f"Independent samples ({samples.note}): every value of both samples is "
                f"{x[0]:g}, so no test is possible and p = 1 (no evidence of a difference)",
                checks=checks,
                **common,
            )
        chosen, why = _choose_independent(x, y, alpha, checks, names)

    kind = "Paired" if samples.paired else "Independent"
    sizes = f"n = {x.size}" if samples.paired else f"n = {x.size}, {y.size}"
    reason = f"{kind} samples ({samples.note}; {sizes}): {why}."
    if test != "auto":
        forced = _NAMES[test]
        if forced != chosen:
            reason = (
                f"{forced[0].upper()}{forced[1:]} was requested (test={test!r}); the procedure "
                f"would have chosen otherwise: {reason}"
            )
        chosen = forced
    return _run(chosen, x, y, alpha, alternative, reason, checks, common)


def _run(
    chosen: str,
    x: np.ndarray,
    y: np.ndarray,
    alpha: float,
    alternative: str,
    reason: str,
    checks: dict[str, float],
    common: dict[str, object],
) -> ComparisonResult:
    level = 1.0 - alpha
    if chosen in (PAIRED_T, STUDENT, WELCH):
        if chosen == PAIRED_T:
            d = x - y
            if _constant(d):
                raise InputError(
                    "the paired t-test is undefined: the differences have zero variance"
                )
            res = st.ttest_rel(x, y, alternative=alternative)
            effect = float(d.mean() / d.std(ddof=1))
            effect_name = "Cohen's d_z"
        else:
            if _constant(x) and _constant(y):
                raise InputError(f"{chosen} is undefined: both samples have zero variance")
            res = st.ttest_ind(x, y, equal_var=chosen == STUDENT, alternative=alternative)
            pooled = np.sqrt(
                ((x.size - 1) * x.var(ddof=1) + (y.size - 1) * y.var(ddof=1))
                / (x.size + y.size - 2)
            )
            effect = float((x.mean() - y.mean()) / pooled)
            effect_name = "Cohen's d (pooled SD)"
        ci = res.confidence_interval(confidence_level=level)
        return ComparisonResult(
            test=chosen,
            reason=reason,
            statistic=float(res.statistic),
            pvalue=float(res.pvalue),
            effect_size=effect,
            effect_size_name=effect_name,
            estimate=float(x.mean() - y.mean()),
            estimate_name="mean difference",
            ci=(float(ci.low), float(ci.high)),
            df=float(res.df),
            checks=checks,
            **common,  # type: ignore[arg-type]
        )
    if chosen == WILCOXON:
        d = x - y
        res = st.wilcoxon(d, alternative=alternative)
        nonzero = d[d != 0]
        ranks = rankdata(np.abs(nonzero))
        t_plus, t_minus = float(ranks[nonzero > 0].sum()), float(ranks[nonzero < 0].sum())
        effect = (t_plus - t_minus) / (t_plus + t_minus)
        effect_name = "matched-pairs rank-biserial r"
        estimate, ci = hodges_lehmann_paired(d, alpha, alternative)
    else:
        res = st.mannwhitneyu(x, y, alternative=alternative)
        effect = 2.0 * float(res.statistic) / (x.size * y.size) - 1.0
        effect_name = "rank-biserial r"
        estimate, ci = hodges_lehmann_independent(x, y, alpha, alternative)
    return ComparisonResult(
        test=chosen,
        reason=reason,
        statistic=float(res.statistic),
        pvalue=float(res.pvalue),
        effect_size=float(effect),
        effect_size_name=effect_name,
        estimate=float(estimate),
        estimate_name="Hodges-Lehmann shift",
        ci=(float(ci[0]), float(ci[1])),
        checks=checks,
        **common,  # type: ignore[arg-type]
    )
