from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseg.errors import InputError
from fastseg.io import Volume, read, write

SUFFIXES = [".mha", ".nrrd", ".mhd", ".nhdr"]


def _assert_same(a: Volume, b: Volume, atol: float) -> None:
    assert a.array.dtype == b.array.dtype
    np.testing.assert_array_equal(a.array, b.array)
    diff = a.geometry_difference(b, atol)
    assert diff is None, diff


@pytest.mark.realdata
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_real_round_trip(shared_data, tmp_path, suffix):
    v = read(shared_data / "ct" / "chest_ct_lps.nii.gz")
    w = read(write(v, tmp_path / f"chest{suffix}"))
    _assert_same(v, w, atol=1e-9)
    assert w.orientation == "LPS"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.realdata
@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_simpleitk_conversion_of_nifti_reads_back_the_same(shared_data, tmp_path, suffix):
    """SimpleITK converts the NIfTI itself (its own LPS handling); we must read the same."""
    src = shared_data / "ct" / "chest_ct_lps.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(src)), str(tmp_path / f"c{suffix}"))
    _assert_same(read(src), read(tmp_path / f"c{suffix}"), atol=1e-4)


@settings(max_examples=20)
@given(
    data=st.data(),
    suffix=st.sampled_from(SUFFIXES),
    dtype=st.sampled_from(["uint8", "int16", "int32", "float32", "float64"]),
)
def test_random_geometry_round_trip(geometry, data, suffix, dtype):
    shape, spacing, origin, direction = data.draw(geometry)
    array = (np.random.default_rng(1).random(shape) * 50).astype(dtype)
    v = Volume(array, spacing, origin, direction)
    with tempfile.TemporaryDirectory() as tmp:
        w = read(write(v, Path(tmp) / f"v{suffix}"))
    _assert_same(v, w, atol=1e-9)


def test_mhd_sidecar_lands_next_to_header(tmp_path):
    v = Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5), (2.0, 1.0, 0.5))
    write(v, tmp_path / "a.mhd")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == "a.mhd" and len(names) == 2 and names[1].startswith("a.")
    assert read(tmp_path / "a.mhd").equals(v)


def test_vector_image_needs_channel(tmp_path):
    img = sitk.GetImageFromArray(np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2))
    sitk.WriteImage(img, str(tmp_path / "vec.mha"))
    with pytest.raises(InputError, match=r"vec\.mha.*2 components") as error:
        read(tmp_path / "vec.mha")
    assert "fastseg.io.read(path, channel=k), k in 0..1" in str(error.value)
    assert "<case>_0000" in str(error.value)  # what the CLI, which has no channel option, takes
    np.testing.assert_array_equal(
        read(tmp_path / "vec.mha", channel=1).array, sitk.GetArrayFromImage(img)[..., 1]
    )


@pytest.mark.realdata
def test_liver_seg_nrrd_lies_on_the_ct_dicom_grid(shared_data):
    seg = read(shared_data / "dicom" / "seg" / "liver_seg.nrrd")
    ct = read(shared_data / "dicom" / "ct_slices")
    assert seg.shape == ct.shape
    np.testing.assert_allclose(seg.spacing, ct.spacing, atol=1e-4)
    np.testing.assert_allclose(seg.origin, ct.origin, atol=1e-4)
    np.testing.assert_allclose(seg.direction, ct.direction, atol=1e-6)
    assert seg.orientation == ct.orientation == "LPS"
    assert seg.array.any()
