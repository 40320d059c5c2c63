"""compare_tables: two metric CSVs compared per label, paired by case."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from fastseg.errors import InputError
from fastseg.stats import compare_tables, read_metric_table


def write_table(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def metric_rows(values: dict[int, np.ndarray], cases: list[str]) -> list[dict[str, object]]:
    return [
        {"case": case, "label": label, "dice": float(v[i]), "hd": 1.0}
        for label, v in values.items()
        for i, case in enumerate(cases)
    ]


def test_paired_by_case_per_label_matches_scipy(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    cases = [f"case_{i:03d}" for i in range(25)]
    a = {1: rng.normal(0.85, 0.03, 25), 2: rng.normal(0.7, 0.05, 25)}
    b = {1: a[1] - rng.normal(0.02, 0.01, 25), 2: a[2] + rng.normal(0.0, 0.02, 25)}
    pa = write_table(tmp_path / "a.csv", metric_rows(a, cases))
    # b's rows in another order: pairing goes by case, not by row
    pb = write_table(tmp_path / "b.csv", metric_rows(b, cases)[::-1])
    results = compare_tables(pa, pb, metric="dice", by="label")
    assert list(results) == ["1", "2"]
    for label in (1, 2):
        r = results[str(label)]
        assert r.paired and r.n_a == 25
        if r.test == "paired t-test":
            expected = sps.ttest_rel(a[label], b[label])
        else:
            assert r.test == "Wilcoxon signed-rank test"
            expected = sps.wilcoxon(a[label], b[label])
        assert r.pvalue == pytest.approx(expected.pvalue, rel=1e-9)
        assert r.names == ("a", "b")


def test_disjoint_cases_are_independent(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    pa = write_table(
        tmp_path / "a.csv",
        metric_rows({1: rng.normal(0.8, 0.05, 12)}, [f"a{i}" for i in range(12)]),
    )
    pb = write_table(
        tmp_path / "b.csv",
        metric_rows({1: rng.normal(0.7, 0.05, 15)}, [f"b{i}" for i in range(15)]),
    )
    result = compare_tables(pa, pb)["1"]
    assert not result.paired and (result.n_a, result.n_b) == (12, 15)
    # the reason says why (no --paired option exists to have been "given")
    assert "a and b have no case in common (independent)" in result.reason


def test_shared_cases_are_paired_and_the_rest_left_out(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    cases = [f"c{i}" for i in range(12)]
    pa = write_table(tmp_path / "a.csv", metric_rows({1: rng.normal(0.8, 0.05, 12)}, cases))
    pb = write_table(tmp_path / "b.csv", metric_rows({1: rng.normal(0.7, 0.05, 10)}, cases[2:]))
    result = compare_tables(pa, pb)["1"]
    assert result.paired and result.n_a == result.n_b == 10
    assert "2 only in a and 0 only in b left out" in result.reason
    full = compare_tables(pa, pa)["1"]
    assert full.paired and "keyed by the same 12 cases" in full.reason


def test_bad_tables_name_file_and_problem(tmp_path: Path) -> None:
    good = write_table(tmp_path / "good.csv", metric_rows({1: np.ones(3)}, ["x", "y", "z"]))
    no_metric = write_table(tmp_path / "nometric.csv", [{"case": "x", "label": 1}])
    with pytest.raises(InputError, match=r"nometric.csv: expected a column 'dice'"):
        compare_tables(good, no_metric)
    dup = write_table(tmp_path / "dup.csv", [{"case": "x", "label": 1, "dice": 1}] * 2)
    with pytest.raises(InputError, match=r"dup.csv, line 3: case 'x' appears twice"):
        read_metric_table(dup, "dice")
    text = write_table(tmp_path / "text.csv", [{"case": "x", "label": 1, "dice": "abc"}])
    with pytest.raises(InputError, match=r"text.csv, line 2: dice = 'abc' is not a number"):
        read_metric_table(text, "dice")
    with pytest.raises(InputError, match=r"missing.csv: cannot read"):
        read_metric_table(tmp_path / "missing.csv", "dice")


def test_infinite_distances_error_unless_dropped(tmp_path: Path) -> None:
    rows_a = [
        {"case": f"c{i}", "label": 1, "hd": v}
        for i, v in enumerate([1.0, 2.0, float("inf"), 3.0, 2.5, 1.5])
    ]
    rows_b = [
        {"case": f"c{i}", "label": 1, "hd": v} for i, v in enumerate([1.5, 2.0, 2.0, 3.5, 2.0, 2.5])
    ]
    pa, pb = write_table(tmp_path / "a.csv", rows_a), write_table(tmp_path / "b.csv", rows_b)
    with pytest.raises(InputError, match="empty"):
        compare_tables(pa, pb, metric="hd")
    result = compare_tables(pa, pb, metric="hd", drop_nonfinite=True)["1"]
    assert result.n_a == 5 and result.paired
