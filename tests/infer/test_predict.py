"""``fastseg predict``: a tiny fake run on synthetic scans (folder, single file, ``_0000`` channel
names, a store), outputs on the original grid, failures reported, post-processing, TTA, and the
training preprocessing reproduced exactly (predict's arrays == the store's for the same scan)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fastseg.cli import main
from fastseg.errors import InputError
from fastseg.infer import predict
from fastseg.infer._predict import _files_scans, pad_values
from fastseg.io import Volume, read, write
from fastseg.store import Store, convert
from fastseg.store._pipeline import load_case
from fastseg.store._preprocess import preprocess
from fastseg.store._sources import CaseSource

LPS = np.array([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
PATCH = [8, 16, 16]


def _ct(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(shape, dtype=np.float32)
    c = [(s - 1) / 2 for s in shape]
    body = ((y - c[1]) / (0.45 * shape[1])) ** 2 + ((x - c[2]) / (0.4 * shape[2])) ** 2 < 1
    organ = ((z - c[0]) / (0.3 * shape[0])) ** 2 + ((y - c[1]) / (0.2 * shape[1])) ** 2 + (
        (x - c[2]) / (0.25 * shape[2])
    ) ** 2 < 1
    image = np.full(shape, -1000.0, dtype=np.float32)
    image[body] = 40.0 + rng.normal(0.0, 15.0, int(body.sum()))
    image[organ & body] = 120.0
    label = (organ & body).astype(np.uint8)
    label[body & (y > c[1] + 0.3 * shape[1])] = 2
    return np.round(image).astype(np.int16), label


def _mr(shape: tuple[int, int, int], seed: int, quantised: bool) -> tuple[np.ndarray, np.ndarray]:
    """Float MR-like scan with a zero border (so conversion crops) and a label inside."""
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, dtype=np.float32)
    inner = rng.gamma(4.0, 50.0, (shape[0] - 2, shape[1] - 4, shape[2] - 6)).astype(np.float32)
    image[1:-1, 2:-2, 3:-3] = np.round(inner) if quantised else inner + 1.0
    label = np.zeros(shape, dtype=np.uint8)
    label[3:-3, 5:-5, 6:-6] = 1
    return image, label


def _msd(root: Path, cases: dict[str, tuple[Volume, Volume]], channel: str) -> Path:
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    labels = {"0": "background", "1": "organ", "2": "other"}
    doc = {"name": "t", "modality": {"0": channel}, "labels": labels}
    (root / "dataset.json").write_text(json.dumps(doc))
    for case_id, (image, label) in cases.items():
        write(image, root / "imagesTr" / f"{case_id}_0000.nii.gz")
        write(label, root / "labelsTr" / f"{case_id}.nii.gz")
    return root


def _make_run(run: Path, store: Store, seed: int = 0) -> Path:
    import torch

    from fastseg.nn import build_model, model_spec
    from fastseg.train._run import checkpoint_path, save_checkpoint, write_run_spec

    torch.manual_seed(seed)
    spec = {"name": "unet", "dimensions": 3, "in_channels": 1, "num_classes": 3,
            "widths": [4, 8], "deep_supervision": False}  # fmt: skip
    model = build_model(spec)
    with torch.no_grad():  # a strong, spatially varying response so labels are not uniform
        for p in model.parameters():
            p.mul_(3.0)
    write_run_spec(
        run,
        {
            "model": model_spec(model),
            "patch_size": PATCH,
            "store": {
                "url": store.url,
                "modality": store.modality,
                "channel_names": store.channel_names,
                "label_names": {str(k): v for k, v in store.label_names.items()},
                "plan": store.attrs["plan"],
            },
            "inference": {"overlap": 0.25, "mirror_axes": [0, 1, 2]},
        },
    )
    save_checkpoint(checkpoint_path(run, "best"), {"model": model.state_dict()})
    return run


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three CT cases (LPS, 2.5 x 1 x 1 mm, two shapes), their store (1.5 mm slices, so
    predict resamples) and a run."""
    tmp = tmp_path_factory.mktemp("ct")
    cases = {}
    for i, shape in enumerate([(9, 22, 20), (10, 20, 18), (8, 24, 20)]):
        image, label = _ct(shape, i)
        origin = (10.0 * i, -5.0, 3.0)
        cases[f"case_{i}"] = (
            Volume(image, (2.5, 1.0, 1.0), origin, LPS),
            Volume(label, (2.5, 1.0, 1.0), origin, LPS),
        )
    src = _msd(tmp / "src", cases, "CT")
    convert(src, tmp / "store.zarr", spacing=(1.5, 1.0, 1.0), workers=1, progress=False)
    store = Store.open(tmp / "store.zarr")
    run = _make_run(tmp / "run", store)
    return {"src": src, "store": tmp / "store.zarr", "run": run, "tmp": tmp}


def _pairs(out: Path, ref: Path) -> None:
    """Every reference has a prediction of the same name on the same grid."""
    refs = sorted(p.name for p in ref.iterdir())
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".npz")) == refs
    for name in refs:
        pred, truth = read(out / name), read(ref / name)
        assert pred.shape == truth.shape
        np.testing.assert_allclose(pred.affine, truth.affine, atol=1e-5)
        assert pred.array.dtype == np.uint8
        assert set(np.unique(pred.array).tolist()) <= {0, 1, 2}


def test_folder_outputs_on_original_grid_and_pair_with_references(ct: dict[str, Path]) -> None:
    out = ct["tmp"] / "pred_folder"
    report = predict(ct["run"], ct["src"] / "imagesTr", out, progress=False)
    assert report.ok and sorted(report.written) == ["case_0", "case_1", "case_2"]
    _pairs(out, ct["src"] / "labelsTr")
    labels = read(out / "case_0.nii.gz").array
    assert len(np.unique(labels)) > 1  # the fake model does not predict one class everywhere


def test_store_input_gives_the_same_predictions(ct: dict[str, Path]) -> None:
    folder = ct["tmp"] / "pred_ref"
    predict(ct["run"], ct["src"] / "imagesTr", folder, progress=False, postprocess=False)
    out = ct["tmp"] / "pred_store"
    # several windows per forward pass: the same labels
    report = predict(ct["run"], ct["store"], out, progress=False, postprocess=False, batch_size=3)
    assert report.ok
    _pairs(out, ct["src"] / "labelsTr")
    for name in ("case_0.nii.gz", "case_1.nii.gz", "case_2.nii.gz"):
        np.testing.assert_array_equal(read(out / name).array, read(folder / name).array)


def test_single_file_to_file_and_format_kept(ct: dict[str, Path]) -> None:
    vol = read(ct["src"] / "imagesTr" / "case_1_0000.nii.gz")
    mha = ct["tmp"] / "single" / "scan_0000.mha"
    mha.parent.mkdir()
    write(vol, mha)
    out = ct["tmp"] / "single_out"
    report = predict(ct["run"], mha, out, progress=False)
    assert report.written == {"scan": str(out / "scan.mha")}
    pred = read(out / "scan.mha")
    assert pred.shape == vol.shape
    np.testing.assert_allclose(pred.affine, vol.affine, atol=1e-5)
    target = ct["tmp"] / "explicit.nii.gz"
    assert predict(ct["run"], mha, target, progress=False).written == {"scan": str(target)}
    np.testing.assert_array_equal(read(target).array, pred.array)


def test_corrupt_file_is_reported_and_the_rest_complete(ct: dict[str, Path]) -> None:
    folder = ct["tmp"] / "with_bad"
    shutil.copytree(ct["src"] / "imagesTr", folder)
    (folder / "broken_0000.nii.gz").write_bytes(b"not a nifti file at all")
    out = ct["tmp"] / "bad_out"
    report = predict(ct["run"], folder, out, progress=False)
    assert sorted(report.written) == ["case_0", "case_1", "case_2"]
    assert list(report.failed) == ["broken"]
    assert "broken_0000.nii.gz" in report.failed["broken"]
    assert not (out / "broken.nii.gz").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left
    code = main(["predict", str(ct["run"]), str(folder), str(ct["tmp"] / "cli_bad"), "--quiet"])
    assert code == 1
    code = main(["predict", str(ct["run"]), str(ct["src"] / "imagesTr"),
                 str(ct["tmp"] / "cli_ok"), "--quiet", "--no-postprocess"])  # fmt: skip
    assert code == 0 and (ct["tmp"] / "cli_ok" / "case_2.nii.gz").is_file()


def test_postprocessing_plan_is_applied(ct: dict[str, Path], tmp_path: Path) -> None:
    import cc3d

    from fastseg.postprocess import apply_postprocessing, save_plan

    run = tmp_path / "run"
    shutil.copytree(ct["run"], run)
    plan = {
        "format": "fastseg-postprocessing",
        "version": 1,
        "metric": "dice",
        "connectivity": 26,
        "classes": {"1": {"keep_largest": True}, "2": {"keep_largest": True}},
    }
    save_plan(plan, run / "postprocessing.json")
    raw_dir, post_dir = tmp_path / "raw", tmp_path / "post"
    predict(run, ct["src"] / "imagesTr", raw_dir, progress=False, postprocess=False)
    predict(run, ct["src"] / "imagesTr", post_dir, progress=False)
    changed = 0
    for name in ("case_0.nii.gz", "case_1.nii.gz", "case_2.nii.gz"):
        raw, post = read(raw_dir / name), read(post_dir / name)
        expected = apply_postprocessing(raw.array, plan, raw.spacing)
        np.testing.assert_array_equal(post.array, expected)
        changed += int(not np.array_equal(raw.array, post.array))
        for c in (1, 2):
            assert cc3d.connected_components(post.array == c, connectivity=26).max() <= 1
    assert changed > 0


def test_tta_and_probabilities(ct: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "tta"
    report = predict(
        ct["run"], ct["src"] / "imagesTr", out, tta=True, probabilities=True, progress=False
    )
    assert report.ok
    plain = tmp_path / "plain"
    predict(ct["run"], ct["src"] / "imagesTr", plain, progress=False)
    for name in ("case_0", "case_1", "case_2"):
        labels = read(out / f"{name}.nii.gz")
        with np.load(out / f"{name}_probabilities.npz") as f:
            probs, affine = f["probabilities"], f["affine"]
        assert probs.shape == (3, *labels.shape) and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
        np.testing.assert_allclose(affine, labels.affine)
        agree = np.mean(np.argmax(probs, axis=0) == labels.array)
        assert agree > 0.9
    differs = [
        not np.array_equal(read(out / n).array, read(plain / n).array)
        for n in ("case_0.nii.gz", "case_1.nii.gz", "case_2.nii.gz")
    ]
    assert any(differs)  # mirroring changes a random network's output somewhere
    assert report.notes == []


def test_tta_without_mirror_axes_says_it_changes_nothing(
    ct: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(ct["run"], run)
    spec = json.loads((run / "run.json").read_text())
    spec["inference"]["mirror_axes"] = []  # as `fastseg plan` leaves it for side-specific labels
    (run / "run.json").write_text(json.dumps(spec))
    report = predict(run, ct["src"] / "imagesTr" / "case_0_0000.nii.gz", tmp_path / "out",
                     tta=True, progress=False)  # fmt: skip
    assert report.ok
    (note,) = report.notes
    assert "mirrors no axis" in note and note in report.summary()


def _store_vs_predict(root: Path, store_dir: Path) -> None:
    store = Store.open(store_dir)
    pre = store.attrs["plan"]["preprocessing"]
    for case_id in store.cases:
        src = CaseSource(case_id, ((str(root / "imagesTr" / f"{case_id}_0000.nii.gz"), None),),
                         None, str(root))  # fmt: skip
        channels, _, _ = load_case(src, None)
        image, record = preprocess(channels, pre)
        case = store[case_id]
        assert image.dtype == np.float32
        np.testing.assert_array_equal(image, case.image(normalized=True))
        # whole-case inference pads as training does
        np.testing.assert_array_equal(pad_values(image), np.float32(case.normalized_pad_values))
        for key in ("original", "canonical", "crop_box", "resampling", "normalization"):
            assert json.loads(json.dumps(record[key])) == case.attrs[key], key


def test_ct_preprocessing_equals_the_store(ct: dict[str, Path]) -> None:
    _store_vs_predict(ct["src"], ct["store"])


@pytest.mark.parametrize("quantised", [True, False])
def test_mr_preprocessing_equals_the_store(tmp_path: Path, quantised: bool) -> None:
    cases = {}
    # a float image with > 65536 distinct values is stored as is, else as codes into a table
    shapes = [(8, 16, 18), (9, 14, 16)] if quantised else [(8, 16, 18), (48, 44, 46)]
    for i, shape in enumerate(shapes):
        image, label = _mr(shape, i, quantised)
        cases[f"mr_{i}"] = (
            Volume(image, (1.0, 0.8, 0.8), (0.0, 0.0, 0.0), LPS),
            Volume(label, (1.0, 0.8, 0.8), (0.0, 0.0, 0.0), LPS),
        )
    src = _msd(tmp_path / "src", cases, "MRI")
    convert(src, tmp_path / "s.zarr", spacing=(0.9, 0.8, 0.8), workers=1, progress=False)
    store = Store.open(tmp_path / "s.zarr")
    assert store.attrs["plan"]["preprocessing"]["modalities"] == ["mr"]
    coded = [store[c].coded for c in store.cases]
    assert coded == ([True, True] if quantised else [True, False])
    assert store["mr_0"].attrs["crop_box"] != [[0, 8], [0, 16], [0, 18]]  # the border is cropped
    _store_vs_predict(src, tmp_path / "s.zarr")


def test_store_with_other_preprocessing_is_refused(ct: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other.zarr"
    convert(ct["src"], other, spacing=(2.0, 1.0, 1.0), workers=1, progress=False)
    with pytest.raises(InputError, match="preprocessing differs"):
        predict(ct["run"], other, tmp_path / "out", progress=False)


def test_channel_files_are_grouped_and_checked(tmp_path: Path) -> None:
    names = ["a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz", "c.nii.gz", "d_0001.mha"]
    files = [tmp_path / n for n in names]
    scans, problems = _files_scans(files, 2)
    assert [s.name for s in scans] == ["a", "c"]
    assert scans[0].images == ((str(files[0]), None), (str(files[1]), None))
    assert scans[1].images == ((str(files[3]), 0), (str(files[3]), 1))  # one 4-d file
    assert sorted(problems) == ["b", "d"]
    scans, problems = _files_scans([tmp_path / "x_0000.mhd"], 1)
    assert scans[0].name == "x" and scans[0].ext == ".nii.gz" and not problems


def test_bad_arguments(ct: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="device"):
        predict(ct["run"], ct["src"] / "imagesTr", tmp_path, device="gpu", progress=False)
    with pytest.raises(InputError, match="not a fastseg run"):
        predict(tmp_path, ct["src"] / "imagesTr", tmp_path / "o", progress=False)
    with pytest.raises(InputError, match="no such file"):
        predict(ct["run"], tmp_path / "missing", tmp_path / "o", progress=False)
    with pytest.raises(InputError, match="overlap"):
        predict(ct["run"], ct["src"] / "imagesTr", tmp_path, overlap=1.5, progress=False)
    with pytest.raises(InputError, match="batch_size"):
        predict(ct["run"], ct["src"] / "imagesTr", tmp_path, batch_size=0, progress=False)


@pytest.mark.realdata
def test_dicom_series_folder(ct: dict[str, Path], shared_data: Path, tmp_path: Path) -> None:
    series = shared_data / "dicom" / "mr_series_hippocrop"
    original = read(series)
    parent = tmp_path / "series"
    parent.mkdir()
    (parent / series.name).symlink_to(series)
    for source in (series, parent):  # one series folder; a folder of series folders
        out = tmp_path / f"out_{source.name}"
        report = predict(ct["run"], source, out, progress=False)
        assert report.written["mr_series_hippocrop"] == str(out / "mr_series_hippocrop.nii.gz")
        pred = read(out / "mr_series_hippocrop.nii.gz")
        assert pred.shape == original.shape
        np.testing.assert_allclose(pred.affine, original.affine, atol=1e-4)


def test_continue_skips_complete_cases_and_redoes_the_rest(
    ct: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An interrupted folder prediction continues: cases with their outputs are skipped (not
    rewritten), a case missing its probability file (interrupted between the two writes) and a
    case never reached are predicted."""
    out = tmp_path / "out"
    first = predict(ct["run"], ct["src"] / "imagesTr", out, probabilities=True, progress=False)
    assert sorted(first.written) == ["case_0", "case_1", "case_2"]
    kept = (out / "case_0.nii.gz").stat().st_mtime_ns
    case_2 = read(out / "case_2.nii.gz").array
    (out / "case_1_probabilities.npz").unlink()
    (out / "case_2.nii.gz").unlink()
    (out / "case_2_probabilities.npz").unlink()
    again = predict(
        ct["run"], ct["src"] / "imagesTr", out, probabilities=True, progress=False, resume=True
    )
    assert list(again.skipped) == ["case_0"] and sorted(again.written) == ["case_1", "case_2"]
    assert (out / "case_0.nii.gz").stat().st_mtime_ns == kept
    assert (out / "case_1_probabilities.npz").is_file() and (out / "case_2.nii.gz").is_file()
    np.testing.assert_array_equal(read(out / "case_2.nii.gz").array, case_2)
    code = main(["predict", str(ct["run"]), str(ct["src"] / "imagesTr"), str(out),
                 "--quiet", "--continue"])  # fmt: skip
    assert code == 0 and "skipped 3 case(s) already predicted" in capsys.readouterr().out


def test_probabilities_as_nifti_match_the_npz(ct: dict[str, Path], tmp_path: Path) -> None:
    """``probabilities="nifti"``: a 4D (x, y, z, K) image on the label map's geometry holding
    the same numbers as the .npz (what a viewer or MONAI's reader expects)."""
    import nibabel as nib

    images = ct["src"] / "imagesTr"
    as_npz = predict(ct["run"], images, tmp_path / "npz", probabilities=True, progress=False)
    assert as_npz.ok
    code = main(["predict", str(ct["run"]), str(images), str(tmp_path / "nii"), "--quiet",
                 "--probabilities-format", "nifti"])  # fmt: skip
    assert code == 0
    for name in ("case_0", "case_1", "case_2"):
        img = nib.load(tmp_path / "nii" / f"{name}_probabilities.nii.gz")
        label_img = nib.load(tmp_path / "nii" / f"{name}.nii.gz")
        with np.load(tmp_path / "npz" / f"{name}_probabilities.npz") as f:
            probs = f["probabilities"]
        assert img.shape == (*label_img.shape, 3)
        np.testing.assert_allclose(img.affine, label_img.affine, atol=1e-6)
        np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(3, 2, 1, 0), probs)
    with pytest.raises(InputError, match="probabilities: expected True, False, 'npz' or 'nifti'"):
        predict(ct["run"], images, tmp_path / "bad", probabilities="tiff", progress=False)
