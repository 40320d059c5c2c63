"""The converter's preprocessing steps (fastseg.preprocess._resample, _crop, _bias_field) against
slow references: SciPy's zoom, per-class one-hot argmax, np.argwhere."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from fastseg.errors import InputError
from fastseg.preprocess._bias_field import n4_correct
from fastseg.preprocess._crop import crop, full_box, nonzero_box, uncrop
from fastseg.preprocess._resample import (
    resample_image,
    resample_label,
    resampled_grid,
    resampled_shape,
    separate_axis,
)

sizes = st.integers(1, 9)
shapes3 = st.tuples(sizes, sizes, sizes)


def zoom_ref(a: np.ndarray, shape: tuple[int, ...], order: int) -> np.ndarray:
    factors = [t / s for t, s in zip(shape, a.shape, strict=True)]
    return ndimage.zoom(a.astype(np.float64), factors, order=order, mode="nearest", grid_mode=True)


@given(shapes3, shapes3, st.sampled_from([0, 1, 3]), st.integers(0, 2**32 - 1))
def test_resample_image_matches_scipy_zoom(
    shape: tuple[int, int, int], new: tuple[int, int, int], order: int, seed: int
) -> None:
    a = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    out = resample_image(a, new, order=order)
    assert out.shape == new and out.dtype == np.float32
    np.testing.assert_allclose(out, zoom_ref(a, new, order), atol=1e-4)


@given(shapes3, shapes3, st.integers(0, 2), st.integers(0, 2**32 - 1))
def test_resample_image_separate_axis_is_per_slice_then_nearest(
    shape: tuple[int, int, int], new: tuple[int, int, int], axis: int, seed: int
) -> None:
    a = np.random.default_rng(seed).normal(size=(2, *shape)).astype(np.float32)
    out = resample_image(a, new, order=3, separate=axis, order_separate=0)
    assert out.shape == (2, *new)
    for c in range(2):
        moved = np.moveaxis(a[c], axis, 0)
        plane = tuple(n for k, n in enumerate(new) if k != axis)
        slices = np.stack([zoom_ref(s, plane, 3) for s in moved])
        n_in, n_out = shape[axis], new[axis]
        nearest = np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(int), n_in - 1)
        ref = np.moveaxis(slices[nearest], 0, axis)
        np.testing.assert_allclose(out[c], ref, atol=1e-4)


def onehot_argmax_ref(label: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    classes = np.arange(int(label.max()) + 1)
    members = np.stack([zoom_ref((label == c).astype(np.float64), shape, 1) for c in classes])
    order = np.sort(members, axis=0)
    margin = order[-1] - order[-2] if len(classes) > 1 else np.ones(shape)
    return members.argmax(axis=0), margin


@given(shapes3, shapes3, st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_resample_label_is_onehot_linear_argmax(
    shape: tuple[int, int, int], new: tuple[int, int, int], n_classes: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, n_classes + 1, size=shape).astype(np.uint8)
    out = resample_label(label, new)
    assert out.shape == new and out.dtype == np.uint8
    assert set(np.unique(out)) <= set(np.unique(label))
    ref, margin = onehot_argmax_ref(label, new)
    clear = margin > 1e-4
    np.testing.assert_array_equal(out[clear], ref[clear])


def test_resample_label_separate_axis_uses_nearest_across_it() -> None:
    label = np.zeros((4, 10, 10), dtype=np.uint16)
    label[1, 2:8, 2:8] = 300
    label[2, 4:6, 4:6] = 7
    out = resample_label(label, (8, 20, 20), separate=0)
    assert set(np.unique(out)) == {0, 7, 300}
    np.testing.assert_array_equal(out[2], out[3])
    assert not out[0].any() and not out[7].any()


def test_resample_label_empty_and_identity() -> None:
    empty = np.zeros((3, 4, 5), dtype=np.uint8)
    assert not resample_label(empty, (6, 2, 5)).any()
    lab = np.arange(60, dtype=np.int16).reshape(3, 4, 5) % 3
    np.testing.assert_array_equal(resample_label(lab, (3, 4, 5)), lab)
    with pytest.raises(InputError, match="label"):
        resample_label(-lab - 1, (6, 4, 5))


def test_separate_axis_follows_nnunet_rule() -> None:
    assert separate_axis((5.0, 0.8, 0.8), (1.0, 1.0, 1.0)) == 0
    assert separate_axis((1.0, 1.0, 1.0), (1.0, 4.0, 1.0)) == 1
    assert separate_axis((2.0, 0.8, 0.8), (2.0, 0.8, 0.8)) is None
    assert separate_axis((5.0, 5.0, 1.0), (1.0, 1.0, 1.0)) is None


def test_resampled_shape_and_grid_keep_the_extent() -> None:
    assert resampled_shape((10, 20, 30), (2.5, 1.0, 0.5), (1.0, 1.0, 1.0)) == (25, 20, 15)
    assert resampled_shape((1, 1, 1), (0.1, 0.1, 0.1), (5.0, 5.0, 5.0)) == (1, 1, 1)
    direction = np.diag([1.0, -1.0, -1.0])
    spacing, origin = resampled_grid(
        (10, 20, 30), (2.5, 1.0, 0.5), (1.0, 2.0, 3.0), direction, (25, 20, 15)
    )
    assert spacing == pytest.approx((1.0, 1.0, 1.0))
    # the outer edge of voxel 0 stays where it was: origin - half a voxel, before and after
    old_edge = np.array([1.0, 2.0, 3.0]) - direction @ (0.5 * np.array([2.5, 1.0, 0.5]))
    new_edge = np.array(origin) - direction @ (0.5 * np.array(spacing))
    np.testing.assert_allclose(new_edge, old_edge)


@given(st.tuples(sizes, sizes, sizes), st.integers(0, 2**32 - 1), st.floats(0.0, 0.3))
def test_nonzero_box_matches_argwhere(
    shape: tuple[int, int, int], seed: int, density: float
) -> None:
    rng = np.random.default_rng(seed)
    image = (rng.random((2, *shape)) < density) * rng.normal(size=(2, *shape))
    label = (rng.random(shape) < density / 2).astype(np.uint8)
    box = nonzero_box(image, label)
    hits = np.argwhere(np.any(image != 0, axis=0) | (label != 0))
    if hits.size == 0:
        assert box == full_box(shape)
    else:
        assert box == tuple(
            (int(lo), int(hi) + 1) for lo, hi in zip(hits.min(0), hits.max(0), strict=True)
        )
    cropped = crop(image, box)
    np.testing.assert_array_equal(uncrop(cropped, box, shape), image)


def test_crop_rejects_bad_boxes() -> None:
    with pytest.raises(InputError, match="box"):
        crop(np.zeros((3, 3, 3)), ((0, 4), (0, 3), (0, 3)))
    with pytest.raises(InputError, match="nonzero_box"):
        nonzero_box(np.zeros((3, 3, 3)), np.zeros((3, 3, 2)))


def test_n4_removes_a_smooth_multiplicative_field() -> None:
    rng = np.random.default_rng(0)
    shape = (24, 40, 40)
    z, y, x = np.indices(shape, dtype=np.float32)
    tissue = np.where(((y - 20) ** 2 + (x - 20) ** 2) < 15**2, 100.0, 0.0).astype(np.float32)
    tissue += (tissue > 0) * rng.normal(0, 2.0, shape).astype(np.float32)
    field = np.exp(0.4 * (x - 20) / 20 + 0.2 * (z - 12) / 12).astype(np.float32)
    biased = tissue * field
    inside = tissue > 0
    corrected = n4_correct(biased, (2.0, 1.0, 1.0), shrink_factor=2, iterations=(30, 30, 30))
    assert corrected.shape == shape and corrected.dtype == np.float32

    def cv(a: np.ndarray) -> float:
        return float(a[inside].std() / a[inside].mean())

    assert cv(corrected) < 0.5 * cv(biased)


@pytest.mark.parametrize("slices", [1, 2, 3])
def test_n4_on_few_slices(slices: int) -> None:
    """A scan of 1-3 slices (the default shrink factor 4 would leave no voxel along z): the
    shrink is capped per axis, a single slice is corrected in 2D."""
    rng = np.random.default_rng(slices)
    shape = (slices, 48, 48)
    _, y, x = np.indices(shape, dtype=np.float32)
    tissue = np.where(((y - 24) ** 2 + (x - 24) ** 2) < 20**2, 100.0, 0.0).astype(np.float32)
    tissue += (tissue > 0) * rng.normal(0, 2.0, shape).astype(np.float32)
    biased = tissue * np.exp(0.4 * (x - 24) / 24).astype(np.float32)
    inside = tissue > 0
    corrected = n4_correct(biased, (5.0, 0.8, 0.8), iterations=(30, 30, 30))
    assert corrected.shape == shape and corrected.dtype == np.float32
    assert np.isfinite(corrected).all()

    def cv(a: np.ndarray) -> float:
        return float(a[inside].std() / a[inside].mean())

    assert cv(corrected) < 0.5 * cv(biased)


def test_n4_rejects_a_line() -> None:
    with pytest.raises(InputError, match="at least 2 voxels along 2 axes"):
        n4_correct(np.ones((1, 1, 30), np.float32))


@given(
    st.tuples(st.floats(0.5, 2.5), st.floats(0.5, 2.5), st.floats(0.5, 2.5)),
    st.tuples(st.floats(-3, 3), st.floats(-3, 3), st.floats(-3, 3)),
    st.permutations([0, 1, 2]),
    st.integers(0, 2**32 - 1),
)
def test_resample_onto_matches_world_coordinate_reference(
    spacing: tuple[float, float, float],
    shift: tuple[float, float, float],
    perm: list[int],
    seed: int,
) -> None:
    from fastseg.io import Volume
    from fastseg.preprocess._register import resample_onto

    rng = np.random.default_rng(seed)
    moving = Volume(rng.normal(size=(6, 7, 5)).astype(np.float32), (1.0, 1.2, 0.9), (1.0, 2.0, 3.0),
                    np.diag([1.0, -1.0, 1.0]))  # fmt: skip
    direction = np.eye(3)[:, perm] * np.array([1.0, -1.0, -1.0])
    fixed = Volume(
        np.zeros((5, 6, 4), np.float32), spacing, np.add((1.0, 2.0, 3.0), shift), direction
    )
    out = resample_onto(moving, fixed)
    grid = np.indices(fixed.shape, dtype=np.float64).reshape(3, -1).T
    idx = moving.world_to_index(fixed.index_to_world(grid)).T
    ref = ndimage.map_coordinates(moving.array, idx, order=1, mode="constant", cval=0.0)
    inside = np.all((idx > 0.01) & (idx < np.array(moving.shape)[:, None] - 1.01), axis=0)
    np.testing.assert_allclose(out.array.ravel()[inside], ref[inside], atol=1e-4)
    assert out.same_geometry(fixed)
