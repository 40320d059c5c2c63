"""dice, jaccard, vs and voxel counts against NumPy; empty and full masks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from metrics_strategies import label_map_pairs, mask_pairs

from fastseg.metrics import METRICS, evaluate


@given(pair=label_map_pairs())
def test_overlap_metrics_match_numpy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, ref = pair
    result = evaluate(pred, ref)
    for label, row in result.items():
        a, m = pred == label, ref == label
        na, nm, ni = int(a.sum()), int(m.sum()), int((a & m).sum())
        assert (row["pred_voxels"], row["ref_voxels"]) == (na, nm)
        assert row["dice"] == pytest.approx(2 * ni / (na + nm), rel=1e-15)
        assert row["jaccard"] == pytest.approx(ni / (a | m).sum(), rel=1e-15)
        assert row["vs"] == pytest.approx(1 - abs(na - nm) / (na + nm), rel=1e-15)


@given(pair=mask_pairs(nonempty=False))
def test_row_keys_types_and_ranges(pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, m = pair
    for row in evaluate(a, m, labels=[1]).values():
        assert set(row) == {*METRICS, "pred_voxels", "ref_voxels", "empty"}
        assert all(isinstance(row[k], float) for k in METRICS)
        assert isinstance(row["pred_voxels"], int) and isinstance(row["ref_voxels"], int)
        for k in ("dice", "jaccard", "vs", "nsd"):
            assert 0.0 <= row[k] <= 1.0


def test_both_empty() -> None:
    z = np.zeros((3, 4, 5), np.uint8)
    row = evaluate(z, z, labels=[1])[1]
    assert row == {
        "dice": 1.0, "jaccard": 1.0, "hd": 0.0, "hd95": 0.0, "avd": 0.0, "assd": 0.0,
        "vs": 1.0, "nsd": 1.0, "pred_voxels": 0, "ref_voxels": 0, "empty": "both",
    }  # fmt: skip
    assert evaluate(z, z) == {}


@pytest.mark.parametrize("side", ["pred", "ref"])
def test_one_side_empty(side: str) -> None:
    full = np.zeros((3, 4, 5), np.uint8)
    full[1, 1:3, 2:4] = 1
    empty = np.zeros_like(full)
    pred, ref = (empty, full) if side == "pred" else (full, empty)
    row = evaluate(pred, ref)[1]
    assert row["empty"] == side
    assert row["dice"] == 0.0 and row["jaccard"] == 0.0 and row["vs"] == 0.0 and row["nsd"] == 0.0
    for key in ("hd", "hd95", "avd", "assd"):
        assert row[key] == np.inf
    assert (row["pred_voxels"], row["ref_voxels"]) == ((0, 4) if side == "pred" else (4, 0))


def test_full_masks_are_identical() -> None:
    full = np.ones((4, 5, 6), np.uint8)
    row = evaluate(full, full, spacing=(2.0, 1.0, 0.5))[1]
    assert row["dice"] == 1.0 and row["hd"] == 0.0 and row["avd"] == 0.0 and row["nsd"] == 1.0
    assert row["empty"] == ""


def test_identical_masks_have_zero_distances() -> None:
    rng = np.random.default_rng(2)
    a = (rng.random((9, 10, 11)) < 0.4).astype(np.uint8) * 3
    row = evaluate(a, a, spacing=(2.5, 0.8, 0.8))[3]
    assert row["dice"] == 1.0 and row["nsd"] == 1.0
    assert row["hd"] == row["hd95"] == row["assd"] == row["avd"] == 0.0


def test_requested_labels_keep_their_order_and_absent_labels_are_both_empty() -> None:
    pred = np.zeros((2, 3, 4), np.uint8)
    pred[0, 0, :2] = 2
    ref = pred.copy()
    result = evaluate(pred, ref, labels=[7, 2, 7])
    assert list(result) == [7, 2]
    assert result[7]["empty"] == "both" and result[2]["empty"] == ""
    # a label that the dtype cannot hold is simply absent
    assert evaluate(pred, ref, labels=[300])[300]["empty"] == "both"


def test_negative_and_large_labels() -> None:
    pred = np.zeros((3, 3, 3), np.int64)
    pred[0] = -5
    pred[2] = 2**40
    ref = pred.copy()
    ref[2, 0] = 0
    result = evaluate(pred, ref)
    assert sorted(result) == [-5, 2**40]
    assert result[-5]["dice"] == 1.0
    assert result[2**40]["dice"] == pytest.approx(2 * 6 / 15)
