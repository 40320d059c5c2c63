from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastseg.errors import InputError
from fastseg.io import Volume, read, reorient

ALL_CODES = [
    "".join(letters)
    for axes in itertools.permutations((("R", "L"), ("A", "P"), ("S", "I")))
    for letters in itertools.product(*axes)
]


def _volume(shape, spacing, origin, direction) -> Volume:
    array = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    return Volume(array, spacing, origin, direction)


def test_there_are_48_codes():
    assert len(set(ALL_CODES)) == 48


@given(data=st.data(), code=st.sampled_from(ALL_CODES))
def test_reorient_keeps_every_voxel_in_place(geometry, data, code):
    shape, spacing, origin, direction = data.draw(geometry)
    v = _volume(shape, spacing, origin, direction)
    r = reorient(v, code)
    assert r.orientation == code
    assert r.array.flags.c_contiguous
    assert sorted(r.spacing) == sorted(v.spacing)
    idx = np.indices(r.shape).reshape(3, -1).T
    old = v.world_to_index(r.index_to_world(idx))
    old_int = np.rint(old).astype(int)
    np.testing.assert_allclose(old, old_int, atol=1e-6)
    np.testing.assert_array_equal(r.array[tuple(idx.T)], v.array[tuple(old_int.T)])


@given(data=st.data())
def test_reorient_round_trip_is_exact_for_all_48_codes(geometry, data):
    shape, spacing, origin, direction = data.draw(geometry)
    v = _volume(shape, spacing, origin, direction)
    for code in ALL_CODES:
        there = reorient(v, code)
        assert there.orientation == code
        back = reorient(there, v.orientation)
        np.testing.assert_array_equal(back.array, v.array)
        assert back.array.dtype == v.array.dtype
        assert back.spacing == v.spacing
        np.testing.assert_array_equal(back.direction, v.direction)
        np.testing.assert_allclose(back.origin, v.origin, rtol=0, atol=1e-9)


def test_reorient_to_own_code_is_identity():
    v = _volume((2, 3, 4), (1, 2, 3), (1, 2, 3), np.eye(3))
    r = reorient(v, v.orientation)
    assert r.equals(v)


@pytest.mark.parametrize("code", ["RA", "RAA", "RLS", "XYZ", "RASR", ""])
def test_reorient_rejects_bad_codes(code):
    with pytest.raises(InputError, match="orientation"):
        reorient(_volume((2, 2, 2), (1, 1, 1), (0, 0, 0), np.eye(3)), code)


def test_lowercase_code_accepted():
    v = _volume((2, 3, 4), (1, 1, 1), (0, 0, 0), np.eye(3))
    assert reorient(v, "las").orientation == "LAS"


@pytest.mark.realdata
def test_lps_chest_ct_to_ras_agrees_with_nibabel_canonical(shared_data):
    path = shared_data / "ct" / "chest_ct_lps.nii.gz"
    v = read(path)
    assert v.orientation == "LPS"
    r = reorient(v, "RAS")
    assert r.orientation == "RAS"
    canonical = nib.as_closest_canonical(nib.load(path))
    assert "".join(nib.aff2axcodes(canonical.affine)) == "RAS"
    np.testing.assert_array_equal(r.array, np.asarray(canonical.dataobj).transpose(2, 1, 0))
    np.testing.assert_allclose(r.affine[:, [2, 1, 0, 3]], canonical.affine, atol=1e-4)
    # corner voxels: same value at the same world position in both readings
    for corner in np.indices((2, 2, 2)).reshape(3, -1).T * (np.array(v.shape) - 1):
        world = v.index_to_world(corner)
        ras_index = np.rint(r.world_to_index(world)).astype(int)
        np.testing.assert_allclose(r.index_to_world(ras_index), world, atol=1e-6)
        assert r.array[tuple(ras_index)] == v.array[tuple(corner)]
    assert reorient(r, "LPS").equals(v, atol=1e-9)
