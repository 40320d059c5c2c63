"""Every bad input raises a fastseg error that names the path and the problem."""

from __future__ import annotations

import gzip
import re

import nibabel as nib
import numpy as np
import pytest

from fastseg.errors import FastsegError, ImageReadError, InputError
from fastseg.io import Volume, read, write


def _raises(path, cls, problem):
    return pytest.raises(cls, match=re.escape(str(path)) + ".*" + problem)


def _nifti_gz(path, shape=(20, 20, 20)):
    nib.save(
        nib.Nifti1Image(np.arange(np.prod(shape), dtype=np.int16).reshape(shape), np.eye(4)), path
    )
    return path


def test_truncated_nii_gz(tmp_path):
    good = _nifti_gz(tmp_path / "good.nii.gz")
    data = good.read_bytes()
    bad = tmp_path / "cut.nii.gz"
    bad.write_bytes(data[: len(data) // 2])
    with _raises(bad, ImageReadError, "truncated"):
        read(bad)


def test_truncated_uncompressed_nii(tmp_path):
    bad = tmp_path / "cut.nii"
    raw = gzip.decompress(_nifti_gz(tmp_path / "good.nii.gz").read_bytes())
    bad.write_bytes(raw[:1000])
    with _raises(bad, ImageReadError, "cannot read as NIfTI"):
        read(bad)


@pytest.mark.parametrize("name", ["notes.nii.gz", "notes.nii", "notes.mha", "notes.nrrd"])
def test_non_image_file(tmp_path, name):
    path = tmp_path / name
    path.write_text("this is not an image\n" * 30)
    with _raises(path, ImageReadError, "cannot read"):
        read(path)


def test_unknown_extension(tmp_path):
    path = tmp_path / "scan.txt"
    path.write_text("hello")
    with _raises(path, ImageReadError, "unknown image format"):
        read(path)
    with _raises(tmp_path / "out.png", InputError, "cannot write"):
        write(Volume(np.zeros((1, 2, 2))), tmp_path / "out.png")


def test_missing_file(tmp_path):
    with _raises(tmp_path / "absent.nii.gz", ImageReadError, "no such file"):
        read(tmp_path / "absent.nii.gz")


def test_empty_folder(tmp_path):
    with _raises(tmp_path, ImageReadError, "folder is empty"):
        read(tmp_path)


def test_folder_without_dicom(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with _raises(tmp_path, ImageReadError, "no DICOM file"):
        read(tmp_path)


def test_write_rejects_non_volume(tmp_path):
    with pytest.raises(InputError, match="volume"):
        write(np.zeros((2, 2, 2)), tmp_path / "a.nii.gz")  # type: ignore[arg-type]


def test_errors_are_fastseg_errors():
    assert issubclass(ImageReadError, FastsegError) and issubclass(InputError, FastsegError)


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "out.nii.gz"
    old = Volume(np.zeros((2, 2, 2), np.int16))
    write(old, target)

    def broken_save(img, filename):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(nib, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        write(Volume(np.ones((2, 2, 2), np.int16)), target)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]
    assert read(target).equals(old)


def test_failed_sidecar_write_leaves_nothing(tmp_path, monkeypatch):
    import SimpleITK as sitk

    def broken_write(img, filename, useCompression=False):
        with open(filename, "w") as fh:
            fh.write("ObjectType = Image\n")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", broken_write)
    with _raises(tmp_path / "a.mhd", FastsegError, "could not write"):
        write(Volume(np.zeros((2, 2, 2))), tmp_path / "a.mhd")
    assert list(tmp_path.iterdir()) == []


def test_option_that_does_not_apply(tmp_path):
    path = _nifti_gz(tmp_path / "a.nii.gz", (2, 2, 2))
    with _raises(path, InputError, "series_uid do not apply to nifti"):
        read(path, series_uid="1.2")
    with _raises(tmp_path, InputError, "channel do not apply to dicom"):
        read(tmp_path, channel=0)
