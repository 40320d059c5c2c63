"""Training configuration: defaults, YAML and TOML files, precedence, errors naming the key."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from fastseg.errors import InputError
from fastseg.train import TrainConfig, load_config
from fastseg.train._config import CHECKS, SECTIONS, read_config_file


def test_defaults_match_the_contract() -> None:
    cfg = load_config()
    assert cfg.model.dimensions == 3 and cfg.model.widths == [32, 64, 128, 256]
    assert cfg.model.strides is None and cfg.model.norm == "instance"
    assert cfg.model.deep_supervision is True and cfg.model.residual is False
    assert cfg.data.patch_size is None and cfg.data.batch_size == 2
    assert cfg.data.oversample_foreground == 0.33 and cfg.data.workers == 2
    assert cfg.data.augmentation == "default" and cfg.data.loader == "native"
    assert (cfg.split.folds, cfg.split.fold, cfg.split.validation_cases) == (5, 0, None)
    assert cfg.optim.optimizer == "adamw" and cfg.optim.learning_rate is None
    assert cfg.learning_rate == 3e-3
    assert cfg.optim.warmup_iterations == 50 and cfg.optim.grad_clip == 12.0
    assert cfg.loss.name == "dice_ce" and cfg.loss.include_background is False
    assert cfg.schedule.time_budget_s == 2400 and cfg.schedule.max_iterations is None
    assert cfg.schedule.validate_every == 500 and cfg.schedule.checkpoint_every_s == 120
    assert cfg.training.device == "auto" and cfg.training.amp == "auto"
    assert cfg.training.seed == 0 and cfg.training.tensorboard is True


def test_docstring_schema_lists_every_field() -> None:
    import fastseg.train._config as module

    doc = module.__doc__ or ""
    for section, keys in CHECKS.items():
        assert re.search(rf"^    {section}:", doc, re.M), section
        for key in keys:
            assert re.search(rf"^      {key}:", doc, re.M), f"{section}.{key}"
    # the documented defaults are the real ones
    block = doc.split(".. code-block:: yaml")[1].split("\nThe same file in TOML")[0]
    documented = yaml.safe_load(block)
    assert TrainConfig.from_dict(documented).to_dict() == TrainConfig().to_dict()


def test_sgd_default_learning_rate() -> None:
    assert load_config(overrides={"optim.optimizer": "sgd"}).learning_rate == 1e-2
    cfg = load_config(overrides={"optim": {"optimizer": "sgd", "learning_rate": 0.05}})
    assert cfg.learning_rate == 0.05


def test_yaml_and_toml_files_give_the_same_config(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "model:\n  widths: [8, 16]\n  dimensions: 2\ndata:\n  patch_size: [1, 64, 64]\n"
        "optim:\n  optimizer: sgd\n  grad_clip: null\nschedule:\n  max_iterations: 100\n"
    )
    (tmp_path / "c.toml").write_text(
        "[model]\nwidths = [8, 16]\ndimensions = 2\n[data]\npatch_size = [1, 64, 64]\n"
        "[optim]\noptimizer = 'sgd'\n[schedule]\nmax_iterations = 100\n"
    )
    a = load_config(tmp_path / "c.yaml")
    b = load_config(tmp_path / "c.toml")
    assert a.model.widths == [8, 16] and a.model.dimensions == 2
    assert a.data.patch_size == [1, 64, 64] and a.schedule.max_iterations == 100
    assert a.optim.grad_clip is None and b.optim.grad_clip == 12.0  # TOML has no null
    b.optim.grad_clip = None
    assert a.to_dict() == b.to_dict()


def test_precedence_defaults_plan_file_overrides(tmp_path: Path) -> None:
    plan = {
        "data": {"patch_size": [16, 32, 32], "batch_size": 4},
        "optim": {"learning_rate": 1e-3},
        "model": {"widths": [8, 16, 32]},
        "notes": {"anything": 1},  # unknown sections of a plan are ignored
    }
    store = SimpleNamespace(attrs={"training_plan": plan}, url="mem")
    (tmp_path / "c.yaml").write_text("data:\n  batch_size: 3\noptim:\n  learning_rate: 2.0e-3\n")
    cfg = load_config(tmp_path / "c.yaml", store, {"optim.learning_rate": 5e-4})
    assert cfg.data.patch_size == [16, 32, 32]  # plan over defaults
    assert cfg.model.widths == [8, 16, 32]
    assert cfg.data.batch_size == 3  # file over plan
    assert cfg.optim.learning_rate == 5e-4  # overrides over file
    assert load_config(None, store).data.batch_size == 4
    assert load_config(None, SimpleNamespace(attrs={}, url="x")).data.batch_size == 2


def test_augmentation_null_means_none() -> None:
    assert load_config(overrides={"data.augmentation": None}).data.augmentation == "none"


def test_mirror_axes_restrict_the_default_flip() -> None:
    from fastseg.augment import default_config
    from fastseg.train._batches import training_augmentation

    def flip(cfg: TrainConfig) -> list[dict[str, object]]:
        steps = training_augmentation(cfg)
        assert steps is not None
        assert [s for s in steps if s["name"] != "flip"] == [
            s for s in default_config() if s["name"] != "flip"
        ]
        return [s for s in steps if s["name"] == "flip"]

    assert load_config().mirror_axes == [0, 1, 2]
    assert flip(load_config()) == [{"name": "flip", "axes": [0, 1, 2]}]
    cfg = load_config(overrides={"data.mirror_axes": [2, 0]})
    assert cfg.data.mirror_axes == [0, 2] and flip(cfg) == [{"name": "flip", "axes": [0, 2]}]
    two_d = load_config(overrides={"data.mirror_axes": [0, 2], "model.dimensions": 2})
    assert two_d.mirror_axes == [2]
    assert load_config(overrides={"model.dimensions": 2}).mirror_axes == [1, 2]
    assert flip(load_config(overrides={"data.mirror_axes": []})) == []
    custom = [{"name": "flip", "axes": [1]}, {"name": "noise"}]
    cfg = load_config(overrides={"data.augmentation": custom, "data.mirror_axes": [0]})
    assert training_augmentation(cfg) == custom  # a list of steps is used as given
    assert training_augmentation(load_config(overrides={"data.augmentation": "none"})) is None


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    cfg = load_config(overrides={"data.augmentation": [{"name": "flip", "p": 0.5}]})
    (tmp_path / "out.yaml").write_text(cfg.to_yaml())
    again = load_config(tmp_path / "out.yaml")
    assert again.to_dict() == cfg.to_dict()
    assert again.data.augmentation == [{"name": "flip", "p": 0.5}]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"optim.learning_rate": -1}, "optim.learning_rate: expected > 0, got -1"),
        ({"optim.optimizer": "adam"}, "optim.optimizer: expected one of"),
        ({"data.patch_size": [1, 2]}, "data.patch_size: expected a list of 3 integers"),
        ({"data.patch_size": [0, 8, 8]}, "data.patch_size: expected integers >= 1"),
        ({"data.batch_size": 1.5}, "data.batch_size: expected an integer"),
        ({"data.batch_size": True}, "data.batch_size: expected an integer"),
        ({"data.oversample_foreground": 1.5}, "data.oversample_foreground: expected <= 1"),
        ({"data.augmentation": "heavy"}, "data.augmentation: expected 'default'"),
        ({"data.mirror_axes": [0, 3]}, "data.mirror_axes: expected distinct axes"),
        ({"data.mirror_axes": [1, 1]}, "data.mirror_axes: expected distinct axes"),
        ({"data.mirror_axes": "y"}, "data.mirror_axes: expected distinct axes"),
        ({"model.dimensions": 4}, "model.dimensions: expected 2 or 3"),
        ({"model.norm": "group"}, "model.norm: expected one of"),
        ({"model.residual": "yes"}, "model.residual: expected true or false"),
        ({"model.strides": [[2, 2]]}, "model.strides[0]: expected a list of 3 integers"),
        ({"model.strides": [[2, 2, 2], [2, 2, 2]]}, "model.strides: expected 3 triples"),
        ({"training.device": "gpu"}, "training.device: expected auto, cpu, cuda or cuda:N"),
        ({"training.amp": "fp8"}, "training.amp: expected one of"),
        ({"split.fold": 5}, "split.fold: expected -1 or < split.folds"),
        ({"split.validation_cases": "a"}, "split.validation_cases: expected a list"),
        ({"schedule.validation_overlap": 1.0}, "schedule.validation_overlap: expected <= 0.99"),
        ({"schedule.time_budget_s": None}, "give schedule.time_budget_s, schedule.max_iterations"),
        (
            {"model.dimensions": 2, "data.patch_size": [4, 8, 8]},
            "data.patch_size: a 2D model",
        ),
        ({"optim.learnig_rate": 1}, "unknown key optim.learnig_rate"),
        ({"optimizer.learning_rate": 1}, "unknown section 'optimizer'"),
        ({"learning_rate": 1}, "overrides: expected 'section.key'"),
    ],
)
def test_bad_values_name_the_dotted_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        load_config(overrides=overrides)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  momentum: 2\n")
    with pytest.raises(InputError, match=r"optim.momentum: expected <= 1"):
        load_config(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[optim]\nlr = 1.0\n")
    with pytest.raises(InputError, match=r"unknown.toml: unknown key optim.lr"):
        load_config(unknown)
    broken = tmp_path / "broken.toml"
    broken.write_text("[optim\n")
    with pytest.raises(InputError, match="not valid TOML"):
        read_config_file(broken)
    (tmp_path / "broken.yaml").write_text("a: [1,\n")
    with pytest.raises(InputError, match="not valid YAML"):
        read_config_file(tmp_path / "broken.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(InputError, match="expected a mapping"):
        read_config_file(tmp_path / "list.yaml")
    (tmp_path / "c.json").write_text("{}")
    with pytest.raises(InputError, match=r"expected a \.yaml, \.yml or \.toml"):
        read_config_file(tmp_path / "c.json")
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(tmp_path / "empty.yaml").to_dict() == TrainConfig().to_dict()


def test_sections_and_checks_agree() -> None:
    for name, cls in SECTIONS.items():
        fields = {f.name for f in cls.__dataclass_fields__.values()}
        assert fields == set(CHECKS[name]), name


def test_a_stores_training_plan_is_the_layer_under_the_file(
    tiny_store: Path, tmp_path: Path
) -> None:
    import shutil

    from fastseg.store import Store

    copy = tmp_path / "planned.zarr"
    shutil.copytree(tiny_store, copy)
    plan = {
        "model": {"widths": [8, 16], "strides": [[1, 2, 2]]},
        "data": {"patch_size": [8, 24, 16], "batch_size": 3},
        "rationale": {"patch_size": "why"},  # notes a plan carries are not configuration
    }
    Store.open(copy).write_training_plan(plan)
    cfg = load_config(None, str(copy))
    assert cfg.model.widths == [8, 16] and cfg.model.strides == [[1, 2, 2]]
    assert cfg.data.patch_size == [8, 24, 16] and cfg.data.batch_size == 3
    (tmp_path / "c.yaml").write_text("data:\n  batch_size: 4\n")
    assert load_config(tmp_path / "c.yaml", Store.open(copy)).data.batch_size == 4
    Store.open(copy).write_training_plan({"optim": {"learning_rate": -1.0}})
    with pytest.raises(InputError, match=r"optim\.learning_rate: expected > 0"):
        load_config(None, str(copy))


def test_unquoted_off_in_yaml_means_amp_off(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  amp: off\n")
    assert yaml.safe_load(path.read_text())["training"]["amp"] is False
    assert load_config(path).training.amp == "off"
    with pytest.raises(InputError, match=r"training\.amp"):
        load_config(overrides={"training.amp": True})
