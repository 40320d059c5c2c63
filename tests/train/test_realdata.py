"""``fastseg train`` on 10 real hippocampus cases (MR, labels anterior/posterior): trains and
validates end to end on CPU for a few iterations."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from fastseg.train import _run


@pytest.mark.slow
@pytest.mark.realdata
def test_fastseg_train_on_hippocampus(hippo_msd: Path, tmp_path: Path) -> None:
    from fastseg.cli import main
    from fastseg.store import Store, convert

    store = tmp_path / "hippo.zarr"
    report = convert(hippo_msd, store, workers=1, progress=False)
    assert report.ok, report.failed
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "model:\n  widths: [4, 8, 16]\n"
        "data:\n  batch_size: 2\n  workers: 1\n"
        "schedule:\n  max_iterations: 4\n  validate_every: 2\n"
        "training:\n  device: cpu\n  log_every_s: 0\n"
    )
    out = tmp_path / "run"
    assert main(["train", str(store), "--out", str(out), "--config", str(config), "--quiet"]) == 0

    cases = Store.open(store).cases
    spec = _run.read_run_spec(out)
    # patch size: the median stored shape (hippocampus crops are smaller than the cap)
    shapes = np.array([Store.open(store)[c].shape for c in spec["split"]["train"]])
    assert spec["patch_size"] == [min(int(v), 128) for v in np.median(shapes, axis=0)]
    assert spec["split"]["validation"] == [c for i, c in enumerate(cases) if i % 5 == 0]
    last = torch.load(_run.checkpoint_path(out, "last"), weights_only=True)
    assert last["iteration"] == 4 and [h["iteration"] for h in last["history"]] == [2, 4]
    with open(out / "validation.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["case"] for r in rows} == set(spec["split"]["validation"])
    assert {r["label"] for r in rows} == {"1", "2"}
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    assert (out / "postprocessing.json").is_file()
    model, _ = _run.load_model(out)
    assert model.num_classes == 3
