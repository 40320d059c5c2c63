"""hd, hd95, assd, avd against MedPy, MONAI and a brute-force SciPy implementation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from metrics_reference import (
    avd,
    avd_pairwise,
    directed_surface_distances,
    medpy_assd,
    medpy_hd,
    medpy_hd95,
    monai_hd95,
)
from metrics_strategies import label_map_pairs, mask_pairs, spacings

from fastseg.metrics import evaluate

RTOL = 1e-6


def one_label(
    a: np.ndarray, m: np.ndarray, spacing: tuple[float, float, float], **kw: object
) -> dict:
    return evaluate(a.astype(np.uint8), m.astype(np.uint8), spacing=spacing, labels=[1], **kw)[1]


@given(pair=mask_pairs(), spacing=spacings)
def test_hd_assd_and_pooled_hd95_match_medpy(
    pair: tuple[np.ndarray, np.ndarray], spacing: tuple[float, float, float]
) -> None:
    a, m = pair
    row = one_label(a, m, spacing, hd95="pooled")
    assert row["hd"] == pytest.approx(medpy_hd(a, m, spacing), rel=RTOL)
    assert row["hd95"] == pytest.approx(medpy_hd95(a, m, spacing), rel=RTOL)
    assert row["assd"] == pytest.approx(medpy_assd(a, m, spacing), rel=RTOL)


@settings(max_examples=25)  # MONAI costs ~0.1 s a call
@given(pair=mask_pairs(), spacing=spacings)
def test_max_directed_hd95_matches_monai(
    pair: tuple[np.ndarray, np.ndarray], spacing: tuple[float, float, float]
) -> None:
    # MONAI crops with a zero margin and erodes with border_value 0, so its surface is DESIGN.md's
    # (array edge included); it takes torch.quantile of float32 distances, hence rel 1e-5.
    a, m = pair
    row = one_label(a, m, spacing)
    assert row["hd95"] == pytest.approx(monai_hd95(a, m, spacing), rel=1e-5, abs=1e-6)


@given(pair=mask_pairs(), spacing=spacings)
def test_max_directed_hd95_is_max_of_numpy_percentiles(
    pair: tuple[np.ndarray, np.ndarray], spacing: tuple[float, float, float]
) -> None:
    a, m = pair
    expected = max(
        np.percentile(directed_surface_distances(a, m, spacing), 95),
        np.percentile(directed_surface_distances(m, a, spacing), 95),
    )
    assert one_label(a, m, spacing)["hd95"] == pytest.approx(expected, rel=1e-12)


@given(pair=mask_pairs(), spacing=spacings)
def test_avd_matches_scipy_brute_force(
    pair: tuple[np.ndarray, np.ndarray], spacing: tuple[float, float, float]
) -> None:
    a, m = pair
    assert one_label(a, m, spacing)["avd"] == pytest.approx(avd(a, m, spacing), rel=1e-12)


def test_avd_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(3)
    for _ in range(5):
        a = rng.random((5, 7, 6)) < 0.3
        m = rng.random((5, 7, 6)) < 0.3
        sp = (2.5, 0.8, 0.7)
        assert one_label(a, m, sp)["avd"] == pytest.approx(avd_pairwise(a, m, sp), rel=1e-12)


def test_hand_computed_two_single_voxels() -> None:
    a = np.zeros((4, 5, 6), bool)
    m = np.zeros((4, 5, 6), bool)
    a[0, 0, 0] = True
    m[3, 4, 5] = True
    sp = (2.0, 0.5, 1.5)
    d = float(np.sqrt((3 * 2.0) ** 2 + (4 * 0.5) ** 2 + (5 * 1.5) ** 2))
    row = one_label(a, m, sp)
    for key in ("hd", "hd95", "assd", "avd"):
        assert row[key] == pytest.approx(d, rel=1e-14)
    assert row["dice"] == 0 and row["nsd"] == 0


def test_hand_computed_shifted_slab() -> None:
    # Two 3-voxel-thick slabs across a 2x2 cross-section, one voxel apart along z (2 mm): every
    # voxel is on the surface (array edge), so directed distances are 0 (overlap) or 2 mm.
    a = np.zeros((8, 2, 2), bool)
    m = np.zeros((8, 2, 2), bool)
    a[2:5] = True
    m[3:6] = True
    row = one_label(a, m, (2.0, 1.0, 1.0))
    assert row["hd"] == pytest.approx(2.0)
    assert row["assd"] == pytest.approx(2.0 / 3.0)
    assert row["avd"] == pytest.approx(2.0 / 3.0)
    assert row["dice"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "shape, spacing",
    [((1, 1, 1), (1.0, 1.0, 1.0)), ((1, 9, 1), (3.0, 0.5, 2.0)), ((7, 1, 8), (1.0, 2.0, 0.4))],
)
def test_degenerate_shapes_match_medpy(
    shape: tuple[int, int, int], spacing: tuple[float, float, float]
) -> None:
    rng = np.random.default_rng(11)
    a = rng.random(shape) < 0.5
    m = rng.random(shape) < 0.5
    a.flat[0] = True
    m.flat[-1] = True
    row = one_label(a, m, spacing, hd95="pooled")
    assert row["hd"] == pytest.approx(medpy_hd(a, m, spacing), rel=RTOL)
    assert row["hd95"] == pytest.approx(medpy_hd95(a, m, spacing), rel=RTOL)
    assert row["assd"] == pytest.approx(medpy_assd(a, m, spacing), rel=RTOL)


def test_masks_touching_every_edge_and_thin_shells() -> None:
    z, y, x = np.indices((12, 15, 14))
    r = np.sqrt(((z - 5.5) * 2.5) ** 2 + ((y - 7) * 0.8) ** 2 + ((x - 6.5) * 0.8) ** 2)
    sp = (2.5, 0.8, 0.8)
    shell = (r > 5.0) & (r < 6.2)  # a one-voxel-ish shell
    big = r < 9.0  # clipped by every face of the array
    for a, m in [
        (shell, big),
        (big, shell),
        (shell, np.roll(shell, 1, axis=2)),
        (big, np.ones_like(big)),
    ]:
        row = one_label(a, m, sp, hd95="pooled")
        assert row["hd"] == pytest.approx(medpy_hd(a, m, sp), rel=RTOL)
        assert row["hd95"] == pytest.approx(medpy_hd95(a, m, sp), rel=RTOL)
        assert row["assd"] == pytest.approx(medpy_assd(a, m, sp), rel=RTOL)
        assert row["avd"] == pytest.approx(avd(a, m, sp), rel=1e-12)


def test_far_apart_masks_in_a_large_array() -> None:
    # The work box spans both masks; distances across it must stay exact.
    a = np.zeros((40, 60, 50), bool)
    m = np.zeros((40, 60, 50), bool)
    a[2:6, 3:9, 40:47] = True
    m[30:38, 50:58, 1:5] = True
    sp = (2.5, 0.8, 0.8)
    row = one_label(a, m, sp, hd95="pooled")
    assert row["hd"] == pytest.approx(medpy_hd(a, m, sp), rel=1e-12)
    assert row["hd95"] == pytest.approx(medpy_hd95(a, m, sp), rel=1e-12)
    assert row["assd"] == pytest.approx(medpy_assd(a, m, sp), rel=1e-12)
    assert row["avd"] == pytest.approx(avd(a, m, sp), rel=1e-12)


@given(pair=label_map_pairs(), spacing=spacings)
def test_multi_label_maps_match_per_label_references(
    pair: tuple[np.ndarray, np.ndarray], spacing: tuple[float, float, float]
) -> None:
    pred, ref = pair
    result = evaluate(pred, ref, spacing=spacing, hd95="pooled")
    present = sorted((set(np.unique(pred).tolist()) | set(np.unique(ref).tolist())) - {0})
    assert sorted(result) == present
    for label, row in result.items():
        a, m = pred == label, ref == label
        if not (a.any() and m.any()):
            assert row["hd"] == np.inf and row["empty"] in ("pred", "ref")
            continue
        assert row["hd"] == pytest.approx(medpy_hd(a, m, spacing), rel=RTOL)
        assert row["hd95"] == pytest.approx(medpy_hd95(a, m, spacing), rel=RTOL)
        assert row["assd"] == pytest.approx(medpy_assd(a, m, spacing), rel=RTOL)
        assert row["avd"] == pytest.approx(avd(a, m, spacing), rel=1e-12)


def test_many_labels_take_the_threaded_path() -> None:
    # More labels than threads: labels run in parallel; results equal the one-label calls.
    rng = np.random.default_rng(5)
    pred = rng.integers(0, 12, size=(10, 24, 22)).astype(np.int32)
    ref = np.where(rng.random(pred.shape) < 0.8, pred, rng.integers(0, 12, size=pred.shape))
    sp = (1.5, 0.9, 0.7)
    together = evaluate(pred, ref.astype(np.int32), spacing=sp)
    for label, row in together.items():
        alone = evaluate(pred, ref.astype(np.int32), spacing=sp, labels=[label])[label]
        assert row == alone


@given(pair=mask_pairs(), spacing=spacings)
def test_outward_search_and_full_edt_give_the_same_distances(
    pair: tuple[np.ndarray, np.ndarray], spacing: tuple[float, float, float]
) -> None:
    from fastseg import _native

    a, m = (x.astype(np.uint8) for x in pair)
    runs = [
        _native.label_metrics(a, m, spacing, [1], "pooled", np.nan, 0, method) for method in (1, 2)
    ]
    for key in ("hd", "hd95", "assd", "avd"):
        np.testing.assert_allclose(runs[0][key], runs[1][key], rtol=1e-12)
    assert runs[0]["hd"][0] == pytest.approx(medpy_hd(*pair, spacing), rel=RTOL)


def test_far_apart_masks_exceed_the_search_budget_and_fall_back_exactly() -> None:
    from fastseg import _native

    a = np.zeros((30, 120, 120), np.uint8)
    m = np.zeros_like(a)
    a[:, :6, :6] = 1  # a thick column at one corner, the other mask at the far corner
    m[:, -6:, -6:] = 1
    sp = (1.0, 1.0, 1.0)
    auto = _native.label_metrics(a, m, sp, [1], "pooled", np.nan)
    edt = _native.label_metrics(a, m, sp, [1], "pooled", np.nan, 0, 2)
    for key in ("hd", "hd95", "assd", "avd"):
        assert auto[key][0] == pytest.approx(edt[key][0], rel=1e-12)
    assert auto["hd"][0] == pytest.approx(medpy_hd(a > 0, m > 0, sp), rel=1e-12)


def test_large_box_runs_its_tasks_on_threads_with_the_same_results() -> None:
    from fastseg import _native

    z, y, x = np.ogrid[:64, :160, :150]
    sp = (2.0, 0.7, 0.7)
    r2 = (
        ((z - 32) * 2.0) ** 2 / 60**2
        + ((y - 80) * 0.7) ** 2 / 54**2
        + ((x - 75) * 0.7) ** 2 / 50**2
    )
    a = r2 < 1
    m = np.roll(a, (1, 3, -2), axis=(0, 1, 2))
    m[25:35, 70:80, 60:75] = False  # a hole, so that distances vary
    box = np.argwhere(a | m)
    assert np.prod(box.max(axis=0) - box.min(axis=0) + 1) >= 2**20  # threads across the tasks
    before = _native.build_info()["openmp_threads"]
    try:
        _native.set_num_threads(1)
        single = one_label(a, m, sp)
        _native.set_num_threads(2)
        threaded = one_label(a, m, sp)
    finally:
        _native.set_num_threads(before)
    assert single == threaded
    d_am = directed_surface_distances(a, m, sp)
    d_ma = directed_surface_distances(m, a, sp)
    assert threaded["hd"] == pytest.approx(max(d_am.max(), d_ma.max()), rel=1e-12)
    assert threaded["assd"] == pytest.approx((d_am.mean() + d_ma.mean()) / 2, rel=1e-9)
    assert threaded["avd"] == pytest.approx(avd(a, m, sp), rel=1e-9)
