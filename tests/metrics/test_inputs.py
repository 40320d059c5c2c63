"""What evaluate() accepts (dtypes, layouts, Volumes) and how it refuses bad input."""

from __future__ import annotations

import numpy as np
import pytest

from fastseg.errors import GeometryMismatchError, InputError
from fastseg.metrics import evaluate


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 3, size=(6, 7, 8)).astype(np.uint8)
    ref = np.where(rng.random(pred.shape) < 0.8, pred, 0).astype(np.uint8)
    return pred, ref


@pytest.mark.parametrize(
    "dtype", [bool, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64, np.float32, np.float64]
)  # fmt: skip
def test_every_dtype_gives_the_same_result(
    dtype: type, pair: tuple[np.ndarray, np.ndarray]
) -> None:
    pred, ref = pair
    if dtype is bool:
        pred, ref = pred == 1, ref == 1
    expected = evaluate(pred.astype(np.int64), ref.astype(np.int64), spacing=(2, 1, 0.5))
    assert evaluate(pred.astype(dtype), ref.astype(dtype), spacing=(2, 1, 0.5)) == expected


def test_mixed_and_big_endian_dtypes(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, ref = pair
    assert evaluate(pred.astype(">i2"), ref.astype(">u4")) == evaluate(pred, ref)
    assert evaluate(pred.astype(np.int8), ref.astype(np.uint16)) == evaluate(pred, ref)
    assert evaluate(pred.astype(np.uint64), ref.astype(np.int64)) == evaluate(pred, ref)


def test_non_contiguous_input(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, ref = pair
    big_pred = np.zeros((12, 7, 16), np.uint8)
    big_ref = np.zeros((12, 7, 16), np.uint8)
    big_pred[::2, :, ::2] = pred
    big_ref[::2, :, ::2] = ref
    assert evaluate(big_pred[::2, :, ::2], big_ref[::2, :, ::2]) == evaluate(pred, ref)
    # transposed views: the metrics follow the array axes of the view
    t = evaluate(pred.transpose(2, 1, 0), ref.transpose(2, 1, 0), spacing=(0.5, 1, 2))
    assert t == evaluate(
        np.ascontiguousarray(pred.transpose(2, 1, 0)),
        np.ascontiguousarray(ref.transpose(2, 1, 0)),
        spacing=(0.5, 1, 2),
    )
    same = evaluate(pred, ref, spacing=(2, 1, 0.5))
    assert t.keys() == same.keys()
    for label, row in t.items():
        assert row.pop("empty") == same[label].pop("empty")
        assert row == pytest.approx(same[label], rel=1e-12)


def test_non_integer_float_map_names_the_argument(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, ref = pair
    soft = pred.astype(np.float32) * 0.5
    with pytest.raises(InputError, match=r"pred: expected an integer-valued label map.*0\.5"):
        evaluate(soft, ref)
    with pytest.raises(InputError, match=r"ref: expected an integer-valued"):
        evaluate(pred, soft)
    nan = pred.astype(np.float64)
    nan[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="ref: expected a label map, got non-finite"):
        evaluate(pred, nan)


def test_bad_shapes_and_ranks(pair: tuple[np.ndarray, np.ndarray]) -> None:
    pred, ref = pair
    with pytest.raises(
        GeometryMismatchError, match=r"ref: expected shape \(6, 7, 8\) \(as pred\), got \(6, 7, 7\)"
    ):
        evaluate(pred, ref[:, :, :7])
    with pytest.raises(
        InputError, match=r"pred: expected a 3-d \(z, y, x\) label map, got shape \(7, 8\)"
    ):
        evaluate(pred[0], ref[0])
    with pytest.raises(
        InputError, match="pred: expected an integer, bool or float label map, got dtype <U1"
    ):
        evaluate(np.full((2, 2, 2), "a"), ref[:2, :2, :2])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"spacing": (1, 0, 1)}, r"spacing: expected 3 finite numbers > 0"),
        ({"spacing": (1, 1)}, r"spacing: expected 3 finite numbers > 0"),
        ({"spacing": "abc"}, r"spacing: expected 3 numbers"),
        ({"labels": [0]}, r"labels: 0 is the background"),
        ({"labels": [1.5]}, r"labels: expected integers, got 1.5"),
        ({"labels": "1"}, r"labels: expected integers"),
        ({"hd95": "p95"}, r"hd95: expected 'max_directed' or 'pooled', got 'p95'"),
        ({"nsd_tolerance": -1}, r"nsd_tolerance: expected a finite number >= 0 mm, got -1"),
        ({"nsd_tolerance": float("inf")}, r"nsd_tolerance: expected a finite number"),
    ],
)
def test_bad_options(pair: tuple[np.ndarray, np.ndarray], kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        evaluate(*pair, **kwargs)


def test_volumes_give_spacing_and_must_share_a_grid(pair: tuple[np.ndarray, np.ndarray]) -> None:
    from fastseg.io import Volume

    pred, ref = pair
    sp = (2.5, 0.8, 0.7)
    expected = evaluate(pred, ref, spacing=sp)
    vp, vr = Volume(pred, spacing=sp), Volume(ref, spacing=sp)
    assert evaluate(vp, vr) == expected
    assert evaluate(vp, ref) == expected
    assert evaluate(pred, vr, spacing=sp) == expected
    with pytest.raises(GeometryMismatchError, match=r"pred and ref do not share a grid: spacing"):
        evaluate(vp, Volume(ref, spacing=(2.5, 0.8, 0.8)))
    with pytest.raises(GeometryMismatchError, match=r"origin"):
        evaluate(vp, Volume(ref, spacing=sp, origin=(0, 0, 5)))
    with pytest.raises(GeometryMismatchError, match=r"shape"):
        evaluate(vp, Volume(ref[:, :, :5], spacing=sp))
    with pytest.raises(
        InputError, match=r"spacing: \(1.0, 1.0, 1.0\) mm disagrees with pred.spacing"
    ):
        evaluate(vp, vr, spacing=(1, 1, 1))


def test_core_boundary_checks() -> None:
    from fastseg import _native

    a = np.zeros((2, 3, 4), np.uint8)
    core = _native.core
    with pytest.raises(TypeError, match="ref: expected dtype uint8 \\(as pred\\), got int16"):
        core.metrics(a, a.astype(np.int16), [1, 1, 1])
    with pytest.raises(TypeError, match="pred: expected an integer label dtype, got float32"):
        core.metrics(a.astype(np.float32), a.astype(np.float32), [1, 1, 1])
    with pytest.raises(ValueError, match="ref: expected a C-contiguous array"):
        core.metrics(a[:, :, :2].copy(), np.zeros((2, 3, 4), np.uint8)[:, :, ::2], [1, 1, 1])
    with pytest.raises(
        ValueError, match=r"ref: expected shape \(2, 3, 4\) \(as pred\), got \(2, 3, 3\)"
    ):
        core.metrics(a, a[:, :, :3].copy(), [1, 1, 1])
    with pytest.raises(ValueError, match="nsd_method: expected 0"):
        core.metrics(a, a, [1, 1, 1], None, "pooled", 1.0, 5)
    with pytest.raises(ValueError, match=r"refs/spacings: expected 1 entries"):
        core.metrics_batch([a], [], [[1, 1, 1]])
    with pytest.raises(ValueError, match=r"pred\[1\]: expected a 3-d array"):
        core.metrics_batch([a, a[0]], [a, a[0]], [[1, 1, 1], [1, 1, 1]])
