"""Threshold and clean-up selection on validation cases; plans applied and stored as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastseg.errors import InputError
from fastseg.postprocess import (
    apply_postprocessing,
    fill_holes,
    keep_largest_component,
    labels_from_probabilities,
    load_plan,
    remove_small_components,
    save_plan,
    select_postprocessing,
)


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=0))
    return (e / e.sum(axis=0)).astype(np.float32)


@given(
    logits=hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 5), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
        elements=st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]),
    )
)
def test_no_thresholds_is_argmax_including_ties(logits: np.ndarray) -> None:
    probs = softmax(logits)
    np.testing.assert_array_equal(labels_from_probabilities(probs), probs.argmax(axis=0))


def test_threshold_decides_between_the_best_foreground_class_and_background() -> None:
    probs = np.zeros((3, 1, 1, 4), np.float32)
    probs[:, 0, 0, 0] = [0.5, 0.3, 0.2]  # argmax 0; class 1 best foreground
    probs[:, 0, 0, 1] = [0.2, 0.35, 0.45]  # argmax 2
    probs[:, 0, 0, 2] = [0.1, 0.6, 0.3]  # argmax 1
    probs[:, 0, 0, 3] = [0.34, 0.33, 0.33]  # argmax 0, class 1 first of the tie
    got = labels_from_probabilities(probs, {1: 0.25, 2: 0.5})
    np.testing.assert_array_equal(got[0, 0], [1, 0, 1, 1])
    np.testing.assert_array_equal(labels_from_probabilities(probs, {2: None})[0, 0], [0, 2, 1, 0])


def blobs(seed: int, islands: bool, hole: bool) -> tuple[np.ndarray, np.ndarray]:
    """Reference: a ball of class 1 and a box of class 2; prediction: the same, eroded at one
    edge, with spurious islands and an interior hole when asked."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:20, :24, :24]
    ref = np.zeros((20, 24, 24), np.uint8)
    ref[(zz - 10) ** 2 + (yy - 8) ** 2 + (xx - 8) ** 2 <= 25 + seed] = 1
    ref[4:16, 14:21, 13:21] = 2
    pred = ref.copy()
    pred[10, 3, 8] = 0
    if islands:
        for _ in range(3):
            z, y, x = rng.integers(0, 20), rng.integers(0, 5), rng.integers(18, 24)
            pred[z, y, x] = 1
    if hole:
        pred[9:11, 16:19, 15:18] = 0
    return pred, ref


def test_selection_keeps_the_largest_component_where_it_helps() -> None:
    cases = [blobs(i, islands=True, hole=False) for i in range(4)]
    plan = select_postprocessing([p for p, _ in cases], [r for _, r in cases], hole_modes=())
    one, two = plan["classes"]["1"], plan["classes"]["2"]
    assert one["keep_largest"] is True and one["score_after"] > one["score_before"]
    assert two["keep_largest"] is False and two["score_after"] == two["score_before"] == 1.0
    json.dumps(plan)


def test_selection_fills_holes_and_leaves_clean_classes_alone() -> None:
    cases = [blobs(i, islands=False, hole=True) for i in range(3)]
    plan = select_postprocessing(
        [p for p, _ in cases], [r for _, r in cases], keep_largest=False, min_volumes_mm3=[]
    )
    assert plan["classes"]["2"]["fill_holes"] in ("2d", "3d")
    assert plan["classes"]["1"]["fill_holes"] is None
    assert plan["classes"]["2"]["score_after"] == pytest.approx(1.0)


def test_selection_removes_small_islands_by_volume_in_mm3() -> None:
    cases = [blobs(i, islands=True, hole=False) for i in range(3)]
    spacing = (2.0, 0.5, 0.5)
    plan = select_postprocessing(
        [p for p, _ in cases],
        [r for _, r in cases],
        spacing,
        keep_largest=False,
        hole_modes=(),
        min_volumes_mm3=[0.4, 2.0, 5000.0],
    )
    # one voxel = 0.5 mm³: 0.4 keeps the islands, 5000 removes the ball, 2.0 is right.
    assert plan["classes"]["1"]["min_volume_mm3"] == 2.0
    assert plan["classes"]["2"]["min_volume_mm3"] == 0.0


def test_selection_chooses_a_threshold_for_probabilities() -> None:
    rng = np.random.default_rng(0)
    preds, refs = [], []
    for _ in range(3):
        ref = np.zeros((6, 10, 10), np.uint8)
        ref[1:5, 2:8, 2:8] = 1
        # Class 1 is under-confident inside the object (0.4 vs background 0.45): argmax misses
        # it; a threshold of at most 0.4 recovers it.
        probs = np.zeros((3, *ref.shape), np.float32)
        probs[0] = 0.9 + 0.05 * rng.random(ref.shape)
        probs[1] = 0.05 * rng.random(ref.shape)
        probs[0][ref == 1] = 0.45
        probs[1][ref == 1] = 0.40
        probs[2] = 1 - probs[0] - probs[1]
        preds.append(probs)
        refs.append(ref)
    plan = select_postprocessing(preds, refs, hole_modes=(), keep_largest=False)
    entry = plan["classes"]["1"]
    assert entry["threshold"] is not None and entry["threshold"] <= 0.4
    assert entry["score_before"] == 0.0 and entry["score_after"] == 1.0
    np.testing.assert_array_equal(apply_postprocessing(preds[0], plan), refs[0])


def test_distance_metrics_are_minimised_through_evaluate() -> None:
    cases = [blobs(i, islands=True, hole=False) for i in range(2)]
    plan = select_postprocessing(
        [p for p, _ in cases], [r for _, r in cases], metric="hd", hole_modes=()
    )
    one = plan["classes"]["1"]
    assert plan["higher_is_better"] is False
    assert one["keep_largest"] is True and one["score_after"] < one["score_before"]


def test_apply_reproduces_the_selection_and_round_trips_through_json(tmp_path: Path) -> None:
    cases = [blobs(i, islands=True, hole=True) for i in range(3)]
    preds, refs = [p for p, _ in cases], [r for _, r in cases]
    plan = select_postprocessing(preds, refs, (1.0, 0.8, 0.8))
    assert plan["classes"]["1"]["keep_largest"] and plan["classes"]["2"]["fill_holes"]
    path = save_plan(plan, tmp_path / "plan.json")
    loaded = load_plan(path)
    assert loaded == json.loads(json.dumps(plan))
    for pred, ref in cases:
        out = apply_postprocessing(pred, loaded, (1.0, 0.8, 0.8))
        by_hand = pred
        for c, entry in sorted(plan["classes"].items()):
            if entry["fill_holes"]:
                by_hand = fill_holes(by_hand, [int(c)], entry["fill_holes"])
        chosen = [int(c) for c, e in plan["classes"].items() if e["keep_largest"]]
        by_hand = keep_largest_component(by_hand, chosen)
        limits = {int(c): e["min_volume_mm3"] for c, e in plan["classes"].items()}
        by_hand = remove_small_components(by_hand, limits, (1.0, 0.8, 0.8))
        np.testing.assert_array_equal(out, by_hand)
        assert (out == ref).mean() >= (pred == ref).mean()


def test_bad_plans_and_arguments(tmp_path: Path) -> None:
    pred, ref = blobs(0, islands=False, hole=False)
    with pytest.raises(InputError, match="metric"):
        select_postprocessing([pred], [ref], metric="accuracy")
    with pytest.raises(InputError, match="same non-zero number"):
        select_postprocessing([pred], [])
    with pytest.raises(InputError, match="shapes differ"):
        select_postprocessing([pred], [ref[:-1]])
    with pytest.raises(InputError, match="spacing"):
        select_postprocessing([pred], [ref], spacing=(1.0, 1.0))
    with pytest.raises(InputError, match="format"):
        apply_postprocessing(pred, {"classes": {}})
    plan = select_postprocessing([pred], [ref])
    bad = {**plan, "classes": {"1": {"fill_holes": "4d"}}}
    with pytest.raises(InputError, match="fill_holes"):
        apply_postprocessing(pred, bad)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match=r"broken\.json"):
        load_plan(tmp_path / "broken.json")
    with pytest.raises(InputError, match="foreground class"):
        labels_from_probabilities(np.full((2, 1, 1, 1), 0.5, np.float32), {2: 0.5})


@given(
    pair=hnp.arrays(
        np.uint8,
        st.tuples(st.just(2), st.integers(1, 5), st.integers(1, 5), st.integers(1, 5)),
        elements=st.integers(0, 2),
    ),
    metric=st.sampled_from(["dice", "jaccard", "vs"]),
)
def test_overlap_scores_equal_fastseg_metrics_evaluate(pair: np.ndarray, metric: str) -> None:
    from fastseg.metrics import evaluate

    pred, ref = pair
    plan = select_postprocessing(
        [pred], [ref], metric=metric, classes=[1, 2], hole_modes=(), keep_largest=False
    )
    rows = evaluate(pred, ref, labels=[1, 2], nsd_tolerance=None)
    for c in (1, 2):
        assert plan["classes"][str(c)]["score_before"] == pytest.approx(rows[c][metric], abs=1e-12)
