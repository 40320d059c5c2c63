"""The fused spatial pass against its definition: coordinates written out in float64, sampled with
scipy.ndimage.map_coordinates (order 1 image, nearest label) or the NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
from augment_reference import (
    coordinates,
    sample_cubic,
    sample_label_linear,
    sample_linear,
    sample_nearest,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseg.augment import Pipeline, SampleParams, SpatialParams

sides = st.integers(1, 11)
shapes = st.tuples(sides, sides, sides)
spacings = st.tuples(*[st.floats(0.5, 3.0)] * 3)


@st.composite
def spatial_params(draw: st.DrawFn) -> SpatialParams:
    elastic = None
    if draw(st.booleans()):
        grid = draw(st.tuples(*[st.integers(1, 5)] * 3))
        seed = draw(st.integers(0, 2**32 - 1))
        elastic = np.random.default_rng(seed).uniform(-3.0, 3.0, (*grid, 3))
    iso = draw(st.booleans())
    scale = draw(st.tuples(*[st.floats(0.6, 1.6)] * 3))
    return SpatialParams(
        rotation=draw(st.tuples(*[st.floats(-np.pi, np.pi)] * 3)),
        scale=(scale[0],) * 3 if iso else scale,
        translation=draw(st.tuples(*[st.floats(-4.0, 4.0)] * 3)),
        flip=draw(st.tuples(*[st.booleans()] * 3)),
        elastic=elastic,
    )


def run(
    sp: SpatialParams,
    image: np.ndarray,
    label: np.ndarray | None,
    out_shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    **options: object,
) -> tuple[np.ndarray, np.ndarray | None]:
    pipeline = Pipeline([], patch_size=out_shape, **options)  # type: ignore[arg-type]
    return pipeline.apply(image, label, SampleParams(0, 0, sp, ()), spacing=spacing)


def near_half(coords: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    """Voxels whose position is within tol of a rounding boundary on some axis."""
    frac = coords - np.floor(coords)
    return np.any(np.abs(frac - 0.5) < tol, axis=0)


@settings(max_examples=40)
@given(
    sp=spatial_params(),
    src=shapes,
    out=shapes,
    spacing=spacings,
    border=st.sampled_from(["constant", "edge"]),
    cval=st.floats(-2.0, 2.0),
    data=st.data(),
)
def test_matches_map_coordinates(
    sp: SpatialParams,
    src: tuple[int, int, int],
    out: tuple[int, int, int],
    spacing: tuple[float, float, float],
    border: str,
    cval: float,
    data: st.DataObject,
) -> None:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    image = rng.uniform(-1.0, 1.0, (2, *src)).astype(np.float32)
    label = rng.integers(0, 4, src).astype(np.int16)
    got, got_label = run(
        sp, image, label, out, spacing, border=border, border_value=cval, label_border_value=7
    )
    coords = coordinates(sp, src, out, spacing)
    for c in range(2):
        np.testing.assert_allclose(got[c], sample_linear(image[c], coords, border, cval), atol=5e-4)
    want = sample_nearest(label, coords, border, 7)
    assert got_label is not None and got_label.dtype == np.int16
    mismatch = got_label != want
    assert not np.any(mismatch & ~near_half(coords))


@settings(max_examples=15)
@given(
    sp=spatial_params(),
    src=shapes,
    out=shapes,
    spacing=spacings,
    border=st.sampled_from(["constant", "edge"]),
)
def test_cubic_matches_keys_reference(
    sp: SpatialParams,
    src: tuple[int, int, int],
    out: tuple[int, int, int],
    spacing: tuple[float, float, float],
    border: str,
) -> None:
    image = np.random.default_rng(1).uniform(-1.0, 1.0, (1, *src)).astype(np.float32)
    got, _ = run(
        sp, image, None, out, spacing, border=border, border_value=0.5, image_interpolation="cubic"
    )
    want = sample_cubic(image[0], coordinates(sp, src, out, spacing), border, 0.5)
    np.testing.assert_allclose(got[0], want, atol=2e-3)


@settings(max_examples=15)
@given(
    sp=spatial_params(),
    src=shapes,
    out=shapes,
    spacing=spacings,
    border=st.sampled_from(["constant", "edge"]),
)
def test_linear_labels_match_one_hot_argmax(
    sp: SpatialParams,
    src: tuple[int, int, int],
    out: tuple[int, int, int],
    spacing: tuple[float, float, float],
    border: str,
) -> None:
    label = np.random.default_rng(2).integers(0, 3, src).astype(np.uint8)
    image = np.zeros((1, *src), np.float32)
    _, got = run(sp, image, label, out, spacing, border=border, label_interpolation="linear")
    coords = coordinates(sp, src, out, spacing)
    want = sample_label_linear(label, coords, border, 0)
    # a mismatch may only come from a near tie between two labels' interpolated weights
    assert got is not None
    mismatch = got != want
    if mismatch.any():
        for v in np.unique(label):
            p = np.asarray(
                sample_linear((label == v).astype(np.float64), coords, border, float(v == 0))
            )
            assert np.all(np.abs(p[mismatch] - 0.5) < 0.5)
        assert mismatch.mean() < 0.01


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16, np.bool_]
)
def test_identity_returns_input_exactly(dtype: type) -> None:
    rng = np.random.default_rng(3)
    image = rng.normal(0, 100, (2, 7, 6, 5)).astype(np.float32)
    label = rng.integers(0, 2 if dtype is np.bool_ else 5, (7, 6, 5)).astype(dtype)
    for options in (
        {},
        {"border": "edge"},
        {"label_interpolation": "linear"},
        {"image_interpolation": "cubic"},
    ):
        got, got_label = run(SpatialParams(), image, label, (7, 6, 5), (2.5, 0.7, 1.0), **options)
        assert np.array_equal(got, image)
        assert got_label is not None and got_label.dtype == label.dtype
        assert np.array_equal(got_label, label)


def test_identity_patch_is_the_centred_crop() -> None:
    image = np.arange(2 * 9 * 8 * 7, dtype=np.float32).reshape(2, 9, 8, 7)
    label = (np.arange(9 * 8 * 7) % 5).reshape(9, 8, 7).astype(np.uint8)
    got, got_label = run(SpatialParams(), image, label, (4, 8, 3), (1.0, 1.0, 1.0))
    assert np.array_equal(got, image[:, 2:6, :, 2:5])
    assert np.array_equal(got_label, label[2:6, :, 2:5])


def test_flip_is_numpy_flip_and_twice_is_identity() -> None:
    rng = np.random.default_rng(4)
    image = rng.normal(size=(1, 6, 7, 8)).astype(np.float32)
    label = rng.integers(0, 3, (6, 7, 8)).astype(np.int64)
    for flips in [(True, False, False), (False, True, True), (True, True, True)]:
        sp = SpatialParams(flip=flips)
        once, once_label = run(sp, image, label, (6, 7, 8), (3.0, 1.0, 0.5))
        axes = tuple(a for a in range(3) if flips[a])
        assert np.array_equal(once, np.flip(image, tuple(a + 1 for a in axes)))
        assert np.array_equal(once_label, np.flip(label, axes))
        twice, twice_label = run(sp, once, once_label, (6, 7, 8), (3.0, 1.0, 0.5))
        assert np.array_equal(twice, image)
        assert np.array_equal(twice_label, label)


def test_rotation_happens_in_millimetres() -> None:
    """90 degrees about z on a grid with y spacing twice x spacing: a y-offset of 2 voxels (4 mm)
    lands on an x-offset of 4 voxels (4 mm)."""
    image = np.zeros((1, 1, 9, 17), np.float32)
    image[0, 0, 4 + 2, 8] = 1.0  # 2 voxels (4 mm) from the centre along y
    sp = SpatialParams(rotation=(np.pi / 2, 0.0, 0.0))
    got, _ = run(sp, image, None, (1, 9, 17), (1.0, 2.0, 1.0))
    peak = np.unravel_index(np.argmax(got[0]), got[0].shape)
    assert peak == (0, 4, 8 - 4) or peak == (0, 4, 8 + 4)
    assert got[0][peak] == pytest.approx(1.0, abs=1e-5)


@settings(max_examples=20)
@given(sp=spatial_params(), src=shapes, out=shapes, mode=st.sampled_from(["nearest", "linear"]))
def test_labels_never_gain_a_class(
    sp: SpatialParams, src: tuple[int, int, int], out: tuple[int, int, int], mode: str
) -> None:
    label = np.random.default_rng(5).choice(np.array([0, 3, 9], np.int32), size=src)
    _, got = run(
        sp, np.zeros((1, *src), np.float32), label, out, (1.0, 1.5, 0.8), label_interpolation=mode
    )
    assert set(np.unique(got)) <= {0, 3, 9}


def test_batch_equals_single_samples() -> None:
    rng = np.random.default_rng(6)
    image = rng.normal(size=(3, 2, 10, 9, 8)).astype(np.float32)
    label = rng.integers(0, 4, (3, 10, 9, 8)).astype(np.uint8)
    pipeline = Pipeline(
        [
            {"name": "affine", "p_rotation": 1.0, "p_scale": 1.0, "translation": (-2, 2)},
            {"name": "elastic", "p": 0.7, "grid": (3, 4, 5)},
            {"name": "flip"},
            {"name": "noise", "p": 1.0},
            {"name": "gamma", "p": 0.8},
        ],
        patch_size=(8, 7, 9),
    )
    params = pipeline.draw(11, image.shape)
    out, out_label = pipeline.apply(image, label, params, spacing=(2.0, 1.0, 1.0))
    assert out.shape == (3, 2, 8, 7, 9) and out_label.shape == (3, 8, 7, 9)
    for k in range(3):
        one, one_label = pipeline.apply(image[k], label[k], params[k], spacing=(2.0, 1.0, 1.0))
        assert np.array_equal(one, out[k])
        assert np.array_equal(one_label, out_label[k])


def test_empty_batch_and_empty_patch() -> None:
    pipeline = Pipeline([{"name": "affine"}, {"name": "noise", "p": 1.0}])
    out, out_label = pipeline(
        np.zeros((0, 1, 4, 4, 4), np.float32), np.zeros((0, 4, 4, 4), np.uint8), seed=0
    )
    assert out.shape == (0, 1, 4, 4, 4) and out_label.shape == (0, 4, 4, 4)
    out, _ = Pipeline([], patch_size=(3, 3, 3))(np.zeros((0, 5, 5, 5), np.float32), seed=0)
    assert out.shape == (0, 3, 3, 3)
