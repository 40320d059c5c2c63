"""Label fusion: voting against NumPy, STAPLE against a NumPy EM and on noisy raters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastseg.errors import GeometryMismatchError, InputError
from fastseg.postprocess import fuse, staple_probabilities


def reference_vote(maps: list[np.ndarray], undecided: int) -> np.ndarray:
    stack = np.stack(maps).reshape(len(maps), -1)
    out = np.empty(stack.shape[1], np.int64)
    for i in range(stack.shape[1]):
        counts = np.bincount(stack[:, i])
        winners = np.flatnonzero(counts == counts.max())
        out[i] = winners[0] if winners.size == 1 else undecided
    return out.reshape(maps[0].shape)


def reference_staple(masks: list[np.ndarray], iterations: int = 1000) -> np.ndarray:
    """Warfield's binary STAPLE EM: W starts at the raters' mean, the prior is mean(W)."""
    d = np.stack([m.ravel().astype(np.float64) for m in masks])
    w = d.mean(axis=0)
    prior = w.mean()
    last = None
    for _ in range(iterations):
        p = (d * w).sum(axis=1) / w.sum()
        q = ((1 - d) * (1 - w)).sum(axis=1) / (1 - w).sum()
        a = np.prod(np.where(d == 1, p[:, None], 1 - p[:, None]), axis=0)
        b = np.prod(np.where(d == 1, 1 - q[:, None], q[:, None]), axis=0)
        w = prior * a / (prior * a + (1 - prior) * b)
        if (
            last is not None
            and np.all((p - last[0]) ** 2 <= 1e-14)
            and np.all((q - last[1]) ** 2 <= 1e-14)
        ):
            break
        last = (p, q)
    return w.reshape(masks[0].shape)


@given(
    maps=st.integers(2, 5).flatmap(
        lambda n: st.lists(
            hnp.arrays(np.uint8, (3, 4, 5), elements=st.integers(0, 3)), min_size=n, max_size=n
        )
    ),
    undecided=st.sampled_from([0, 9]),
)
def test_vote_matches_numpy(maps: list[np.ndarray], undecided: int) -> None:
    got = fuse(maps, "vote", undecided=undecided)
    np.testing.assert_array_equal(got, reference_vote(maps, undecided))


def noisy_raters(seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.mgrid[:24, :24, :24]
    truth = np.zeros((24, 24, 24), np.uint8)
    truth[(zz - 12) ** 2 + (yy - 12) ** 2 + (xx - 10) ** 2 < 49] = 1
    truth[(zz - 12) ** 2 + (yy - 12) ** 2 + (xx - 18) ** 2 < 9] = 2
    raters = []
    for flip in (0.05, 0.08, 0.1):
        noisy = truth.copy()
        wrong = rng.random(truth.shape) < flip
        noisy[wrong] = rng.integers(0, 3, size=int(wrong.sum()))
        raters.append(noisy)
    return truth, raters


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_staple_probabilities_match_a_numpy_em() -> None:
    _, raters = noisy_raters(1)
    for c in (1, 2):
        masks = [r == c for r in raters]
        np.testing.assert_allclose(
            staple_probabilities(masks), reference_staple(masks), rtol=1e-6, atol=1e-9
        )


@pytest.mark.parametrize("method", ["vote", "staple", "staple_multilabel"])
def test_fusion_of_three_noisy_raters_is_closer_to_the_truth_than_any_rater(method: str) -> None:
    truth, raters = noisy_raters()
    fused = fuse(raters, method)  # type: ignore[arg-type]
    assert fused.dtype == np.uint8 and fused.shape == truth.shape
    for c in (1, 2):
        best_rater = max(dice(r == c, truth == c) for r in raters)
        assert dice(fused == c, truth == c) > best_rater
    assert (fused != truth).mean() < min((r != truth).mean() for r in raters)


def test_staple_assigns_the_most_probable_label_above_threshold() -> None:
    _, raters = noisy_raters(2)
    probs = {c: staple_probabilities([r == c for r in raters]) for c in (1, 2)}
    expected = np.where(probs[2] > probs[1], 2, 1)
    expected[np.maximum(probs[1], probs[2]) < 0.5] = 0
    np.testing.assert_array_equal(fuse(raters, "staple"), expected)
    only_two = fuse(raters, "staple", labels=[2])
    assert set(np.unique(only_two)) <= {0, 2}
    assert (fuse(raters, "staple", threshold=1.0) <= fuse(raters, "staple")).all()


def test_volumes_keep_geometry_and_mismatches_are_refused(tmp_path: object) -> None:
    from fastseg.io import Volume, write

    _, raters = noisy_raters()
    vols = [Volume(r, spacing=(2.0, 1.0, 1.5), origin=(1.0, 2.0, 3.0)) for r in raters]
    fused = fuse(vols, "vote")
    assert isinstance(fused, Volume) and fused.spacing == (2.0, 1.0, 1.5)
    np.testing.assert_array_equal(fused.array, fuse(raters, "vote"))
    paths = []
    for i, v in enumerate(vols):
        paths.append(tmp_path / f"r{i}.nii.gz")  # type: ignore[operator]
        write(v, paths[-1])
    np.testing.assert_array_equal(fuse(paths, "vote").array, fused.array)
    shifted = Volume(raters[0], spacing=(2.0, 1.0, 1.5), origin=(9.0, 2.0, 3.0))
    with pytest.raises(GeometryMismatchError):
        fuse([vols[0], shifted], "vote")
    with pytest.raises(GeometryMismatchError):
        fuse([raters[0], raters[1][:-1]], "vote")


def test_bad_inputs() -> None:
    a = np.zeros((3, 3, 3), np.uint8)
    with pytest.raises(InputError, match="method"):
        fuse([a, a], "mean")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="at least two"):
        fuse([a], "vote")
    with pytest.raises(InputError, match="non-negative"):
        fuse([a, -np.ones_like(a, dtype=np.int8)], "vote")
    with pytest.raises(InputError, match="threshold"):
        fuse([a, a], "staple", threshold=1.5)
    with pytest.raises(InputError, match="integer labels"):
        fuse([a, a.astype(np.float32)], "vote")


def test_empty_arrays() -> None:
    a = np.zeros((0, 3, 3), np.uint8)
    assert fuse([a, a], "staple").shape == (0, 3, 3)
