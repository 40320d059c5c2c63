"""The result of comparing two samples."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def _json_float(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class ComparisonResult:
    """Outcome of :func:`fastseg.stats.compare`.

    Differences and shifts are always ``a - b``; ``alternative="greater"`` tests ``a > b``.

    Attributes
    ----------
    test : one of ``"paired t-test"``, ``"Wilcoxon signed-rank test"``, ``"Student's t-test"``,
        ``"Welch's t-test"``, ``"Mann-Whitney U test"``, or ``"none"`` (no test possible).
    reason : one sentence saying why that test was chosen, with the Shapiro-Wilk and Levene
        p-values that decided it.
    statistic : t for t-tests, SciPy's W for Wilcoxon (two-sided: the smaller of the signed
        rank sums; one-sided: the sum of positive ranks), U of ``a`` for Mann-Whitney.
    pvalue : p-value of the chosen test (``pvalue_adjusted``: after Holm, in
        :func:`compare_many`).
    effect_size : positive when ``a`` tends to be larger. Cohen's d_z (mean difference / SD of
        the differences) for the paired t-test; Cohen's d with the pooled SD for Student and
        Welch; rank-biserial r = 2U/(n_a n_b) - 1 = P(a > b) - P(a < b) for Mann-Whitney;
        matched-pairs rank-biserial r = (T+ - T-)/(T+ + T-) for Wilcoxon.
    estimate, ci : the difference ``a - b`` and its ``1 - alpha`` confidence interval, matched
        to ``alternative`` (one-sided tests give a half-open interval with an infinite bound).
        Mean difference with the t-based interval (Welch's df for Welch) for t-tests;
        Hodges-Lehmann shift with its distribution-free interval for rank tests (exact rank
        distribution without ties up to 300 pairs / 10,000 a-b pairs, else a normal
        approximation; with ties the interval is approximate).
        An interval that the sample is too small to bound is ``(-inf, inf)``.
    checks : the assumption tests, e.g. ``{"shapiro_p_diff": ...}`` or ``{"shapiro_p_a": ...,
        "shapiro_p_b": ..., "levene_p": ...}``.
    """

    test: str
    reason: str
    statistic: float
    pvalue: float
    effect_size: float
    ci: tuple[float, float]
    paired: bool
    alpha: float
    alternative: str
    n_a: int
    n_b: int
    estimate: float
    estimate_name: str
    effect_size_name: str
    df: float | None = None
    checks: dict[str, float] = field(default_factory=dict)
    names: tuple[str, str] = ("a", "b")
    pvalue_adjusted: float | None = None

    @property
    def significant(self) -> bool:
        """Whether the (Holm-adjusted, where set) p-value is below ``alpha``."""
        p = self.pvalue if self.pvalue_adjusted is None else self.pvalue_adjusted
        return bool(p < self.alpha)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-serialisable dict; NaN and infinite numbers become ``None``."""
        return {
            "names": list(self.names),
            "test": self.test,
            "reason": self.reason,
            "paired": self.paired,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "alternative": self.alternative,
            "alpha": self.alpha,
            "statistic": _json_float(self.statistic),
            "df": _json_float(self.df),
            "pvalue": _json_float(self.pvalue),
            "pvalue_adjusted": _json_float(self.pvalue_adjusted),
            "significant": self.significant,
            "effect_size": _json_float(self.effect_size),
            "effect_size_name": self.effect_size_name,
            "estimate": _json_float(self.estimate),
            "estimate_name": self.estimate_name,
            "ci": [_json_float(self.ci[0]), _json_float(self.ci[1])],
            "checks": {k: _json_float(v) for k, v in self.checks.items()},
        }

    def summary(self) -> str:
        """A short human-readable report (several lines)."""
        name_a, name_b = self.names
        p = f"p = {self.pvalue:.4g}"
        if self.pvalue_adjusted is not None:
            p += f" (Holm-adjusted {self.pvalue_adjusted:.4g})"
        verdict = "significant" if self.significant else "not significant"
        return "\n".join(
            [
                f"{name_a} vs {name_b}: {self.test}, {p}, {verdict} at alpha = {self.alpha:g}",
                f"  {self.estimate_name} ({name_a} - {name_b}) = {self.estimate:.4g}, "
                f"{100 * (1 - self.alpha):g}% CI [{self.ci[0]:.4g}, {self.ci[1]:.4g}]",
                f"  {self.effect_size_name} = {self.effect_size:.4g}",
                f"  {self.reason}",
            ]
        )
