"""Converter internals against obvious references: class listing, foreground sampling, dtypes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastseg.store._pipeline import _foreground_rows, _present, _stored_dtype, _to_dtype


@given(st.integers(1, 40), st.integers(0, 2**32 - 1), st.sampled_from([np.uint8, np.uint16]))
def test_present_and_foreground_rows_match_argwhere(top: int, seed: int, dtype: type) -> None:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, top + 1, size=(7, 9, 11)).astype(dtype)
    label[rng.random(label.shape) < 0.5] = 0
    assert _present(label) == [int(v) for v in np.unique(label)]
    rows, sampled, voxels = _foreground_rows(label, "case")
    again, _, _ = _foreground_rows(label, "case")
    np.testing.assert_array_equal(rows, again)  # deterministic per case id
    for c in (int(v) for v in np.unique(label) if v):
        mine = rows[rows[:, 0] == c, 1:]
        ref = np.argwhere(label == c)
        assert voxels[str(c)] == len(ref) and sampled[str(c)] == len(mine) == len(ref)
        np.testing.assert_array_equal(mine, ref)  # small classes: every voxel, sorted


def test_foreground_rows_sample_large_classes() -> None:
    label = np.zeros((40, 60, 60), dtype=np.uint8)
    label[:, :, :30] = 1  # 72,000 voxels: 10,000 sampled
    label[:2, :2, 40:45] = 2
    rows, sampled, voxels = _foreground_rows(label, "x")
    assert sampled == {"1": 10000, "2": 20} and voxels == {"1": 72000, "2": 20}
    ones = rows[rows[:, 0] == 1, 1:]
    assert len(np.unique(ones, axis=0)) == 10000 and np.all(label[tuple(ones.T)] == 1)
    big = np.ones((100, 100, 120), dtype=np.uint8)  # 1% of 1.2 M voxels > 10,000
    assert _foreground_rows(big, "y")[1] == {"1": 12000}


@pytest.mark.parametrize(
    ("dtypes", "expected"),
    [
        ([np.int16], np.int16),
        ([np.uint8, np.int16], np.int16),
        ([np.float64], np.float32),
        ([np.int64], np.float32),
        ([np.bool_], np.uint8),
    ],
)
def test_stored_dtype(dtypes: list[type], expected: type) -> None:
    assert _stored_dtype([np.dtype(d) for d in dtypes], bias_field=False) == np.dtype(expected)
    assert _stored_dtype([np.dtype(d) for d in dtypes], bias_field=True) == np.dtype(np.float32)


def test_to_dtype_rounds_and_clips_integers() -> None:
    values = np.array([-3.6, 0.4, 255.7, 300.0], dtype=np.float32)
    np.testing.assert_array_equal(_to_dtype(values, np.dtype(np.uint8)), [0, 0, 255, 255])
    np.testing.assert_array_equal(_to_dtype(values, np.dtype(np.int16)), [-4, 0, 256, 300])
