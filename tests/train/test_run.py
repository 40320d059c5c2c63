"""train_run / ``fastseg train`` end to end on a tiny store: the run directory, resume after an
interruption (same iterations, learning rates and weights as an uninterrupted run), errors."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from fastseg.errors import InputError
from fastseg.train import TrainRunResult, _run, load_config, train_run

ITERATIONS = 8


@pytest.fixture(scope="module")
def full_run(
    tiny_store: Path,
    tiny_overrides: Callable[..., dict[str, Any]],
    tmp_path_factory: pytest.TempPathFactory,
) -> TrainRunResult:
    """An uninterrupted run: 8 iterations, validation after 4 and 8, fold 0 (1 case)."""
    out = tmp_path_factory.mktemp("runs") / "full"
    overrides = tiny_overrides(schedule__max_iterations=ITERATIONS, schedule__validate_every=4)
    return train_run(tiny_store, out, overrides=overrides, progress=False, log=None)


def test_run_directory(full_run: TrainRunResult, tiny_store: Path) -> None:
    from fastseg.metrics import COLUMNS
    from fastseg.postprocess import load_plan
    from fastseg.store import Store

    run = full_run.run_dir
    assert full_run.iterations == ITERATIONS and full_run.stopped_by == "iterations"
    assert [h["iteration"] for h in full_run.history] == [4, 8]
    assert full_run.best_score == max(h["mean_dice"] for h in full_run.history)
    assert full_run.best_iteration in (4, 8)

    spec = _run.read_run_spec(run)
    assert set(_run.REQUIRED_KEYS) <= set(spec)
    assert spec["patch_size"] == [8, 16, 16]
    assert spec["inference"]["mirror_axes"] == [0, 1, 2]
    assert spec["model"]["name"] == "unet" and spec["model"]["widths"] == [4, 8]
    store = Store.open(tiny_store)
    assert spec["store"]["label_names"] == {"0": "background", "1": "big", "2": "small"}
    assert spec["store"]["plan"] == store.attrs["plan"]
    cases = store.cases
    assert spec["split"]["validation"] == [c for i, c in enumerate(cases) if i % 5 == 0]
    assert sorted(spec["split"]["train"] + spec["split"]["validation"]) == cases

    saved = load_config(run / "config.yaml")
    assert saved.data.patch_size == [8, 16, 16] and saved.schedule.max_iterations == ITERATIONS

    model, _ = _run.load_model(run, "last")
    final = full_run.model
    assert final is not None
    for key, value in final.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    best, _ = _run.load_model(run, "best")
    assert not best.training

    for which in ("best", "last"):
        state = torch.load(_run.checkpoint_path(run, which), weights_only=True)
        for key in ("model", "optimizer", "scaler", "iteration", "elapsed_s", "best_score"):
            assert key in state, key
        assert {"torch", "numpy", "python"} <= set(state["rng"])
        assert isinstance(state["rng"]["torch"], torch.Tensor)
    last = torch.load(_run.checkpoint_path(run, "last"), weights_only=True)
    assert last["iteration"] == ITERATIONS and len(last["history"]) == 2
    assert last["elapsed_s"] == pytest.approx(full_run.seconds, abs=5.0)

    with open(run / "validation.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS
    assert [(r["case"], r["label"]) for r in rows] == [
        (c, str(k)) for c in spec["split"]["validation"] for k in (1, 2)
    ]
    plan = load_plan(run / "postprocessing.json")
    assert set(plan["classes"]) == {"1", "2"}

    events = [json.loads(line)["event"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert events[0] == "start" and events[-1] == "end"
    assert events.count("validation") == 2 and "train" in events
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert "note" in events  # "tensorboard is not installed"
    else:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        assert list((run / "tensorboard").glob("events.out.tfevents.*"))
        events_tb = EventAccumulator(str(run / "tensorboard"))
        events_tb.Reload()
        tags = events_tb.Tags()
        assert {"train/loss", "train/lr", "val/mean_dice", "val/dice_1"} <= set(tags["scalars"])
        assert [t for t in tags["images"] if t.startswith("val/")]  # validation overlays


def test_interrupt_saves_last_and_resume_matches_uninterrupted(
    full_run: TrainRunResult,
    tiny_store: Path,
    tiny_overrides: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    out = tmp_path / "resumed"
    overrides = tiny_overrides(schedule__max_iterations=ITERATIONS, schedule__validate_every=4)

    def ctrl_c(iteration: int) -> None:
        if iteration == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(tiny_store, out, overrides=overrides, progress=False, log=None, callback=ctrl_c)
    state = torch.load(_run.checkpoint_path(out, "last"), weights_only=True)
    assert state["iteration"] == 5 and len(state["history"]) == 1
    assert not (out / "validation.csv").exists()
    assert json.loads((out / "log.jsonl").read_text().splitlines()[-1])["event"] == "interrupted"

    resumed = train_run(tiny_store, out, resume=True, progress=False, log=None)
    assert resumed.iterations == ITERATIONS
    assert resumed.learning_rates == full_run.learning_rates[5:]
    assert resumed.losses == pytest.approx(full_run.losses[5:], rel=1e-5, abs=1e-6)
    assert [h["iteration"] for h in resumed.history] == [4, 8]
    assert [h["mean_dice"] for h in resumed.history] == pytest.approx(
        [h["mean_dice"] for h in full_run.history], abs=1e-6
    )
    assert resumed.model is not None and full_run.model is not None
    a, b = resumed.model.state_dict(), full_run.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)
    assert (out / "validation.csv").is_file() and (out / "postprocessing.json").is_file()
    # a resumed run's time budget counts the earlier session too
    last = torch.load(_run.checkpoint_path(out, "last"), weights_only=True)
    assert last["elapsed_s"] >= state["elapsed_s"]


def test_resume_needs_a_checkpoint_and_the_same_config(
    full_run: TrainRunResult,
    tiny_store: Path,
    tiny_overrides: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    with pytest.raises(InputError, match="nothing to resume"):
        train_run(tiny_store, tmp_path / "none", resume=True, overrides=tiny_overrides())
    with pytest.raises(InputError, match=r"--resume needs .* optim.learning_rate"):
        train_run(
            tiny_store,
            full_run.run_dir,
            resume=True,
            overrides={"optim.learning_rate": 0.5},
            log=None,
        )
    with pytest.raises(InputError, match="already holds a training run"):
        train_run(tiny_store, full_run.run_dir, overrides=tiny_overrides(), log=None)
    # a run that stopped before its first checkpoint (run.json only) can be started afresh
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / "run.json").write_text("{}")
    quick = tiny_overrides(schedule__max_iterations=1, split__fold=-1)
    assert train_run(tiny_store, crashed, overrides=quick, log=None, progress=False).iterations == 1
    assert _run.read_run_spec(crashed)["patch_size"] == [8, 16, 16]


def test_bad_config_writes_nothing(
    tiny_store: Path, tiny_overrides: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  learning_rate: -1\n")
    out = tmp_path / "run"
    with pytest.raises(InputError, match=r"optim.learning_rate: expected > 0, got -1"):
        train_run(tiny_store, out, config=bad, log=None)
    assert not out.exists()
    with pytest.raises(InputError, match=r"split\.validation_cases"):
        train_run(
            tiny_store,
            out,
            overrides=tiny_overrides(split__validation_cases=["nope"]),
            log=None,
        )
    assert not out.exists()
    with pytest.raises(InputError, match=r"training\.amp: fp16 needs a CUDA device"):
        train_run(tiny_store, out, overrides=tiny_overrides(training__amp="fp16"), log=None)
    assert not out.exists()


def test_time_budget_counts_every_session(
    tiny_store: Path, tiny_overrides: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    out = tmp_path / "budget"
    overrides = tiny_overrides(
        schedule__time_budget_s=600, schedule__max_iterations=50, split__fold=-1
    )

    def stop(iteration: int) -> None:
        if iteration == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(tiny_store, out, overrides=overrides, progress=False, log=None, callback=stop)
    path = _run.checkpoint_path(out, "last")
    state = torch.load(path, weights_only=True)
    assert state["iteration"] == 2 and 0 < state["elapsed_s"] < 600
    state["elapsed_s"] = 599.99  # as if the first session had used (almost) all the budget
    _run.save_checkpoint(path, state)
    resumed = train_run(tiny_store, out, resume=True, progress=False, log=None)
    assert resumed.stopped_by == "time" and resumed.iterations <= 3
    assert resumed.seconds >= 599.99


def test_cli_trains_a_2d_model_without_validation(
    tiny_store: Path, tiny_overrides: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    from fastseg.cli import main

    config = tmp_path / "c.toml"
    config.write_text(
        "[model]\ndimensions = 2\nwidths = [4, 8]\ndeep_supervision = false\n"
        "[data]\npatch_size = [1, 16, 16]\nworkers = 0\naugmentation = 'none'\n"
        "mirror_axes = [0, 2]\n"
        "[optim]\noptimizer = 'sgd'\n"
    )
    out = tmp_path / "run2d"
    args = ["train", str(tiny_store), "--out", str(out), "--config", str(config), "--quiet"]
    flags = ["--fold", "-1", "--max-iterations", "3", "--device", "cpu"]
    sets = ["--set", "schedule.time_budget_s=null", "--set", "training.amp=bf16"]  # CPU autocast
    assert main([*args, *flags, *sets]) == 0
    spec = _run.read_run_spec(out)
    assert spec["model"]["dimensions"] == 2
    assert spec["inference"]["mirror_axes"] == [2]  # a 2D model is never mirrored along z
    assert spec["split"]["validation"] == []
    last = torch.load(_run.checkpoint_path(out, "last"), weights_only=True)
    best = torch.load(_run.checkpoint_path(out, "best"), weights_only=True)
    assert last["iteration"] == best["iteration"] == 3
    assert not (out / "validation.csv").exists()
    model, _ = _run.load_model(out)
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 3, 16, 16)).shape == (1, 3, 3, 16, 16)
    # a bad flag: exit code 2 and nothing written
    assert main(["train", str(tiny_store), "--out", str(tmp_path / "x"), "--set", "a=1"]) == 2
    assert not (tmp_path / "x").exists()


def test_dali_loader_option(
    tiny_store: Path, tiny_overrides: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    overrides = tiny_overrides(data__loader="dali", schedule__max_iterations=2, split__fold=-1)
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match=r"(?i)dali"):
            train_run(tiny_store, tmp_path / "dali", overrides=overrides, log=None)
    else:
        result = train_run(tiny_store, tmp_path / "dali", overrides=overrides, log=None)
        assert result.iterations == 2


def test_stored_classes_are_checked_against_the_model_classes(tiny_store: Path) -> None:
    """Training checks the stored labels once at start-up (so the GPU loss need not read every
    batch's label range back): a label outside the model's classes names the case."""
    from fastseg.store import Store
    from fastseg.train._runner import check_stored_classes

    store = Store.open(tiny_store)
    cases = list(store)
    check_stored_classes(store, cases, 3)  # labels 1 and 2: fine
    with pytest.raises(InputError, match=r"case '.+' has labels \[2\], outside the 2 classes"):
        check_stored_classes(store, cases, 2)
