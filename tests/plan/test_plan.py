"""``fastseg plan``: nnU-Net's pooling rule, patch/batch sizing within the budget, the 5% cap, the
2D alternative, writing into the store and reading back (and through the trainer's config)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseg.cli import main
from fastseg.errors import FastsegError, InputError
from fastseg.io import Volume, write
from fastseg.plan import fit_topology, plan_training, topology, write_plan
from fastseg.plan._planner import (
    CPU_FLOPS_PER_ITERATION,
    MAX_DATASET_FRACTION,
    _Budget,
)
from fastseg.plan._topology import MAX_POOLS, MIN_EDGE
from fastseg.store import Store, convert


class _FakeCase:
    def __init__(
        self,
        shape: tuple[int, int, int],
        spacing: tuple[float, float, float],
        foreground: dict[int, np.ndarray] | None = None,
    ) -> None:
        self.shape = shape
        self.spacing = spacing
        self.channels = 1
        self._foreground = foreground or {}

    def foreground(self) -> dict[int, np.ndarray]:
        return self._foreground


class _FakeStore:
    """What the planner reads of a store: cases with stored shapes and spacings, the plan."""

    url = "fake://store"

    def __init__(
        self, shapes: list[tuple[int, int, int]], spacing: tuple[float, float, float]
    ) -> None:
        self._cases = {f"c{i:03d}": _FakeCase(s, spacing) for i, s in enumerate(shapes)}
        norm = [{"channel": 0, "scheme": "zscore", "statistics": "per image"}]
        self.attrs = {"plan": {"preprocessing": {"target_spacing": list(spacing),
                                                 "normalization": norm}}}  # fmt: skip

    @property
    def cases(self) -> list[str]:
        return list(self._cases)

    def __getitem__(self, case_id: str) -> _FakeCase:
        return self._cases[case_id]


def _hippocampus_like(n: int = 260) -> _FakeStore:
    rng = np.random.default_rng(0)
    shapes = [
        (int(36 + d[0]), int(50 + d[1]), int(35 + d[2])) for d in rng.integers(-4, 5, size=(n, 3))
    ]
    shapes[0] = (36, 50, 35)
    return _FakeStore(shapes, (1.0, 1.0, 1.0))


def _check_budget(plan: dict[str, Any], device: str, memory_gb: float) -> None:
    """The chosen batch fits the memory (and, on CPU, compute) budget of the planner's model."""
    budget = _Budget(device, memory_gb, 1)
    model, data = plan["model"], plan["data"]
    patch = data["patch_size"]
    dims = model["dimensions"]
    spacing = [1.0, 1.0, 1.0]
    _, topo = fit_topology(patch, spacing)
    mem, flops = budget.per_sample(topo, model["widths"], dims)
    assert data["batch_size"] * mem + budget.fixed(model["widths"], dims) <= budget.memory
    if device == "cpu":
        assert data["batch_size"] * flops <= CPU_FLOPS_PER_ITERATION


def test_topology_of_nnunet_hippocampus_patch() -> None:
    topo = topology((40, 56, 40), (1.0, 1.0, 1.0))
    assert topo.strides == [[2, 2, 2], [2, 2, 2], [2, 2, 2]]
    assert topo.divisor == (8, 8, 8)
    assert topo.level_shapes[-1] == (5, 7, 5)


def test_anisotropic_axis_is_pooled_later() -> None:
    topo = topology((24, 256, 256), (5.0, 0.8, 0.8))
    # in-plane spacing 0.8 -> 1.6 -> 3.2: z (5 mm < 2 x 3.2) joins at the third pooling
    assert topo.strides[:2] == [[1, 2, 2]] * 2
    assert topo.strides[2] == [2, 2, 2]
    assert topo.divisor[0] < topo.divisor[1]


def test_two_d_patch_never_pools_z() -> None:
    topo = topology((1, 64, 64), (0.5, 1.0, 1.0))
    assert all(s[0] == 1 for s in topo.strides)
    assert topo.divisor == (1, 16, 16)
    # a lone axis is pooled only while it keeps >= 1.5 x the minimum edge (nnU-Net)
    assert topology((1, 64, 48), (0.5, 1.0, 1.0)).divisor == (1, 8, 8)


@settings(max_examples=60, deadline=None)
@given(
    patch=st.tuples(*[st.integers(1, 300)] * 3),
    spacing=st.tuples(*[st.floats(0.2, 8.0)] * 3),
)
def test_topology_invariants(patch: tuple[int, int, int], spacing: tuple[float, ...]) -> None:
    fitted, topo = fit_topology(patch, spacing)
    assert all(f >= p and f % d == 0 for f, p, d in zip(fitted, patch, topo.divisor, strict=True))
    sizes = [float(v) for v in fitted]
    sp = list(spacing)
    counts = [0, 0, 0]
    for step in topo.strides:
        pooled = [a for a in range(3) if step[a] == 2]
        assert pooled
        open_axes = [a for a in range(3) if sizes[a] >= 2 * MIN_EDGE and counts[a] < MAX_POOLS]
        finest = min(sp[a] for a in open_axes)
        for a in pooled:
            counts[a] += 1
            assert sizes[a] / 2 >= MIN_EDGE  # bottleneck axes keep >= 4 voxels
            assert sp[a] / finest < 2  # coarse axes wait until the others catch up
            sizes[a] /= 2
            sp[a] *= 2


def test_gpu_plan_of_hippocampus_matches_nnunet() -> None:
    plan = plan_training(_hippocampus_like(), device="cuda")
    # nnU-Net v2's 3d_fullres plan of Task004: patch 40x56x40, batch 9, 4 stages
    assert plan["data"]["patch_size"] == [40, 56, 40]
    assert plan["data"]["batch_size"] == 9
    assert len(plan["model"]["widths"]) == 4
    assert plan["model"]["widths"] == [32, 64, 128, 256]
    alt = plan["alternatives"]["2d"]
    assert alt["data"]["patch_size"] == [1, 56, 40] and alt["model"]["dimensions"] == 2
    assert alt["data"]["batch_size"] >= 2
    _check_budget(plan, "cuda", 8.0)
    assert set(plan["rationale"]) >= {"patch_size", "batch_size", "widths", "strides"}


def test_cpu_plan_is_cheaper_and_within_budget() -> None:
    plan = plan_training(_hippocampus_like(), device="cpu")
    assert plan["model"]["widths"][0] == 16 and max(plan["model"]["widths"]) <= 128
    assert plan["schedule"]["time_budget_s"] == 2400
    assert plan["training"]["device"] == "cpu"
    assert plan["data"]["batch_size"] >= 2
    _check_budget(plan, "cpu", 4.0)


def test_large_scans_shrink_the_patch_to_the_memory_budget() -> None:
    store = _FakeStore([(300, 400, 400)] * 20, (1.0, 1.0, 1.0))
    small = plan_training(store, device="cuda", memory_gb=3.0)
    big = plan_training(store, device="cuda", memory_gb=24.0)
    assert math.prod(small["data"]["patch_size"]) < math.prod(big["data"]["patch_size"])
    _check_budget(small, "cuda", 3.0)
    _check_budget(big, "cuda", 24.0)
    assert small["data"]["batch_size"] == 2  # nnU-Net shrinks the patch until batch 2 fits
    patch = small["data"]["patch_size"]
    assert list(fit_topology(patch, (1.0, 1.0, 1.0))[0]) == patch  # divisible by its poolings


def test_anisotropic_store_plans_in_plane_pooling_first() -> None:
    store = _FakeStore([(20, 320, 320)] * 30, (5.0, 0.8, 0.8))
    plan = plan_training(store, device="cuda")
    strides = plan["model"]["strides"]
    assert strides[0][0] == 1 and strides[1][0] == 1
    patch = plan["data"]["patch_size"]
    assert patch[0] <= 20 + 8 and patch[1] > 4 * patch[0]
    _check_budget(plan, "cuda", 8.0)


def test_batch_is_at_least_two_and_covers_at_most_five_percent() -> None:
    tiny = _FakeStore([(16, 16, 16)] * 3, (1.0, 1.0, 1.0))
    plan = plan_training(tiny, device="cuda")
    assert plan["data"]["batch_size"] == 2  # 5% of 3 small cases is less than one patch
    many = _FakeStore([(64, 64, 64)] * 400, (1.0, 1.0, 1.0))
    plan = plan_training(many, device="cuda", memory_gb=80.0)
    total = 400 * 64**3
    cap = math.floor(MAX_DATASET_FRACTION * total / math.prod(plan["data"]["patch_size"]))
    assert plan["data"]["batch_size"] == cap


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    doc = {"name": "t", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "a"}}
    (root / "dataset.json").write_text(json.dumps(doc))
    rng = np.random.default_rng(0)
    for i in range(2):
        image = rng.integers(-100, 100, (10, 20, 18)).astype(np.int16)
        label = np.zeros((10, 20, 18), dtype=np.uint8)
        label[3:6, 5:12, 4:10] = 1
        write(Volume(image, (2.0, 1.0, 1.0)), root / "imagesTr" / f"c{i}_0000.nii.gz")
        write(Volume(label, (2.0, 1.0, 1.0)), root / "labelsTr" / f"c{i}.nii.gz")
    convert(root, tmp_path / "s.zarr", workers=1, progress=False)
    return tmp_path / "s.zarr"


def test_plan_is_written_and_read_back(store_dir: Path) -> None:
    from fastseg.train._config import load_config

    assert Store.open(store_dir).training_plan is None
    plan = plan_training(store_dir, device="cpu", time_budget_s=600)
    write_plan(store_dir, plan)
    again = Store.open(store_dir)
    assert again.training_plan == json.loads(json.dumps(plan))
    assert again.cases == ["c0", "c1"]  # the rest of the store is untouched
    config = load_config(store=again).to_dict()
    assert config["data"]["patch_size"] == plan["data"]["patch_size"]
    assert config["model"]["widths"] == plan["model"]["widths"]
    assert config["schedule"]["time_budget_s"] == 600


def test_cli_plan(store_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(store_dir), "--dry-run"]) == 0
    assert "patch_size" in capsys.readouterr().out
    assert Store.open(store_dir).training_plan is None
    assert main(["plan", str(store_dir), "--memory-gb", "2", "--json"]) == 0
    printed = capsys.readouterr().out
    plan = Store.open(store_dir).training_plan
    assert (
        plan is not None
        and plan["data"]["patch_size"]
        == json.loads(printed[: printed.rindex("}") + 1])["data"]["patch_size"]
    )


def _two_class_store(shifts: np.ndarray, n_points: int = 30) -> _FakeStore:
    """Cases whose class 2 lies ``shifts[i]`` voxels (z, y, x) from class 1, with noise."""
    rng = np.random.default_rng(1)
    store = _FakeStore([(40, 50, 40)] * len(shifts), (1.0, 1.0, 1.0))
    for case, shift in zip(store._cases.values(), shifts, strict=True):
        one = rng.normal((20, 25, 20), 2.0, size=(n_points, 3))
        two = one + shift
        case._foreground = {1: one.round().astype(np.int64), 2: two.round().astype(np.int64)}
    return store


def test_mirror_axes_leave_out_axes_along_which_classes_keep_their_order() -> None:
    rng = np.random.default_rng(2)
    n = 40
    shifts = np.stack(
        [
            rng.normal(-7.0, 2.0, n),  # z: class 2 always before class 1 (|mean| / sd = 3.5)
            np.full(n, 18.0),  # y: always after
            rng.normal(0.0, 3.0, n),  # x: either side, like left/right symmetric structures
        ],
        axis=1,
    )
    plan = plan_training(_two_class_store(shifts), device="cpu")
    assert plan["data"]["mirror_axes"] == [2]
    assert plan["alternatives"]["2d"]["data"]["mirror_axes"] == [2]
    why = plan["rationale"]["mirror_axes"]
    assert "not z" in why and "not y" in why and "1 lies 18.0 voxels before 2" in why
    # a mostly-but-not-reliably ordered axis (80% of the cases) is still mirrored
    shifts[: n // 5, 1] = -18.0
    assert plan_training(_two_class_store(shifts), device="cpu")["data"]["mirror_axes"] == [1, 2]
    # too few cases cannot establish an order; one class has no pair; no foreground at all
    assert plan_training(_two_class_store(shifts[:5]))["data"]["mirror_axes"] == [0, 1, 2]
    single = _two_class_store(shifts)
    for case in single._cases.values():
        case._foreground = {1: case._foreground[1]}
    assert plan_training(single)["data"]["mirror_axes"] == [0, 1, 2]
    assert plan_training(_hippocampus_like(20))["data"]["mirror_axes"] == [0, 1, 2]


def test_bad_store_and_arguments(tmp_path: Path, store_dir: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FastsegError, match=r"zarr\.json missing"):
        plan_training(tmp_path / "empty")
    with pytest.raises(InputError, match="no complete cases"):
        plan_training(_FakeStore([], (1.0, 1.0, 1.0)))
    with pytest.raises(InputError, match="device"):
        plan_training(store_dir, device="tpu")
    with pytest.raises(InputError, match="memory_gb"):
        plan_training(store_dir, memory_gb=-1)
    assert main(["plan", str(tmp_path / "empty")]) == 2
