"""Hole filling against scipy.ndimage.binary_fill_holes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from fastseg.errors import InputError
from fastseg.postprocess import fill_holes

label_maps = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.int16, np.int32]),
    shape=hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=9),
    elements=st.sampled_from([0, 0, 1, 1, 1, 2, 3]),
)


def reference_fill(labels: np.ndarray, mode: str) -> np.ndarray:
    out = labels.copy()
    for c in sorted(set(np.unique(labels).tolist()) - {0}):
        mask = labels == c
        if mode == "3d":
            filled = ndimage.binary_fill_holes(mask)
        else:
            filled = np.stack([ndimage.binary_fill_holes(s) for s in mask])
        out[filled & (out == 0)] = c
    return out


@given(labels=label_maps, mode=st.sampled_from(["2d", "3d"]))
def test_matches_scipy_binary_fill_holes(labels: np.ndarray, mode: str) -> None:
    got = fill_holes(labels, mode=mode)  # type: ignore[arg-type]
    assert got.dtype == labels.dtype
    np.testing.assert_array_equal(got, reference_fill(labels, mode))


def test_shell_is_filled_in_3d_and_a_tube_only_in_2d() -> None:
    labels = np.zeros((9, 9, 9), np.uint8)
    labels[1:8, 1:8, 1:8] = 1
    labels[3:6, 3:6, 3:6] = 0  # enclosed cavity
    labels[4, 4, 4] = 2  # another class inside it stays
    out = fill_holes(labels)
    assert (out[3:6, 3:6, 3:6] == 1).sum() == 26 and out[4, 4, 4] == 2
    tube = np.zeros((6, 7, 7), np.int16)
    tube[:, 1:6, 1:6] = 3
    tube[:, 3, 3] = 0  # a channel open at both ends of z
    np.testing.assert_array_equal(fill_holes(tube, mode="3d"), tube)
    assert (fill_holes(tube, mode="2d") == 3).all(axis=0)[1:6, 1:6].all()


def test_only_chosen_classes_and_background_change() -> None:
    labels = np.zeros((5, 7, 7), np.uint8)
    labels[:, 1:6, 1:6] = 1
    labels[:, 3, 3] = 0
    labels[:, 0:3, 0] = 2
    assert (fill_holes(labels, classes=[2], mode="2d") == labels).all()
    out = fill_holes(labels, classes=[1, 4], mode="2d")
    assert (out[:, 3, 3] == 1).all() and (out[:, 0:3, 0] == 2).all()


@pytest.mark.parametrize("shape", [(0, 3, 4), (3, 0, 2)])
def test_empty_arrays(shape: tuple[int, int, int]) -> None:
    assert fill_holes(np.zeros(shape, np.uint8)).shape == shape


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="mode"):
        fill_holes(np.zeros((3, 3, 3), np.uint8), mode="4d")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="integer labels"):
        fill_holes(np.zeros((3, 3, 3), np.float32))
    with pytest.raises(InputError, match="label map"):
        fill_holes(np.zeros((3, 3), np.uint8))
