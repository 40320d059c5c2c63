from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import RLELossless

from fastseg.errors import ImageReadError, InputError
from fastseg.io import DicomSeries, dicom_series, read

pytestmark = pytest.mark.realdata

IDENTIFYING = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "InstitutionName",
    "ReferringPhysicianName",
    "AccessionNumber",
    "StudyDate",
)


def _by_position(folder):
    """Independent ordering: datasets sorted by ImagePositionPatient along the normal."""
    datasets = [pydicom.dcmread(p) for p in folder.iterdir()]
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    return sorted(datasets, key=lambda ds: float(np.dot(ds.ImagePositionPatient, normal))), normal


def _sitk_series(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def test_ct_slices_in_hounsfield_units(shared_data):
    folder = shared_data / "dicom" / "ct_slices"
    v = read(folder)
    assert v.shape == (3, 512, 512) and v.array.dtype == np.int16
    ordered, _ = _by_position(folder)
    raw = np.stack([ds.pixel_array for ds in ordered]).astype(np.int32)
    np.testing.assert_array_equal(v.array, raw * 1 - 1024)
    assert v.array[1, 0, 0] == -3024  # padding outside the scanner's field of view
    in_fov = v.array[v.array > -2000]
    assert -1030 <= np.percentile(in_fov, 5) <= -950  # air around the patient
    assert -1100 < v.array[1, 60:70, 250:260].mean() < -900  # air above the chest
    np.testing.assert_allclose(v.spacing, (1.0, 0.810547, 0.810547), atol=1e-5)
    assert v.meta["modality"] == "CT" and v.meta["rescale_intercept"] == -1024.0
    assert v.meta["n_slices"] == 3


def test_spacing_from_positions_not_slice_thickness(shared_data):
    v = read(shared_data / "dicom" / "ct_slices")
    ordered, normal = _by_position(shared_data / "dicom" / "ct_slices")
    along = [float(np.dot(ds.ImagePositionPatient, normal)) for ds in ordered]
    assert float(ordered[0].SliceThickness) == 1.25
    assert v.spacing[0] == pytest.approx(np.diff(along).mean(), abs=1e-6)


def test_mr_series_with_out_of_order_names_is_anatomical(shared_data):
    folder = shared_data / "dicom" / "mr_series_hippocrop"
    names = [p.name for p in folder.iterdir()]
    assert sorted(names) != sorted(names, key=lambda n: int(n.split(".")[0]))
    v = read(folder)
    ordered, normal = _by_position(folder)
    np.testing.assert_array_equal(v.array, np.stack([ds.pixel_array for ds in ordered]))
    along = np.array([float(np.dot(ds.ImagePositionPatient, normal)) for ds in ordered])
    assert np.all(np.diff(along) > 0)
    assert v.spacing[0] == pytest.approx(float(np.median(np.diff(along))))
    # voxel (k, 0, 0) sits at slice k's ImagePositionPatient (LPS → RAS)
    for k in (0, 7, len(ordered) - 1):
        lps = np.array(ordered[k].ImagePositionPatient, dtype=float)
        np.testing.assert_allclose(v.index_to_world([k, 0, 0]), lps * [-1, -1, 1], atol=1e-6)


def test_mr_t2_oblique_series_agrees_with_simpleitk(shared_data):
    folder = shared_data / "dicom" / "mr_series_t2"
    v = read(folder)
    assert v.shape == (22, 512, 512)
    ds = pydicom.dcmread(next(folder.iterdir()))
    assert float(ds.SliceThickness) == 5.0
    # 5 mm slices with 1.5 mm gaps: the positions give 6.5 mm, as SpacingBetweenSlices says
    assert v.spacing[0] == pytest.approx(float(ds.SpacingBetweenSlices), abs=1e-3)
    img = _sitk_series(folder)
    np.testing.assert_array_equal(v.array, sitk.GetArrayFromImage(img))
    lps = np.diag([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(v.spacing, img.GetSpacing()[::-1], atol=1e-4)
    np.testing.assert_allclose(v.origin, lps @ np.array(img.GetOrigin()), atol=1e-4)
    itk_dir = np.array(img.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(v.direction, (lps @ itk_dir)[:, ::-1], atol=1e-4)


def test_meta_holds_nothing_identifying(shared_data):
    for name in ("ct_slices", "mr_series_t2"):
        folder = shared_data / "dicom" / name
        v = read(folder)
        ds = pydicom.dcmread(next(folder.iterdir()))
        values = {str(x) for x in v.meta.values()}
        assert not any("uid" in key.lower() or "patient" in key.lower() for key in v.meta)
        for keyword in (*IDENTIFYING, "SeriesInstanceUID", "StudyInstanceUID", "SOPInstanceUID"):
            value = str(ds.get(keyword, "") or "")
            assert not value or value not in values, keyword
        assert set(v.meta) <= {
            "format",
            "modality",
            "n_slices",
            "slice_spacing_source",
            "rescale_slope",
            "rescale_intercept",
        }


def test_single_file_and_single_slice_use_slice_thickness(shared_data, tmp_path):
    src = shared_data / "dicom" / "ct_slices" / "02.dcm"
    one = read(src)
    assert one.shape == (1, 512, 512) and one.spacing[0] == 1.25
    assert one.meta["slice_spacing_source"] == "SliceThickness"
    shutil.copy(src, tmp_path / "noext")
    assert read(tmp_path / "noext").equals(one)


def test_rle_compressed_series_reads_like_uncompressed(shared_data, tmp_path):
    folder = shared_data / "dicom" / "mr_series_hippocrop"
    for p in folder.iterdir():
        ds = pydicom.dcmread(p)
        ds.compress(RLELossless)
        ds.save_as(tmp_path / p.name)
    assert pydicom.dcmread(tmp_path / "1.dcm").file_meta.TransferSyntaxUID == RLELossless
    assert read(tmp_path).equals(read(folder))


def test_several_series_refused_unless_series_uid(shared_data, tmp_path):
    for name in ("ct_slices", "mr_series_hippocrop"):
        shutil.copytree(shared_data / "dicom" / name, tmp_path / name)
    ct_uid = pydicom.dcmread(tmp_path / "ct_slices" / "01.dcm").SeriesInstanceUID
    with pytest.raises(InputError, match="2 DICOM series") as err:
        read(tmp_path)
    assert str(tmp_path) in str(err.value)
    assert read(tmp_path, series_uid=ct_uid).equals(read(shared_data / "dicom" / "ct_slices"))
    with pytest.raises(InputError, match="not found"):
        read(tmp_path, series_uid="1.2.3")


def test_several_series_error_names_no_uid_description_or_date(
    shared_data, tmp_path, identifying_dicom_strings
):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("ct_slices", "mr_series_hippocrop"):  # all in one folder, as exported
        for f in (shared_data / "dicom" / name).iterdir():
            shutil.copy(f, mixed / f.name)
    secrets = identifying_dicom_strings(mixed)
    assert "HippoCrop" in secrets and len(secrets) > 4  # the check below can fail
    errors = []
    with pytest.raises(InputError) as err:
        read(mixed)
    errors.append(str(err.value))
    with pytest.raises(InputError) as err:
        read(mixed, series_uid="1.2.3")
    errors.append(str(err.value))
    for message in errors:
        assert not [s for s in secrets if s in message], message
        assert "series 1: CT, 3 slice(s) 512x512" in message
        assert "series 2: MR, 32 slice(s) 51x35" in message
        assert "fastseg.io.dicom_series" in message
    assert "series_uid=" in errors[0] and "keep one series per folder" in errors[0]


def test_dicom_series_lists_uids_in_error_order(shared_data, tmp_path):
    for name in ("ct_slices", "mr_series_hippocrop"):
        shutil.copytree(shared_data / "dicom" / name, tmp_path / name)
    listed = dicom_series(tmp_path)
    ct = pydicom.dcmread(tmp_path / "ct_slices" / "01.dcm")
    mr = pydicom.dcmread(tmp_path / "mr_series_hippocrop" / "1.dcm")
    assert listed == [
        DicomSeries(ct.SeriesInstanceUID, "CT", 3, (512, 512), ""),
        DicomSeries(mr.SeriesInstanceUID, "MR", 32, (51, 35), "HippoCrop"),
    ]
    for k, series in enumerate(listed):  # each listed UID picks that series
        name = ("ct_slices", "mr_series_hippocrop")[k]
        v = read(tmp_path, series_uid=series.uid)
        assert v.equals(read(shared_data / "dicom" / name)) and v.shape[0] == series.n_slices
    assert dicom_series(tmp_path / "ct_slices") == listed[:1]
    (tmp_path / "empty").mkdir()
    assert dicom_series(tmp_path / "empty") == []
    with pytest.raises(ImageReadError, match="not a folder"):
        dicom_series(tmp_path / "ct_slices" / "01.dcm")


def test_missing_slice_gives_inconsistent_spacing_error(shared_data, tmp_path):
    shutil.copytree(shared_data / "dicom" / "mr_series_hippocrop", tmp_path / "s")
    (tmp_path / "s" / "17.dcm").unlink()
    with pytest.raises(ImageReadError, match="inconsistent slice spacing") as err:
        read(tmp_path / "s")
    assert str(tmp_path / "s") in str(err.value) and "2" in str(err.value)
    assert read(tmp_path / "s", spacing_tolerance=1.5).shape[0] == 31


def test_duplicate_positions_refused(shared_data, tmp_path):
    shutil.copytree(shared_data / "dicom" / "ct_slices", tmp_path / "s")
    shutil.copy(tmp_path / "s" / "01.dcm", tmp_path / "s" / "01_copy.dcm")
    with pytest.raises(ImageReadError, match="share a position"):
        read(tmp_path / "s")


def test_folder_without_pixel_data(shared_data, tmp_path):
    for p in (shared_data / "dicom" / "ct_slices").iterdir():
        ds = pydicom.dcmread(p)
        del ds.PixelData
        ds.save_as(tmp_path / p.name)
    with pytest.raises(ImageReadError, match="none holds pixel data") as err:
        read(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_non_dicom_files_are_skipped(shared_data, tmp_path):
    shutil.copytree(shared_data / "dicom" / "ct_slices", tmp_path / "s")
    (tmp_path / "s" / "README.txt").write_text("not dicom")
    assert read(tmp_path / "s").shape == (3, 512, 512)


def test_multiframe_seg_refused_with_reason(shared_data):
    with pytest.raises(ImageReadError, match="multi-frame"):
        read(shared_data / "dicom" / "seg" / "liver.dcm")


def test_fractional_rescale_gives_float32(shared_data, tmp_path):
    folder = shared_data / "dicom" / "mr_series_hippocrop"
    for p in folder.iterdir():
        ds = pydicom.dcmread(p)
        ds.RescaleSlope, ds.RescaleIntercept = "0.5", "3"
        ds.save_as(tmp_path / p.name)
    plain = read(folder)
    scaled = read(tmp_path)
    assert plain.array.dtype == np.int16 and scaled.array.dtype == np.float32
    np.testing.assert_array_equal(scaled.array, plain.array * 0.5 + 3)
    assert scaled.meta["rescale_slope"] == 0.5
