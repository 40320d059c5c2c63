"""Hypothesis tests for comparing segmentation methods, chosen the way a reviewer would.

:func:`compare` picks the test for two samples of a metric (paired or independent,
Shapiro-Wilk normality, Levene equal variances) and reports the statistic, p-value, effect
size and a confidence interval of the difference ``a - b``; :func:`compare_many` compares
every pair of several methods with Holm's correction.
"""

from __future__ import annotations

from fastseg.stats._compare import compare
from fastseg.stats._multiple import compare_many, holm
from fastseg.stats._result import ComparisonResult
from fastseg.stats._tables import compare_tables, read_metric_table

__all__ = [
    "ComparisonResult",
    "compare",
    "compare_many",
    "compare_tables",
    "holm",
    "read_metric_table",
]
