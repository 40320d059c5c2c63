"""The `fastseg` command line: each command is a thin call into the Python API."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fastseg import io
from fastseg.cli import main


def msd_subset(shared_data: Path, root: Path, n: int = 2) -> Path:
    """An MSD-layout copy of the first ``n`` hippocampus cases."""
    src = shared_data / "hippocampus"
    dataset = json.loads((src / "dataset.json").read_text())
    cases = sorted(dataset["training"], key=lambda e: e["image"])[:n]
    for entry in cases:
        for key in ("image", "label"):
            target = root / entry[key]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src / entry[key], target)
    (root / "dataset.json").write_text(json.dumps({**dataset, "training": cases, "numTraining": n}))
    return root


@pytest.mark.realdata
def test_convert_then_rerun_is_a_no_op(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastseg.store import Store

    src = msd_subset(shared_data, tmp_path / "msd")
    dst = tmp_path / "h.zarr"
    assert main(["convert", str(src), str(dst), "--workers", "1"]) == 0
    store = Store.open(str(dst))
    assert len(store.cases) == 2
    capsys.readouterr()
    assert main(["convert", str(src), str(dst), "--workers", "1"]) == 0
    assert "2" in capsys.readouterr().out


def test_convert_reports_failure_in_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "images"
    src.mkdir()
    (src / "broken.nii.gz").write_bytes(b"not a nifti file")
    io.write(io.Volume(np.ones((8, 9, 10), np.int16)), src / "fine.nii.gz")
    assert main(["convert", str(src), str(tmp_path / "s.zarr"), "--workers", "1"]) == 1
    assert "broken" in capsys.readouterr().out


@pytest.mark.realdata
def test_view_writes_png(shared_data: Path, tmp_path: Path) -> None:
    image = shared_data / "hippocampus" / "imagesTr" / "hippocampus_001.nii.gz"
    label = shared_data / "hippocampus" / "labelsTr" / "hippocampus_001.nii.gz"
    out = tmp_path / "view.png"
    assert main(["view", str(image), "--label", str(label), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_view_rejects_bad_window(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = io.write(io.Volume(np.zeros((4, 5, 6), np.int16)), tmp_path / "x.nii.gz")
    assert main(["view", str(path), "--window", "wide", "--out", str(tmp_path / "v.png")]) == 2
    assert "window 'wide'" in capsys.readouterr().err


def test_view_missing_file_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(tmp_path / "nope.nii.gz"), "--out", str(tmp_path / "v.png")]) == 2
    assert "nope.nii.gz" in capsys.readouterr().err


def test_compare_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.8, 0.05, 20), rng.normal(0.75, 0.05, 20)
    for name, values in (("a", a), ("b", b)):
        lines = ["case,label,dice"] + [f"c{i},1,{v}" for i, v in enumerate(values)]
        (tmp_path / f"{name}.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "cmp.json"
    assert (
        main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--out", str(out)]) == 0
    )
    report = json.loads(out.read_text())
    assert report["results"]["1"]["paired"] is True
    assert "p =" in capsys.readouterr().out


@pytest.mark.realdata
def test_augment_preview_writes_png(shared_data: Path, tmp_path: Path) -> None:
    image = shared_data / "hippocampus" / "imagesTr" / "hippocampus_003.nii.gz"
    label = shared_data / "hippocampus" / "labelsTr" / "hippocampus_003.nii.gz"
    out = tmp_path / "preview.png"
    args = ["augment-preview", str(image), "--label", str(label), "-n", "2", "--out", str(out)]
    assert main(args) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fuse_votes_three_raters(tmp_path: Path) -> None:
    truth = np.zeros((6, 8, 8), np.uint8)
    truth[1:5, 2:6, 2:6] = 1
    raters = []
    for i in range(3):
        seg = truth.copy()
        seg[1 + i, 2, 2] = 0  # each rater misses a different voxel
        raters.append(
            str(io.write(io.Volume(seg, spacing=(2.0, 1.0, 1.0)), tmp_path / f"r{i}.nii.gz"))
        )
    out = tmp_path / "fused.nii.gz"
    assert main(["fuse", *raters, "--method", "vote", "--out", str(out)]) == 0
    fused = io.read(out)
    np.testing.assert_array_equal(fused.array, truth)
    assert fused.spacing == pytest.approx((2.0, 1.0, 1.0))


def test_report_writes_html(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        lines = ["case,label,dice,hd95"] + [
            f"c{i},1,{rng.uniform(0.7, 0.9)},{rng.uniform(1, 5)}" for i in range(12)
        ]
        (tmp_path / f"{name}.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "report.html"
    args = ["report", "--metrics", str(tmp_path / "a.csv"), "--compare", str(tmp_path / "b.csv")]
    assert main([*args, "--out", str(out)]) == 0
    html = out.read_text()
    assert "<table" in html and "data:image/png;base64," in html
