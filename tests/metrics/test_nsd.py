"""Normalised surface Dice against DeepMind's surface-distance and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from metrics_reference import deepmind_nsd
from metrics_strategies import mask_pairs, spacings

from fastseg import _native
from fastseg.metrics import evaluate

tolerances = st.floats(0.0, 6.0, allow_nan=False)


def native_nsd(
    a: np.ndarray, m: np.ndarray, sp: tuple[float, float, float], tol: float, method: int
) -> float:
    out = _native.label_metrics(
        a.astype(np.uint8), m.astype(np.uint8), sp, [1], "max_directed", tol, method
    )
    return float(out["nsd"][0])


@given(pair=mask_pairs(), spacing=spacings, tol=tolerances)
def test_nsd_matches_deepmind(
    pair: tuple[np.ndarray, np.ndarray], spacing: tuple[float, float, float], tol: float
) -> None:
    pytest.importorskip("surface_distance")
    a, m = pair
    expected = deepmind_nsd(a, m, spacing, tol)
    got = evaluate(a, m, spacing=spacing, nsd_tolerance=tol)[1]["nsd"]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


@given(pair=mask_pairs(), spacing=spacings, tol=tolerances)
def test_nsd_probe_and_edt_paths_agree(
    pair: tuple[np.ndarray, np.ndarray], spacing: tuple[float, float, float], tol: float
) -> None:
    a, m = pair
    probe = native_nsd(a, m, spacing, tol, 1)
    edt = native_nsd(a, m, spacing, tol, 2)
    assert probe == pytest.approx(edt, rel=1e-12, abs=1e-15)


def test_nsd_hand_computed() -> None:
    a = np.zeros((6, 6, 6), bool)
    a[1:4, 1:4, 1:4] = True
    sp = (2.5, 0.8, 0.6)
    assert evaluate(a, a, spacing=sp, nsd_tolerance=0.0)[1]["nsd"] == 1.0
    far = np.zeros((6, 6, 40), bool)
    near = np.zeros((6, 6, 40), bool)
    far[2, 2, 0] = True
    near[2, 2, 39] = True
    # Two voxels 39 x 0.6 mm apart along x, each with 8 border corners of equal area: the 4 facing
    # corners of each are 38 * 0.6 = 22.8 mm from the other's, the 4 back corners 23.4 mm.
    assert evaluate(far, near, spacing=sp, nsd_tolerance=22.7)[1]["nsd"] == 0.0
    assert evaluate(far, near, spacing=sp, nsd_tolerance=22.81)[1]["nsd"] == pytest.approx(0.5)
    assert evaluate(far, near, spacing=sp, nsd_tolerance=23.41)[1]["nsd"] == pytest.approx(1.0)


def test_nsd_none_leaves_it_out() -> None:
    a = np.ones((2, 2, 2), np.uint8)
    assert np.isnan(evaluate(a, a, nsd_tolerance=None)[1]["nsd"])


def test_nsd_large_tolerance_uses_the_edt_and_matches_deepmind() -> None:
    pytest.importorskip("surface_distance")
    rng = np.random.default_rng(4)
    a = rng.random((10, 12, 14)) < 0.2
    m = rng.random((10, 12, 14)) < 0.2
    sp = (0.5, 0.4, 0.3)
    for tol in (0.0, 0.35, 1.0, 2.5, 40.0):
        assert evaluate(a, m, spacing=sp, nsd_tolerance=tol)[1]["nsd"] == pytest.approx(
            deepmind_nsd(a, m, sp, tol), rel=1e-9
        )
