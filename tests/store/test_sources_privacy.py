"""Source discovery of nested DICOM series, folder hashes, and what a conversion keeps of the
source: no DICOM UID, description or date, and no absolute path in the stored report."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from fastseg.errors import InputError
from fastseg.io import read
from fastseg.store import ConversionReport, Store, convert
from fastseg.store._sources import discover, sha256_of

pytestmark = pytest.mark.realdata

ABSOLUTE = re.compile(r"(^|[\s'\"(=])(/|[A-Za-z]:\\)\w")


def _copy_files(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        shutil.copy(f, dst / f.name)


def test_mixed_series_folder_leaks_nothing_into_store_or_log(
    shared_data: Path, tmp_path: Path, identifying_dicom_strings: Callable[[Path], set[str]]
) -> None:
    """The reviewer's reproducer: one folder holding the CT and the MR series, converted."""
    src = tmp_path / "two"
    _copy_files(shared_data / "dicom" / "ct_slices", src / "mixed")
    _copy_files(shared_data / "dicom" / "mr_series_hippocrop", src / "mixed")
    _copy_files(shared_data / "dicom" / "mr_series_hippocrop", src / "good")
    (src / "seg").mkdir()
    shutil.copy(shared_data / "dicom" / "seg" / "liver.dcm", src / "seg" / "liver.dcm")
    secrets = identifying_dicom_strings(src)
    assert "HippoCrop" in secrets and len(secrets) > 4
    dst = tmp_path / "st_two.zarr"
    report = convert(src, dst, workers=1, progress=False)
    assert report.converted == ["good"] and sorted(report.failed) == ["mixed", "seg"]
    reason = report.failed["mixed"]
    assert "2 DICOM series" in reason and "keep one series per folder" in reason
    assert "series 1: CT, 3 slice(s) 512x512" in reason
    log = report.summary()
    saved = (dst / "conversion_report" / "zarr.json").read_text()
    for text in (reason, log, saved):
        assert not [s for s in secrets if s in text]
    for f in dst.rglob("*"):  # nothing of them anywhere in the store
        if f.is_file():
            data = f.read_bytes()
            assert not [s for s in secrets if s.encode() in data], f
    stored = json.loads(saved)["attributes"]["fastseg_conversion_report"]
    assert stored == report.to_dict(anonymous=True)
    assert str(tmp_path) not in saved
    # the multi-frame SEG fails with its path, kept relative to the source in the store
    assert str(src / "seg" / "liver.dcm") in report.failed["seg"]
    assert stored["failed"]["seg"].startswith("ImageReadError: seg/liver.dcm: multi-frame")
    assert stored["failed"]["mixed"].startswith("InputError: mixed: holds 2 DICOM series")


def test_anonymous_report_has_no_absolute_path(shared_data: Path) -> None:
    root = "/data/studies/src"
    outside = str(shared_data / "dicom" / "seg" / "liver.dcm")
    report = ConversionReport(
        source=root,
        destination="/scratch/out/st.zarr",
        converted=["a"],
        failed={
            "b": f"ImageReadError: {root}/b/img.nii.gz: cannot read as NIfTI",
            "c": f"InputError: {outside}: multi-frame DICOM (see {root}_old/x.dcm)",
            "d": f"InputError: {root}: and {root}/c (3/4 done, 2 MB/s, +/- 1)",
            "e": f'RuntimeError: boom\n  File "{outside}", line 3\n  in /scratch/out/st.zarr/x',
            "f": r"OSError: C:\Users\someone\scan.nii.gz: denied",
            "g": f"ImageReadError: {root}/g/1.2.826.0.1.3680043.8.498.1234567.dcm: truncated "
            "(series 1.3.12.2.1107.5.2.20080913, fastseg 0.1.0, 2.5.1.0 mm)",
        },
    )
    failed = report.to_dict(anonymous=True)["failed"]
    assert failed == {
        "b": "ImageReadError: b/img.nii.gz: cannot read as NIfTI",
        "c": "InputError: liver.dcm: multi-frame DICOM (see x.dcm)",
        "d": "InputError: src: and c (3/4 done, 2 MB/s, +/- 1)",
        "e": 'RuntimeError: boom\n  File "liver.dcm", line 3\n  in x',
        "f": "OSError: scan.nii.gz: denied",
        "g": "ImageReadError: g/<UID>.dcm: truncated (series <UID>, fastseg 0.1.0, 2.5.1.0 mm)",
    }
    for reason in failed.values():
        assert not ABSOLUTE.search(reason), reason
    assert report.to_dict()["failed"]["c"].startswith(f"InputError: {outside}")  # not anonymous


def _nested(shared_data: Path, root: Path) -> Path:
    """``root/pat1/study/series`` (the MR crop) and ``root/pat2/study/series`` (the CT)."""
    _copy_files(shared_data / "dicom" / "mr_series_hippocrop", root / "pat1" / "study" / "series")
    _copy_files(shared_data / "dicom" / "ct_slices", root / "pat2" / "study" / "series")
    (root / "pat1" / ".hidden").mkdir()
    (root / "pat1" / ".hidden" / "notes.txt").write_text("not DICOM")
    (root / "empty" / "sub").mkdir(parents=True)  # no DICOM below: not a case
    return root


def test_nested_series_are_discovered_and_converted(shared_data: Path, tmp_path: Path) -> None:
    src = _nested(shared_data, tmp_path / "nested")
    found = discover(src)
    assert found.kind == "dicom" and [c.case_id for c in found.cases] == ["pat1", "pat2"]
    assert found.cases[0].images == ((str(src / "pat1"), None),)
    assert discover(src / "pat1").cases[0].case_id == "study"  # the top-level subfolder
    dst = tmp_path / "st.zarr"
    report = convert(src, dst, workers=1, progress=False)
    assert report.ok and report.converted == ["pat1", "pat2"]
    store = Store.open(dst)
    assert store.cases == ["pat1", "pat2"]
    mr = read(src / "pat1")
    assert mr.shape[0] == 32 and store["pat1"].attrs["notes"]["dicom_modality"] == "MR"


def test_folder_hash_covers_nested_files(shared_data: Path, tmp_path: Path) -> None:
    src = _nested(shared_data, tmp_path / "nested")
    before = sha256_of(src / "pat1")
    (src / "pat1" / ".hidden" / "notes.txt").write_text("changed")  # hidden: ignored
    assert sha256_of(src / "pat1") == before
    nested_file = src / "pat1" / "study" / "series" / "7.dcm"
    data = bytearray(nested_file.read_bytes())
    data[-1] ^= 1
    nested_file.write_bytes(bytes(data))
    assert sha256_of(src / "pat1") != before
    shutil.move(src / "pat1" / "study", src / "pat1" / "other")  # a moved file is a change
    assert sha256_of(src / "pat1") != before
    # a flat folder hashes as before: its sorted "name<TAB>sha256" lines
    flat = shared_data / "dicom" / "ct_slices"
    h = hashlib.sha256()
    for f in sorted(flat.iterdir()):
        h.update(f"{f.name}\t{hashlib.sha256(f.read_bytes()).hexdigest()}\n".encode())
    assert sha256_of(flat) == h.hexdigest()


def _four_d_msd(root: Path, image: Path, n_channels: int) -> Path:
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    img = nib.load(image)
    data = np.asarray(img.dataobj)
    four = nib.Nifti1Image(np.stack([data, data[::-1]], axis=-1), img.affine)
    nib.save(four, root / "imagesTr" / "hip_001.nii.gz")
    shutil.copy(Path(str(image).replace("imagesTr", "labelsTr")), root / "labelsTr")
    (root / "labelsTr" / image.name).rename(root / "labelsTr" / "hip_001.nii.gz")
    doc = {
        "modality": {str(k): f"MR{k}" for k in range(n_channels)},
        "labels": {"0": "background", "1": "Anterior", "2": "Posterior"},
    }
    (root / "dataset.json").write_text(json.dumps(doc))
    return root


def test_four_d_message_is_true_to_what_convert_accepts(shared_data: Path, tmp_path: Path) -> None:
    image = sorted((shared_data / "hippocampus" / "imagesTr").glob("*.nii.gz"))[0]
    one = _four_d_msd(tmp_path / "one", image, 1)
    report = convert(one, tmp_path / "one.zarr", workers=1, progress=False)
    reason = report.failed["hip_001"]
    assert "a 4-D image with 2 volumes" in reason and "dataset.json names 2 channels" in reason
    two = _four_d_msd(tmp_path / "two", image, 2)  # as the message says: this converts
    report = convert(two, tmp_path / "two.zarr", workers=1, progress=False)
    assert report.ok and report.converted == ["hip_001"]
    assert Store.open(tmp_path / "two.zarr").channel_names == ["MR0", "MR1"]


def test_no_series_anywhere_is_still_an_error(tmp_path: Path) -> None:
    (tmp_path / "src" / "a" / "b").mkdir(parents=True)
    (tmp_path / "src" / "a" / "b" / "notes.txt").write_text("not DICOM")
    with pytest.raises(InputError, match="no DICOM series folders found"):
        discover(tmp_path / "src")
