"""holm() against a hand-worked example and the definition; compare_many() wiring."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hs

from fastseg.errors import InputError
from fastseg.stats import compare, compare_many, holm


def test_holm_hand_example() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> monotone 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    assert holm([]).shape == (0,)


@given(hs.lists(hs.floats(0.0, 1.0), max_size=12))
def test_holm_matches_definition(p: list[float]) -> None:
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    expected = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        expected[i] = running
    np.testing.assert_allclose(holm(p), expected)


def test_holm_matches_statsmodels() -> None:
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    p = np.random.default_rng(0).uniform(0, 0.2, 9)
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])


@pytest.mark.parametrize("bad", [[0.1, 1.2], [np.nan], [[0.1, 0.2]]])
def test_holm_bad_input(bad: list[object]) -> None:
    with pytest.raises(InputError, match="pvalues"):
        holm(bad)


def test_compare_many_holm_across_pairs() -> None:
    rng = np.random.default_rng(5)
    cases = [f"c{i}" for i in range(20)]
    base = rng.normal(0.8, 0.05, 20)
    groups = {
        "unet": dict(zip(cases, base, strict=True)),
        "unet+tta": dict(zip(cases, base + rng.normal(0.01, 0.01, 20), strict=True)),
        "unet+pp": dict(zip(cases, base + rng.exponential(0.02, 20), strict=True)),
    }
    results = compare_many(groups)
    assert list(results) == [("unet", "unet+tta"), ("unet", "unet+pp"), ("unet+tta", "unet+pp")]
    raw = [compare(groups[x], groups[y]).pvalue for x, y in results]
    assert [r.pvalue for r in results.values()] == pytest.approx(raw)
    adjusted = holm(raw)
    for (key, r), adj in zip(results.items(), adjusted, strict=True):
        assert r.paired and r.names == key
        assert r.pvalue_adjusted == pytest.approx(adj)
        assert r.significant == (adj < 0.05)
        assert r.to_dict()["pvalue_adjusted"] == pytest.approx(adj)


def test_compare_many_needs_two_groups() -> None:
    with pytest.raises(InputError, match="at least 2"):
        compare_many({"only": [0.1, 0.2]})
