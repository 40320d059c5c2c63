"""Connected-component clean-up against a scipy.ndimage.label reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from fastseg.errors import InputError
from fastseg.postprocess import keep_largest_component, remove_small_components

STRUCTURE = {6: 1, 18: 2, 26: 3}

label_maps = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.int16, np.int32, np.uint16]),
    shape=hnp.array_shapes(min_dims=3, max_dims=3, min_side=1, max_side=8),
    elements=st.integers(0, 3),
)


def reference_components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    ids, _ = ndimage.label(mask, ndimage.generate_binary_structure(3, STRUCTURE[connectivity]))
    return ids, np.bincount(ids.ravel())


def reference_keep_largest(labels: np.ndarray, connectivity: int) -> np.ndarray:
    out = labels.copy()
    for c in np.unique(labels):
        if c == 0:
            continue
        ids, counts = reference_components(labels == c, connectivity)
        largest = 1 + int(np.argmax(counts[1:]))  # first of equals in raster order
        out[(labels == c) & (ids != largest)] = 0
    return out


def reference_remove_small(
    labels: np.ndarray, thresholds: dict[int, float], spacing: tuple[float, ...], connectivity: int
) -> np.ndarray:
    out = labels.copy()
    voxel = float(np.prod(spacing))
    for c, limit in thresholds.items():
        ids, counts = reference_components(labels == c, connectivity)
        for i in range(1, counts.size):
            if counts[i] * voxel < limit:
                out[ids == i] = 0
    return out


@given(labels=label_maps, connectivity=st.sampled_from([6, 18, 26]))
def test_keep_largest_matches_scipy(labels: np.ndarray, connectivity: int) -> None:
    got = keep_largest_component(labels, connectivity=connectivity)
    assert got.dtype == labels.dtype and got.shape == labels.shape
    np.testing.assert_array_equal(got, reference_keep_largest(labels, connectivity))


@given(
    labels=label_maps,
    connectivity=st.sampled_from([6, 18, 26]),
    spacing=st.tuples(*[st.sampled_from([0.5, 0.7, 1.0, 2.5, 3.0])] * 3),
    voxels=st.integers(0, 6),
)
def test_remove_small_matches_scipy_with_anisotropic_spacing(
    labels: np.ndarray, connectivity: int, spacing: tuple[float, float, float], voxels: int
) -> None:
    limit = voxels * float(np.prod(spacing))
    got = remove_small_components(labels, limit, spacing, connectivity=connectivity)
    expected = reference_remove_small(
        labels, dict.fromkeys((1, 2, 3), limit), spacing, connectivity
    )
    np.testing.assert_array_equal(got, expected)


def test_threshold_is_in_cubic_millimetres() -> None:
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[0, 0, 0:3] = 1  # 3 voxels
    labels[4, 4, 4] = 1  # 1 voxel
    spacing = (2.5, 1.5, 0.8)  # 3 mm³ per voxel
    kept = remove_small_components(labels, 9.0, spacing)
    assert kept[0, 0, 0:3].all() and kept[4, 4, 4] == 0  # 9 mm³ >= 9 kept; 3 mm³ removed
    assert not remove_small_components(labels, 9.01, spacing).any()
    assert remove_small_components(labels, 3.0, spacing).sum() == 4


def test_per_class_thresholds_leave_other_classes_alone() -> None:
    labels = np.zeros((5, 5, 5), np.uint8)
    labels[0, 0, 0] = 1
    labels[4, 4, 4] = 2
    labels[2, 2, 2] = 3
    out = remove_small_components(labels, {1: 2.0, 3: 0.5}, (1.0, 1.0, 1.0))
    assert out[0, 0, 0] == 0 and out[4, 4, 4] == 2 and out[2, 2, 2] == 3
    out = remove_small_components(labels, 2.0, classes=[2])
    assert out[0, 0, 0] == 1 and out[4, 4, 4] == 0 and out[2, 2, 2] == 3


def test_keep_largest_per_chosen_class_and_connectivity() -> None:
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[0, 0, 0] = labels[1, 1, 1] = 1  # diagonal neighbours: one 26-component, two 6-components
    labels[3, 3, 2:] = 1
    labels[3, 0, 0] = 2
    labels[0, 3, 3] = 2
    assert keep_largest_component(labels, connectivity=26)[1, 1, 1] == 1
    six = keep_largest_component(labels, connectivity=6)
    assert six[0, 0, 0] == 0 and six[1, 1, 1] == 0 and six[3, 3, 2:].all()
    only_two = keep_largest_component(labels, classes=[2])
    assert (only_two == 1).sum() == 4 and (only_two == 2).sum() == 1


@pytest.mark.parametrize("shape", [(0, 3, 4), (2, 0, 0)])
def test_empty_arrays(shape: tuple[int, int, int]) -> None:
    labels = np.zeros(shape, np.uint8)
    assert keep_largest_component(labels).shape == shape
    assert remove_small_components(labels, 10.0, (1, 2, 3)).shape == shape


def test_all_background_and_input_not_modified() -> None:
    labels = np.zeros((3, 3, 3), np.int32)
    np.testing.assert_array_equal(keep_largest_component(labels), labels)
    labels[0, 0, 0] = labels[2, 2, 2] = 1
    before = labels.copy()
    remove_small_components(labels, 5.0)
    keep_largest_component(labels)
    np.testing.assert_array_equal(labels, before)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: keep_largest_component(np.zeros((3, 3), np.uint8)), "labels: expected"),
        (lambda: keep_largest_component(np.zeros((3, 3, 3))), "integer labels"),
        (lambda: keep_largest_component(np.zeros((3, 3, 3), int), connectivity=8), "connectivity"),
        (lambda: remove_small_components(np.zeros((3, 3, 3), int), 1.0, (1, 1)), "spacing"),
        (lambda: remove_small_components(np.zeros((3, 3, 3), int), 1.0, (1, 0, 1)), "spacing"),
        (lambda: remove_small_components(np.zeros((3, 3, 3), int), -1.0), "min_volume_mm3"),
    ],
)
def test_bad_inputs(call: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        call()  # type: ignore[operator]


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 3, 1), (4, 1, 1)])
@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_line_shaped_volumes(shape: tuple[int, int, int], connectivity: int) -> None:
    # cc3d 4.1 raises on 1-d shapes with 26-connectivity; lines have face connectivity only.
    labels = np.zeros(shape, np.uint8).ravel()
    labels[0] = labels[-1] = 1
    labels = labels.reshape(shape)
    np.testing.assert_array_equal(
        keep_largest_component(labels, connectivity=connectivity),
        reference_keep_largest(labels, connectivity),
    )
    assert remove_small_components(labels, 1.5, connectivity=connectivity).sum() == 0
