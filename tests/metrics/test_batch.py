"""evaluate_batch(): the same rows as evaluate() per pair, case names, options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastseg.errors import GeometryMismatchError, InputError
from fastseg.metrics import COLUMNS, evaluate, evaluate_batch


def make_pairs(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        shape = tuple(int(s) for s in rng.integers(3, 14, size=3))
        pred = rng.integers(0, 4, size=shape).astype(np.uint8)
        ref = np.where(rng.random(shape) < 0.75, pred, rng.integers(0, 4, size=shape)).astype(
            np.uint8
        )
        pairs.append((pred, ref))
    return pairs


def test_rows_equal_evaluate_per_pair() -> None:
    pairs = make_pairs(13)
    rows = evaluate_batch(pairs, spacing=(2.0, 0.5, 0.7), hd95="pooled", chunk=4)
    expected = [
        {"case": str(i), "label": label, **row}
        for i, (p, r) in enumerate(pairs)
        for label, row in evaluate(p, r, spacing=(2.0, 0.5, 0.7), hd95="pooled").items()
    ]
    assert rows == expected
    assert all(tuple(row) == COLUMNS for row in rows)


def test_mapping_names_cases_and_labels_are_reported_when_absent() -> None:
    pairs = dict(zip(["b", "a"], make_pairs(2, seed=1), strict=True))
    rows = evaluate_batch(pairs, labels=[1, 9], workers=1)
    assert [(r["case"], r["label"]) for r in rows] == [("b", 1), ("b", 9), ("a", 1), ("a", 9)]
    assert rows[1]["empty"] == "both"


def test_workers_do_not_change_results_and_are_restored() -> None:
    from fastseg import _native

    before = _native.build_info()["openmp_threads"]
    pairs = make_pairs(6, seed=2)
    assert evaluate_batch(pairs, workers=1) == evaluate_batch(pairs, workers=2)
    assert _native.build_info()["openmp_threads"] == before
    with pytest.raises(InputError, match="workers: expected a positive integer"):
        evaluate_batch(pairs, workers=0)


def test_bad_pairs_name_the_case() -> None:
    good = make_pairs(1)[0]
    with pytest.raises(GeometryMismatchError, match=r"^1: ref: expected shape"):
        evaluate_batch([good, (good[0], good[1][:, :, :2])])
    with pytest.raises(InputError, match=r"pairs\[0\]: expected a \(pred, ref\) pair"):
        evaluate_batch([good[0]])  # type: ignore[list-item]
    with pytest.raises(InputError, match=r"x: pred: expected an integer-valued"):
        evaluate_batch({"x": (good[0] * 0.5, good[1])})


def test_paths_are_read_with_fastseg_io(tmp_path: Path) -> None:
    from fastseg.io import Volume, read, write

    pred, ref = make_pairs(1, seed=3)[0]
    sp = (2.5, 0.8, 0.7)
    write(Volume(pred, spacing=sp), tmp_path / "case7.nii.gz")
    write(Volume(ref, spacing=sp), tmp_path / "case7_ref.nii.gz")
    rows = evaluate_batch([(tmp_path / "case7.nii.gz", tmp_path / "case7_ref.nii.gz")])
    vp, vr = read(tmp_path / "case7.nii.gz"), read(tmp_path / "case7_ref.nii.gz")
    expected = [{"case": "case7", "label": k, **v} for k, v in evaluate(vp, vr).items()]
    assert rows == expected
