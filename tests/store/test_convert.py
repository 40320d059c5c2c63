"""convert(): real hippocampus data, synthetic CT (reorientation, anisotropic resampling, CT
normalisation), round trips to the source grid, re-runs, memory:// stores, bad input, privacy."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr

from fastseg.errors import InputError
from fastseg.io import Volume, read, write
from fastseg.metrics import evaluate
from fastseg.store import StorageOptions, Store, convert


@pytest.mark.realdata
def test_hippocampus_store_layout_and_attributes(hippo6: Path, hippo6_store: Path) -> None:
    store = Store.open(hippo6_store)
    ids = sorted(p.name[: -len(".nii.gz")] for p in (hippo6 / "imagesTr").iterdir())
    assert store.cases == ids
    assert store.modality == "mr"
    assert store.label_names == {0: "background", 1: "Anterior", 2: "Posterior"}
    pre = store.preprocessing
    assert pre["orientation"] == "RAS"
    assert pre["target_spacing"] == store.fingerprint["median_spacing"]
    assert pre["resampling"]["anisotropy_threshold"] == 3.0
    fp = store.fingerprint
    assert fp["n_cases"] == 6 and set(fp["cases"]) == set(ids)
    assert {"mean", "std", "percentile_00_5", "percentile_99_5"} <= set(
        fp["foreground_intensity"][0]
    )
    assert store.attrs["schema_version"] == 1 and store.attrs["fastseg_version"]
    case = store[ids[0]]
    src = case.attrs["source"]["files"]
    assert [f["path"] for f in src] == [f"imagesTr/{ids[0]}.nii.gz", f"labelsTr/{ids[0]}.nii.gz"]
    import hashlib

    assert src[0]["sha256"] == hashlib.sha256((hippo6 / src[0]["path"]).read_bytes()).hexdigest()
    fg = case.foreground()
    label = case.label()
    assert label is not None and set(fg) == {1, 2}
    for cls, coords in fg.items():
        assert coords.shape[1] == 3 and len(coords) == min(10000, int((label == cls).sum()))
        assert np.all(label[tuple(coords.T)] == cls)
    report = store.report
    assert report is not None and report["ok"] and report["converted"] == ids


@pytest.mark.realdata
def test_hippocampus_round_trip_without_resampling_is_exact(
    hippo6: Path, hippo6_store: Path
) -> None:
    store = Store.open(hippo6_store)
    for case_id in store.cases[:3]:
        case = store[case_id]
        ref_img = read(hippo6 / "imagesTr" / f"{case_id}.nii.gz")
        ref_lab = read(hippo6 / "labelsTr" / f"{case_id}.nii.gz")
        img, lab = case.volume("image"), case.volume("label")
        assert img.equals(ref_img, atol=1e-6) and lab.equals(ref_lab, atol=1e-6)
        # normalised reads: per-image z-score of the source intensities
        patch = case.image()[0]
        raw = case.image(normalized=False)[0].astype(np.float64)
        np.testing.assert_allclose(patch, (raw - raw.mean()) / raw.std(), rtol=1e-4, atol=1e-4)


@pytest.mark.realdata
def test_hippocampus_round_trip_with_resampling(hippo6: Path, tmp_path: Path) -> None:
    dst = tmp_path / "h.zarr"
    report = convert(hippo6, dst, spacing=(1.6, 0.75, 1.3), workers=1, progress=False)
    assert report.ok and len(report.converted) == 6
    store = Store.open(dst)
    for case_id in store.cases[:3]:
        case = store[case_id]
        assert case.attrs["resampling"]["resampled"]
        assert case.spacing == pytest.approx((1.6, 0.75, 1.3), rel=0.05)
        ref_lab = read(hippo6 / "labelsTr" / f"{case_id}.nii.gz")
        lab = case.volume("label")
        assert lab.same_geometry(ref_lab) and lab.array.dtype == ref_lab.array.dtype
        dice = evaluate(lab.array, ref_lab.array, labels=[1, 2])
        assert dice[1]["dice"] > 0.85 and dice[2]["dice"] > 0.85
        ref_img = read(hippo6 / "imagesTr" / f"{case_id}.nii.gz")
        img = case.volume("image")
        assert img.same_geometry(ref_img)
        err = np.abs(img.array.astype(np.float64) - ref_img.array)
        assert err.mean() < 0.25 * ref_img.array.std()


@pytest.mark.realdata
def test_zarr_python_reads_the_same_data(hippo6_store: Path) -> None:
    store = Store.open(hippo6_store)
    group = zarr.open_group(hippo6_store, mode="r")
    assert group.attrs["fastseg"]["label_names"] == {
        "0": "background",
        "1": "Anterior",
        "2": "Posterior",
    }
    coded = 0
    for case_id in store.cases:
        case = store[case_id]
        img, lab = case.read_patch((0, 0, 0), case.shape, normalized=False)
        stored = group[f"cases/{case_id}/image"][...]
        if case.coded:  # float images with few distinct values: codes + table, lossless
            coded += 1
            table = group[f"cases/{case_id}/codebook"][...]
            stored = np.stack([table[c][stored[c]] for c in range(stored.shape[0])])
        np.testing.assert_array_equal(stored, img)
        np.testing.assert_array_equal(group[f"cases/{case_id}/label"][...], lab)
    assert coded > 0


@pytest.mark.realdata
def test_rerun_is_a_noop_and_options_must_match(
    hippo6: Path, hippo6_store: Path, store_files: Callable[[Path], dict[str, bytes]]
) -> None:
    before = store_files(hippo6_store)
    report = convert(hippo6, hippo6_store, workers=1, progress=False)
    assert report.converted == [] and len(report.skipped) == 6 and report.ok
    assert store_files(hippo6_store) == before
    with pytest.raises(InputError, match="same options"):
        convert(hippo6, hippo6_store, spacing=(2.0, 2.0, 2.0), workers=1, progress=False)


def test_ct_dataset_reorients_resamples_and_normalises(
    make_msd: Callable[..., Path],
    ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]],
    tmp_path: Path,
) -> None:
    cases = ct_cases(3)
    src = make_msd(cases)
    dst = tmp_path / "ct.zarr"
    report = convert(src, dst, spacing=(1.0, 0.9, 0.9), workers=1, progress=False)
    assert report.ok
    store = Store.open(dst)
    assert store.modality == "ct"
    norm = store.preprocessing["normalization"][0]
    assert norm["scheme"] == "ct"
    labelled = np.concatenate([img.array[lab.array > 0] for img, lab in cases.values()])
    # nnU-Net samples 10,000 foreground voxels per case; its percentiles are close to the full ones
    assert norm["lo"] == pytest.approx(np.percentile(labelled, 0.5), abs=30)
    assert norm["hi"] == pytest.approx(np.percentile(labelled, 99.5), abs=30)
    case = store["case_000"]
    assert (
        case.attrs["original"]["orientation"] == "LPS"
        and case.attrs["canonical"]["orientation"] == "RAS"
    )
    assert case.attrs["resampling"]["separate_axis"] == 0  # 3 mm slices vs 0.9 mm in-plane
    raw = case.image(normalized=False)
    assert raw.dtype == np.int16
    img = case.image()
    expected = (np.clip(raw.astype(np.float64), norm["lo"], norm["hi"]) - norm["mean"]) / norm[
        "std"
    ]
    np.testing.assert_allclose(img, expected, rtol=1e-5, atol=1e-4)
    # pad value: the case minimum (air), normalised
    out, lab = case.read_patch(start=(-5, 0, 0), size=(4, 4, 4))
    assert lab is not None and not lab.any()
    np.testing.assert_allclose(
        out, (max(raw.min(), norm["lo"]) - norm["mean"]) / norm["std"], rtol=1e-5
    )
    ref_img, ref_lab = cases["case_000"]
    back = case.volume("label")
    assert back.same_geometry(ref_lab)
    dice = evaluate(back.array, ref_lab.array, labels=[1, 2])
    assert dice[1]["dice"] > 0.9 and dice[2]["dice"] > 0.8
    back_img = case.volume("image")
    assert back_img.array.dtype == np.int16 and back_img.same_geometry(ref_img)
    body = ref_lab.array > 0
    assert np.median(np.abs(back_img.array[body].astype(float) - ref_img.array[body])) < 40


def test_memory_url(
    make_msd: Callable[..., Path],
    ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]],
    tmp_path: Path,
) -> None:
    src = make_msd(ct_cases(2))
    url = f"memory://{tmp_path.name}/ct.zarr"
    report = convert(src, url, workers=2, progress=False)
    assert report.ok and report.destination == url
    store = Store.open(url)
    assert store.cases == ["case_000", "case_001"]
    img, lab = store["case_001"].read_patch(center=(5, 20, 20), size=(8, 16, 16))
    assert img.shape == (1, 8, 16, 16) and lab is not None
    local = tmp_path / "ct.zarr"
    convert(src, local, workers=1, progress=False)
    ref = Store.open(local)["case_001"].read_patch(center=(5, 20, 20), size=(8, 16, 16))
    np.testing.assert_array_equal(img, ref[0])
    np.testing.assert_array_equal(lab, ref[1])
    assert store.report is not None and store.report["converted"] == ["case_000", "case_001"]


def test_bad_input_is_reported_per_case(
    make_msd: Callable[..., Path],
    ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]],
    tmp_path: Path,
) -> None:
    cases = ct_cases(6)
    img, lab = cases["case_001"]
    cases["case_001"] = (img, Volume(lab.array[:-1], lab.spacing, lab.origin, lab.direction))
    img, lab = cases["case_002"]
    cases["case_002"] = (
        img,
        lab.with_array(np.where(lab.array == 2, 5, lab.array).astype(np.uint8)),
    )
    img, lab = cases["case_003"]
    nan = img.array.astype(np.float32)
    nan[2, 3, 4] = np.nan
    cases["case_003"] = (img.with_array(nan), lab)
    src = make_msd(cases)
    (src / "imagesTr" / "case_004_0000.nii.gz").write_bytes(b"not a nifti file at all")
    (src / "labelsTr" / "case_005.nii.gz").unlink()
    dst = tmp_path / "bad.zarr"
    report = convert(src, dst, workers=1, progress=False)
    assert not report.ok
    assert report.converted == ["case_000"]
    assert set(report.failed) == {"case_001", "case_002", "case_003", "case_004", "case_005"}
    assert (
        "do not share a grid" in report.failed["case_001"]
        and "case_001" in report.failed["case_001"]
    )
    assert "[5]" in report.failed["case_002"] and "dataset.json" in report.failed["case_002"]
    assert "NaN" in report.failed["case_003"]
    assert "case_004_0000.nii.gz" in report.failed["case_004"]
    assert "no label file" in report.failed["case_005"]
    store = Store.open(dst)
    assert store.cases == ["case_000"]
    saved = json.loads((dst / "conversion_report" / "zarr.json").read_text())
    assert saved["attributes"]["fastseg_conversion_report"] == json.loads(
        json.dumps(report.to_dict(anonymous=True))
    )


def test_destination_that_is_not_a_store_is_refused(
    make_msd: Callable[..., Path],
    ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]],
    tmp_path: Path,
) -> None:
    src = make_msd(ct_cases(1))
    dst = tmp_path / "occupied"
    dst.mkdir()
    (dst / "something.txt").write_text("x")
    with pytest.raises(InputError, match="not a Zarr store"):
        convert(src, dst, workers=1, progress=False)
    with pytest.raises(InputError, match="not a fastseg store and not empty"):
        convert(src, dst, workers=1, progress=False, overwrite=True)
    assert sorted(p.name for p in dst.iterdir()) == ["something.txt"]  # nothing deleted

    # overwrite replaces a fastseg store, here with other storage options
    dst = tmp_path / "store.zarr"
    assert convert(src, dst, workers=1, progress=False).ok
    report = convert(
        src,
        dst,
        workers=1,
        progress=False,
        overwrite=True,
        storage=StorageOptions(chunks=(8, 8, 8), cname="lz4"),
    )
    assert report.ok and report.converted == ["case_000"]
    case = Store.open(dst)["case_000"]
    meta = json.loads((dst / "cases" / "case_000" / "image" / "zarr.json").read_text())
    assert meta["chunk_grid"]["configuration"]["chunk_shape"] == [1, 8, 8, 8]
    assert case.read_patch((0, 0, 0), (3, 3, 3))[0].shape == (1, 3, 3, 3)


@pytest.mark.realdata
def test_dicom_series_folder_and_privacy(shared_data: Path, tmp_path: Path) -> None:
    import pydicom

    src = tmp_path / "dicom"
    src.mkdir()
    (src / "series_a").symlink_to(shared_data / "dicom" / "mr_series_hippocrop")
    (src / "series_b").symlink_to(shared_data / "dicom" / "ct_slices")
    dst = tmp_path / "dcm.zarr"
    report = convert(src, dst, workers=1, progress=False)
    assert report.ok and report.converted == ["series_a", "series_b"]
    store = Store.open(dst)
    case = store["series_a"]
    assert not case.has_label and case.read_patch((0, 0, 0), (2, 2, 2))[1] is None
    original = read(shared_data / "dicom" / "mr_series_hippocrop")
    back = case.volume("image")
    assert back.same_geometry(original)
    sensitive = set()
    for folder in ("mr_series_hippocrop", "ct_slices"):
        for f in sorted((shared_data / "dicom" / folder).iterdir())[:2]:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            for kw in ("PatientName", "PatientID", "PatientBirthDate", "InstitutionName",
                       "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                       "AccessionNumber", "ReferringPhysicianName", "StudyDate"):  # fmt: skip
                value = str(ds.get(kw, "")).strip()
                if len(value) >= 4:
                    sensitive.add(value)
    assert sensitive
    text = "\n".join(p.read_text() for p in dst.rglob("zarr.json"))
    for value in sensitive:
        assert value not in text
    for keyword in ("PatientName", "PatientID", "BirthDate", "InstanceUID"):
        assert keyword not in text
    assert str(tmp_path) not in text  # no absolute paths either
    write(back, tmp_path / "back.nii.gz")


def _blobs(shape: tuple[int, int, int], shift: tuple[float, float, float]) -> np.ndarray:
    z, y, x = np.indices(shape).astype(np.float32)
    img = np.zeros(shape, np.float32)
    for cz, cy, cx, r, v in [(14, 20, 18, 9, 100), (9, 26, 12, 5, 200), (19, 13, 25, 4, 150)]:
        d2 = (z - cz - shift[0]) ** 2 + (y - cy - shift[1]) ** 2 + (x - cx - shift[2]) ** 2
        img += v * np.exp(-d2 / (2 * r * r))
    return img + 10.0


@pytest.mark.parametrize("register", [None, "rigid"])
def test_multimodal_channels_are_aligned(register: str | None, tmp_path: Path) -> None:
    """Channel 1 (inverted contrast, shifted 3 voxels, another grid) is brought onto channel 0's
    grid: by world position, or registered first (mutual information)."""
    root = tmp_path / "mm"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    doc = {"modality": {"0": "T1", "1": "FLAIR"}, "labels": {"0": "background", "1": "blob"}}
    (root / "dataset.json").write_text(json.dumps(doc))
    shape = (28, 40, 36)
    t1 = Volume(_blobs(shape, (0, 0, 0)), (1.2, 1.0, 1.0), (4.0, -2.0, 1.0))
    flair = Volume(320.0 - _blobs((30, 40, 36), (0, 0, 3)), (1.1, 1.0, 1.0), (4.0, -2.0, 1.0))
    label = t1.with_array((t1.array > 60).astype(np.uint8))
    write(t1, root / "imagesTr" / "mm_001_0000.nii.gz")
    write(flair, root / "imagesTr" / "mm_001_0001.nii.gz")
    write(label, root / "labelsTr" / "mm_001.nii.gz")
    dst = tmp_path / "mm.zarr"
    report = convert(root, dst, workers=1, progress=False, register=register)
    assert report.ok, report.failed
    store = Store.open(dst)
    assert store.channel_names == ["T1", "FLAIR"] and store.modality == "mr"
    assert store.preprocessing["channel_alignment"] == (register or "world")
    case = store["mm_001"]
    assert case.attrs["notes"]["channels_resampled_onto_channel_0"] == [1]
    img, lab = case.read_patch((0, 0, 0), case.shape)
    assert img.shape == (2, *case.shape) and lab is not None
    for c in range(2):  # each channel z-scored with its own statistics
        assert abs(float(img[c].mean())) < 1e-3 and abs(float(img[c].std()) - 1) < 1e-3
    inner = (slice(4, -4), slice(4, -4), slice(4, -4))
    corr = np.corrcoef(img[0][inner].ravel(), img[1][inner].ravel())[0, 1]
    if register:
        assert corr < -0.99
    else:  # world position only: the 3-voxel shift stays
        assert -0.95 < corr < -0.5


def test_bias_field_correction_is_applied_and_recorded(
    make_msd: Callable[..., Path], tmp_path: Path
) -> None:
    shape = (16, 32, 32)
    _, y, x = np.indices(shape, dtype=np.float32)
    tissue = np.where(((y - 16) ** 2 + (x - 16) ** 2) < 12**2, 100.0, 0.0).astype(np.float32)
    biased = tissue * np.exp(0.4 * (x - 16) / 16).astype(np.float32)
    img = Volume(biased, (2.0, 1.0, 1.0))
    src = make_msd({"mr_000": (img, img.with_array((tissue > 0).astype(np.uint8)))}, channel="MRI")
    params = {"shrink_factor": 2, "iterations": [20, 20]}
    dst = tmp_path / "n4.zarr"
    assert convert(src, dst, workers=1, progress=False, bias_field=params).ok
    store = Store.open(dst)
    recorded = store.preprocessing["bias_field"]
    assert recorded["shrink_factor"] == 2 and recorded["iterations"] == [20, 20]
    case = store["mr_000"]
    assert case.attrs["stored"]["image_dtype"] == "float32"
    raw = case.volume("image").array  # back on the source grid
    inside = tissue > 0

    def cv(a: np.ndarray) -> float:
        return float(a[inside].std() / a[inside].mean())

    assert cv(raw) < 0.5 * cv(biased)
    with pytest.raises(InputError, match="unknown N4"):
        convert(src, tmp_path / "x.zarr", workers=1, progress=False, bias_field={"bogus": 1})
