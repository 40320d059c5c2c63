"""A smoke run of the whole demo on a tiny budget: every output exists and is well formed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fastseg.demo import run_demo
from fastseg.errors import InputError

TINY = {
    "n_train": 2,
    "n_test": 3,
    "shape": (24, 32, 40),
    "spacing": (5.0, 3.0, 3.0),
    "patch_size": (16, 16, 32),
    "widths": (4, 8),
    "threads": 1,
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object], list[str]]:
    out = tmp_path_factory.mktemp("demo")
    messages: list[str] = []
    summary = run_demo(out, minutes=0.05, seed=3, log=messages.append, **TINY)  # type: ignore[arg-type]
    return out, summary, messages


def test_outputs_exist(demo: tuple[Path, dict[str, object], list[str]]) -> None:
    out, _, _ = demo
    for name in ["metrics.csv", "summary.json", "model.pt", "data/dataset.json"]:
        assert (out / name).is_file()
    assert len(list((out / "data" / "imagesTr").glob("*.nii.gz"))) == 2
    for stage in ("raw", "clean"):
        assert len(list((out / "predictions" / stage).glob("*.nii.gz"))) == 3
    pngs = sorted((out / "overlays").glob("*.png"))
    assert len(pngs) == 4  # one per held-out case + the first case's reference
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_metrics_csv(demo: tuple[Path, dict[str, object], list[str]]) -> None:
    out, _, _ = demo
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 3 * 2  # cases x labels x stages
    assert set(rows[0]) >= {"case", "stage", "label", "label_name", "dice", "hd", "avd", "vs"}
    assert {r["stage"] for r in rows} == {"raw", "clean"}
    assert {r["label_name"] for r in rows} == {"lung", "bone", "lesion"}
    for row in rows:
        assert 0.0 <= float(row["dice"]) <= 1.0 and 0.0 <= float(row["vs"]) <= 1.0
        assert float(row["hd"]) >= 0.0 and float(row["avd"]) >= 0.0  # may be inf
        assert row["empty"] in ("", "pred", "ref", "both")


def test_summary_and_messages(demo: tuple[Path, dict[str, object], list[str]]) -> None:
    out, summary, messages = demo
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["training"]["iterations"] >= 1
    assert set(on_disk["metrics_mean"]) == {"raw", "clean"}
    assert set(on_disk["metrics_mean"]["clean"]) == {"lung", "bone", "lesion"}
    comparison = on_disk["comparisons"]["lesion_dice"]
    assert comparison["paired"] is True and 0.0 <= comparison["pvalue"] <= 1.0
    assert comparison["test"] and comparison["reason"]
    assert on_disk["timings_s"]["total_s"] > 0
    assert any(m.startswith("[7/7]") for m in messages)
    assert any("Dice on 3 held-out phantoms" in m for m in messages)
    assert any(str(out) in m for m in messages)


def test_predictions_keep_the_geometry_and_model_loads(
    demo: tuple[Path, dict[str, object], list[str]],
) -> None:
    import torch

    from fastseg.io import read
    from fastseg.nn import UNet3D

    out, _, _ = demo
    image = read(out / "data" / "imagesTs" / "phantom_002.nii.gz")
    pred = read(out / "predictions" / "clean" / "phantom_002.nii.gz")
    assert pred.shape == image.shape and pred.orientation == image.orientation
    np.testing.assert_allclose(pred.affine, image.affine)
    assert set(np.unique(pred.array).tolist()) <= {0, 1, 2, 3}
    checkpoint = torch.load(out / "model.pt", weights_only=True)
    model = UNet3D(1, checkpoint["num_classes"], checkpoint["widths"])
    model.load_state_dict(checkpoint["state_dict"])
    assert checkpoint["normalization"]["std"] > 0


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="minutes"):
        run_demo(tmp_path, minutes=-1.0)
    with pytest.raises(InputError, match="n_test"):
        run_demo(tmp_path, n_test=0)
