from __future__ import annotations

import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseg.errors import InputError
from fastseg.io import Volume, read, write

LPS = np.diag([-1.0, -1.0, 1.0])


def _assert_same(a: Volume, b: Volume, atol: float = 1e-4) -> None:
    assert a.array.dtype == b.array.dtype
    np.testing.assert_array_equal(a.array, b.array)
    diff = a.geometry_difference(b, atol)
    assert diff is None, diff


@pytest.mark.realdata
@pytest.mark.parametrize(
    "rel",
    [
        "ct/chest_ct_lps.nii.gz",
        "ct/abdomen_ct_silver_seg.nii.gz",
        "hippocampus/imagesTr/hippocampus_001.nii.gz",
        "hippocampus/imagesTr/hippocampus_003.nii.gz",
        "hippocampus/labelsTr/hippocampus_003.nii.gz",
    ],
)
def test_real_round_trip_preserves_array_dtype_and_geometry(shared_data, tmp_path, rel):
    src = shared_data / rel
    v = read(src)
    ref = nib.load(src)
    assert v.array.dtype == ref.get_data_dtype()
    assert v.shape == ref.shape[::-1]
    for suffix in (".nii.gz", ".nii"):
        out = write(v, tmp_path / f"out{suffix}")
        w = read(out)
        _assert_same(v, w, atol=0.0)
        header = nib.load(out).header
        assert int(header["qform_code"]) == 1 and int(header["sform_code"]) == 1
        np.testing.assert_allclose(header.get_qform(), header.get_sform(), atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii", "out.nii.gz"]


@pytest.mark.realdata
@pytest.mark.parametrize("rel", ["ct/chest_ct_lps.nii.gz", "ct/abdomen_ct.nii.gz"])
def test_nifti_read_agrees_with_simpleitk(shared_data, rel):
    path = shared_data / rel
    v = read(path)
    img = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(v.array, sitk.GetArrayFromImage(img))
    np.testing.assert_allclose(v.spacing, img.GetSpacing()[::-1], atol=1e-5)
    np.testing.assert_allclose(v.origin, LPS @ np.array(img.GetOrigin()), atol=1e-4)
    itk_direction = np.array(img.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(v.direction, (LPS @ itk_direction)[:, ::-1], atol=1e-6)


@pytest.mark.realdata
def test_axis_order_is_z_y_x(shared_data):
    path = shared_data / "ct" / "abdomen_ct.nii.gz"
    v = read(path)
    data = np.asarray(nib.load(path).dataobj)
    assert v.array.flags.c_contiguous
    assert v.array[3, 5, 7] == data[7, 5, 3]
    assert v.orientation == "RAS" and v.spacing == (3.0, 3.0, 3.0)


@settings(max_examples=25)
@given(
    data=st.data(),
    dtype=st.sampled_from(["uint8", "int16", "uint16", "int32", "int64", "float32", "float64"]),
)
def test_random_geometry_round_trip(geometry, data, dtype):
    shape, spacing, origin, direction = data.draw(geometry)
    rng = np.random.default_rng(0)
    array = (rng.random(shape) * 100).astype(dtype)
    v = Volume(array, spacing, origin, direction)
    with tempfile.TemporaryDirectory() as tmp:
        w = read(write(v, Path(tmp) / "v.nii.gz"))
    _assert_same(v, w, atol=1e-4)
    assert w.orientation == v.orientation


def test_bool_is_stored_as_uint8_and_float16_as_float32(tmp_path):
    mask = np.zeros((3, 4, 5), dtype=bool)
    mask[1, 2, 3] = True
    w = read(write(Volume(mask), tmp_path / "m.nii.gz"))
    assert w.array.dtype == np.uint8 and w.array.sum() == 1 and w.array[1, 2, 3] == 1
    h = read(write(Volume(np.ones((2, 2, 2), np.float16)), tmp_path / "h.nii"))
    assert h.array.dtype == np.float32


def test_scaling_applied_only_when_set(tmp_path):
    raw = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    img = nib.Nifti1Image(raw, np.eye(4), dtype=np.int16)
    nib.save(img, tmp_path / "plain.nii")
    plain = read(tmp_path / "plain.nii")
    assert plain.array.dtype == np.int16
    np.testing.assert_array_equal(plain.array, raw.transpose(2, 1, 0))

    header = nib.load(tmp_path / "plain.nii").header.copy()
    header["scl_slope"], header["scl_inter"] = 2.0, -10.0
    with open(tmp_path / "scaled.nii", "wb") as fh:  # nib.save would rescale; write it by hand
        header.write_to(fh)
        fh.seek(int(header["vox_offset"]))
        fh.write(raw.tobytes(order="F"))
    assert nib.load(tmp_path / "scaled.nii").dataobj.slope == 2.0
    scaled = read(tmp_path / "scaled.nii")
    assert scaled.array.dtype.kind == "f"
    np.testing.assert_array_equal(scaled.array, raw.transpose(2, 1, 0) * 2.0 - 10.0)


def test_4d_needs_channel_and_2d_gets_one_slice(tmp_path):
    data = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0])), tmp_path / "4d.nii.gz")
    with pytest.raises(InputError, match=r"4d\.nii\.gz: a 4-D image with 2 volumes") as err:
        read(tmp_path / "4d.nii.gz")
    # for Python and CLI users (view, convert have no channel option) and for label files
    for part in ("fastseg.io.read(path, channel=k), k in 0..1", "<case>_0000", "names 2 channels"):
        assert part in str(err.value)
    assert "label map must be 3-D" in str(err.value)
    with pytest.raises(InputError, match="out of range"):
        read(tmp_path / "4d.nii.gz", channel=2)
    second = read(tmp_path / "4d.nii.gz", channel=1)
    np.testing.assert_array_equal(second.array, data[..., 1].transpose(2, 1, 0))
    assert second.spacing == (4.0, 3.0, 2.0)

    nib.save(nib.Nifti1Image(data[..., 0, 0], np.eye(4)), tmp_path / "2d.nii")
    flat = read(tmp_path / "2d.nii")
    assert flat.shape == (1, 3, 2)
    np.testing.assert_array_equal(flat.array[0], data[..., 0, 0].T)


def test_sform_preferred_and_qform_used_when_no_sform(tmp_path):
    data = np.zeros((2, 3, 4), np.uint8)
    qform = np.diag([1.0, 2.0, 3.0, 1.0])
    sform = np.diag([-1.0, 2.0, 3.0, 1.0])
    img = nib.Nifti1Image(data, None)
    img.header.set_qform(qform, code=1)
    img.header.set_sform(sform, code=2)
    nib.save(img, tmp_path / "both.nii")
    assert read(tmp_path / "both.nii").orientation == "LAS"
    img.header.set_sform(sform, code=0)
    nib.save(img, tmp_path / "qonly.nii")
    v = read(tmp_path / "qonly.nii")
    assert v.orientation == "RAS" and v.spacing == (3.0, 2.0, 1.0)
