"""Compare two metric tables (CSV files written by ``fastseg evaluate``) column by column."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from fastseg.errors import InputError
from fastseg.stats._compare import compare
from fastseg.stats._result import ComparisonResult


def read_metric_table(
    path: str | Path, metric: str, by: str | None = "label"
) -> dict[str, dict[str, float]]:
    """``{group: {case: value}}`` from a CSV with columns ``case``, ``metric`` and (optionally) ``by``.

    A CSV with one row per case and label (``fastseg evaluate``'s) gives one group per label.
    """
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise InputError(f"{path}: cannot read metric table ({exc.strerror or exc})") from None
    if not rows:
        raise InputError(f"{path}: metric table has no rows")
    columns = set(rows[0])
    for needed in ("case", metric, *([by] if by else [])):
        if needed not in columns:
            raise InputError(f"{path}: expected a column '{needed}', got columns {sorted(columns)}")
    table: dict[str, dict[str, float]] = {}
    for line, row in enumerate(rows, start=2):
        group = row[by] if by else "all"
        try:
            value = float(row[metric])
        except ValueError:
            raise InputError(
                f"{path}, line {line}: {metric} = {row[metric]!r} is not a number"
            ) from None
        cases = table.setdefault(group, {})
        if row["case"] in cases:
            raise InputError(
                f"{path}, line {line}: case {row['case']!r} appears twice for {by} {group!r}"
            )
        cases[row["case"]] = value
    return table


def compare_tables(
    a: str | Path,
    b: str | Path,
    metric: str = "dice",
    by: str | None = "label",
    alpha: float = 0.05,
    alternative: str = "two-sided",
    drop_nonfinite: bool = False,
) -> dict[str, ComparisonResult]:
    """Compare ``metric`` of two tables per group (``by`` column, e.g. label).

    Cases present in both tables are paired (as the same scans segmented by two methods);
    tables with disjoint cases are compared as independent groups. Non-finite values (an empty
    mask gives an infinite Hausdorff distance) are an error unless ``drop_nonfinite``.
    """
    names = (Path(a).stem, Path(b).stem)
    table_a, table_b = read_metric_table(a, metric, by), read_metric_table(b, metric, by)
    missing = sorted(set(table_a) ^ set(table_b))
    if missing:
        raise InputError(f"{by} {missing} present in only one of {a} and {b}")
    results = {}
    for group in sorted(table_a, key=_natural_key):
        values_a, values_b = table_a[group], table_b[group]
        if drop_nonfinite:
            values_a = {k: v for k, v in values_a.items() if math.isfinite(v)}
            values_b = {k: v for k, v in values_b.items() if math.isfinite(v)}
        shared = set(values_a) & set(values_b)
        # some cases in common: compare those; all or none: compare infers (and says) which
        paired = True if shared and set(values_a) != set(values_b) else None
        results[group] = compare(
            values_a, values_b, paired=paired, alpha=alpha, alternative=alternative, names=names
        )
    return results


def _natural_key(text: str) -> tuple[int, float | str]:
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)
