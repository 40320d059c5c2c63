"""`fastseg evaluate`: folders matched by name, one CSV row per case and label, no partial CSV."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from fastseg import io
from fastseg.cli import main
from fastseg.metrics import COLUMNS, evaluate, evaluate_folders

SPACING = (2.5, 0.8, 0.7)


def blob(rng: np.random.Generator, shape: tuple[int, int, int], labels: int = 2) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    zz, yy, xx = np.indices(shape)
    for label in range(1, labels + 1):
        c = rng.uniform(0.3, 0.7, 3) * np.array(shape)
        r = rng.uniform(0.15, 0.3) * min(shape)
        out[((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) < r**2] = label
    return out


def make_folders(
    tmp_path: Path, n: int = 5
) -> tuple[Path, Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(11)
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    arrays = {}
    for i in range(n):
        case = f"case_{i:03d}"
        ref = blob(rng, (12, 20, 18))
        pred = np.roll(ref, shift=int(rng.integers(-2, 3)), axis=2)
        if i == 1:
            pred[pred == 2] = 0  # an empty prediction for label 2: infinite distances
        arrays[case] = (pred, ref)
        io.write(io.Volume(pred, spacing=SPACING), pred_dir / f"{case}.nii.gz")
        io.write(io.Volume(ref, spacing=SPACING), ref_dir / f"{case}.nii.gz")
    return pred_dir, ref_dir, arrays


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_cli_rows_match_evaluate_on_arrays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred_dir, ref_dir, arrays = make_folders(tmp_path)
    out = tmp_path / "metrics.csv"
    assert (
        main(
            [
                "evaluate",
                "--pred",
                str(pred_dir),
                "--ref",
                str(ref_dir),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    rows = read_csv(out)
    assert list(rows[0]) == list(COLUMNS)
    assert len(rows) == 2 * len(arrays)
    for row in rows:
        pred, ref = arrays[row["case"]]
        stored_spacing = io.read(ref_dir / f"{row['case']}.nii.gz").spacing  # float32 in NIfTI
        expected = evaluate(pred, ref, spacing=stored_spacing)[int(row["label"])]
        for metric in ("dice", "jaccard", "hd", "hd95", "avd", "assd", "vs", "nsd"):
            got, want = float(row[metric]), float(expected[metric])
            assert got == want or (math.isinf(got) and math.isinf(want)), (row["case"], metric)
        assert int(row["pred_voxels"]) == expected["pred_voxels"]
        assert row["empty"] == expected["empty"]
    assert any(r["empty"] == "pred" for r in rows)
    printed = capsys.readouterr().out
    assert "dice" in printed and "wrote 10 rows" in printed


def test_missing_prediction_is_an_error_and_writes_no_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred_dir, ref_dir, _ = make_folders(tmp_path, n=3)
    (pred_dir / "case_002.nii.gz").unlink()
    (pred_dir / "case_999.nii.gz").write_bytes((ref_dir / "case_000.nii.gz").read_bytes())
    out = tmp_path / "metrics.csv"
    assert (
        main(["evaluate", "--pred", str(pred_dir), "--ref", str(ref_dir), "--out", str(out)]) == 2
    )
    assert "no prediction for 1 reference case(s): case_002" in capsys.readouterr().err
    assert not out.exists()
    rows = evaluate_folders(pred_dir, ref_dir, out, allow_missing=True, progress=False)
    assert {r["case"] for r in rows} == {"case_000", "case_001"}
    printed = capsys.readouterr().out
    assert "case_002" in printed and "case_999" in printed


@pytest.mark.parametrize("problem", ["float mask", "shape", "other case"])
def test_bad_pair_names_files_and_leaves_no_csv(
    tmp_path: Path, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pred_dir, ref_dir, arrays = make_folders(tmp_path, n=3)
    bad = pred_dir / "case_001.nii.gz"
    pred, _ = arrays["case_001"]
    if problem == "float mask":
        io.write(io.Volume(pred.astype(np.float32) * 0.4, spacing=SPACING), bad)
    elif problem == "shape":
        io.write(io.Volume(pred[:, :-1], spacing=SPACING), bad)
    else:  # a label file of another scan: another grid
        io.write(io.Volume(pred, spacing=(3.0, 0.8, 0.7), origin=(5.0, 0.0, 0.0)), bad)
    out = tmp_path / "metrics.csv"
    out.write_text("stale table from an earlier run\n")
    assert (
        main(["evaluate", "--pred", str(pred_dir), "--ref", str(ref_dir), "--out", str(out)]) == 2
    )
    err = capsys.readouterr().err
    assert "case_001" in err
    assert out.read_text() == "stale table from an earlier run\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".metrics")]


def test_dask_scheduler_gives_the_same_rows(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    pred_dir, ref_dir, _ = make_folders(tmp_path, n=4)
    local = evaluate_folders(pred_dir, ref_dir, progress=False)
    with (
        LocalCluster(
            n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        distributed_rows = evaluate_folders(
            pred_dir, ref_dir, scheduler=client, chunk=1, progress=False
        )
    assert distributed_rows == local


def test_cli_device_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--device`` reaches the engine: a bad name, or CUDA on a machine without it, is an error
    naming the option, and no CSV is written."""
    import torch

    pred_dir, ref_dir, _ = make_folders(tmp_path, n=2)
    out = tmp_path / "metrics.csv"
    args = ["evaluate", "--pred", str(pred_dir), "--ref", str(ref_dir), "--out", str(out)]
    assert main([*args, "--device", "gpu", "--quiet"]) == 2
    assert "device: expected cpu, cuda or cuda:N, got 'gpu'" in capsys.readouterr().err
    assert not out.exists()
    if not torch.cuda.is_available():
        assert main([*args, "--device", "cuda", "--quiet"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
        assert not out.exists()
    assert main([*args, "--device", "cpu", "--quiet"]) == 0 and out.exists()
