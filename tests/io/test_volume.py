from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastseg.errors import InputError
from fastseg.io import Volume, axcodes


@given(data=st.data())
def test_affine_round_trip(geometry, data):
    shape, spacing, origin, direction = data.draw(geometry)
    v = Volume(np.zeros(shape), spacing, origin, direction)
    w = Volume.from_affine(v.array, v.affine)
    np.testing.assert_allclose(w.spacing, spacing, rtol=1e-12)
    np.testing.assert_allclose(w.origin, origin, atol=1e-9)
    np.testing.assert_allclose(w.direction, direction, atol=1e-12)
    np.testing.assert_allclose(v.affine[:3, :3], np.asarray(direction) * np.asarray(spacing))
    np.testing.assert_array_equal(v.affine[3], [0, 0, 0, 1])


@given(data=st.data())
def test_index_world_are_inverse_and_match_affine(geometry, data):
    shape, spacing, origin, direction = data.draw(geometry)
    v = Volume(np.zeros(shape), spacing, origin, direction)
    idx = np.indices(shape).reshape(3, -1).T
    world = v.index_to_world(idx)
    homog = np.c_[idx, np.ones(len(idx))] @ v.affine.T
    np.testing.assert_allclose(world, homog[:, :3], atol=1e-9)
    np.testing.assert_allclose(v.world_to_index(world), idx, atol=1e-9)
    np.testing.assert_allclose(world[0], origin)


@given(data=st.data())
def test_orientation_matches_nibabel_aff2axcodes(geometry, data):
    shape, spacing, origin, direction = data.draw(geometry)
    v = Volume(np.zeros(shape), spacing, origin, direction)
    nifti_affine = v.affine[:, [2, 1, 0, 3]]  # columns in NIfTI (i, j, k) = (x, y, z) order
    assert v.orientation == "".join(nib.aff2axcodes(nifti_affine))
    assert axcodes(direction) == v.orientation


def test_standard_orientations():
    assert Volume(np.zeros((2, 2, 2)), direction=np.eye(3)[:, ::-1]).orientation == "RAS"
    lps = np.diag([-1.0, -1.0, 1.0])[:, ::-1]
    assert Volume(np.zeros((2, 2, 2)), direction=lps).orientation == "LPS"
    assert Volume(np.zeros((2, 2, 2))).orientation == "SAR"


def test_validation_errors():
    with pytest.raises(InputError, match="array"):
        Volume(np.zeros((4, 4)))
    with pytest.raises(InputError, match="array"):
        Volume(np.zeros((1, 4, 4, 4)))
    with pytest.raises(InputError, match="spacing"):
        Volume(np.zeros((2, 2, 2)), spacing=(1, 0, 1))
    with pytest.raises(InputError, match="spacing"):
        Volume(np.zeros((2, 2, 2)), spacing=(1, 1))
    with pytest.raises(InputError, match="origin"):
        Volume(np.zeros((2, 2, 2)), origin=(0, np.nan, 0))
    with pytest.raises(InputError, match="unit vectors"):
        Volume(np.zeros((2, 2, 2)), direction=np.eye(3) * 2)
    with pytest.raises(InputError, match="singular"):
        Volume(np.zeros((2, 2, 2)), direction=[[1, 1, 0], [0, 0, 0], [0, 0, 1]])
    with pytest.raises(InputError, match="affine"):
        Volume.from_affine(np.zeros((2, 2, 2)), np.eye(3))


def test_empty_array_is_allowed():
    v = Volume(np.zeros((0, 3, 4)), (2, 1, 1))
    assert v.shape == (0, 3, 4)


def test_with_array_keeps_geometry_and_checks_shape():
    v = Volume(np.zeros((2, 3, 4)), (1, 2, 3), (4, 5, 6), meta={"modality": "CT"})
    w = v.with_array(np.ones((2, 3, 4), dtype=np.uint8))
    assert w.same_geometry(v, atol=0.0) and w.meta == v.meta and w.array.dtype == np.uint8
    with pytest.raises(InputError, match=r"\(2, 3, 4\)"):
        v.with_array(np.ones((3, 3, 4)))


def test_equals_and_geometry_difference():
    v = Volume(np.arange(8, dtype=np.int16).reshape(2, 2, 2), (1.0, 1.0, 1.0))
    assert v.equals(v.with_array(v.array.copy()))
    assert not v.equals(v.with_array(v.array.astype(np.int32)))
    assert not v.equals(v.with_array(v.array + 1))
    w = Volume(v.array, (1.0, 1.0, 1.2))
    assert v.geometry_difference(w) == "spacing (1, 1, 1) vs (1, 1, 1.2)"
    assert v.geometry_difference(w, atol=0.3) is None
    moved = Volume(np.zeros((2, 2, 3)), (1, 1, 1), (0, 0, 5))
    diff = v.geometry_difference(moved)
    assert diff is not None and "shape (2, 2, 2) vs (2, 2, 3)" in diff and "origin" in diff
