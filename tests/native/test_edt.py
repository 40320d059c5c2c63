"""The EDT, voxel-surface and corner-code kernels of _core against SciPy, and their checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from fastseg import _native

spacings = st.tuples(*[st.floats(0.2, 4.0, allow_nan=False) for _ in range(3)])
shapes = st.tuples(st.integers(1, 11), st.integers(1, 13), st.integers(1, 12))
seeds = st.integers(0, 2**32 - 1)


def scipy_squared_edt(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(~mask, sampling=spacing) ** 2


@given(shape=shapes, spacing=spacings, seed=seeds, density=st.floats(0.0, 0.6))
def test_squared_edt_matches_scipy(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], seed: int, density: float
) -> None:
    mask = np.random.default_rng(seed).random(shape) < density
    got = _native.squared_edt(mask, spacing)
    assert got.dtype == np.float64 and got.shape == shape
    np.testing.assert_allclose(got, scipy_squared_edt(mask, spacing), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "shape", [(1, 1, 1), (1, 1, 40), (40, 1, 1), (1, 37, 1), (3, 1, 29), (17, 19, 1)]
)
def test_squared_edt_degenerate_shapes(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(7)
    mask = rng.random(shape) < 0.1
    mask.flat[0] = True
    spacing = (2.5, 0.7, 1.3)
    np.testing.assert_allclose(
        _native.squared_edt(mask, spacing), scipy_squared_edt(mask, spacing), rtol=1e-12
    )


def test_squared_edt_empty_full_and_zero_size() -> None:
    assert np.isinf(_native.squared_edt(np.zeros((4, 5, 6), bool), (1, 1, 1))).all()
    assert (_native.squared_edt(np.ones((4, 5, 6), bool), (1, 2, 3)) == 0).all()
    assert _native.squared_edt(np.zeros((0, 5, 6), bool), (1, 1, 1)).shape == (0, 5, 6)


def test_squared_edt_single_feature_is_exact() -> None:
    mask = np.zeros((9, 8, 7), bool)
    mask[2, 5, 1] = True
    spacing = (2.5, 0.8, 0.6)
    z, y, x = np.indices(mask.shape)
    expected = ((z - 2) * 2.5) ** 2 + ((y - 5) * 0.8) ** 2 + ((x - 1) * 0.6) ** 2
    np.testing.assert_allclose(_native.squared_edt(mask, spacing), expected, rtol=1e-14)


@given(shape=shapes, spacing=spacings, seed=seeds)
def test_edt_restricted_to_a_box_holding_the_features_is_exact_inside_it(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], seed: int
) -> None:
    # The metrics compute EDTs only inside the bounding box of the masks; a feature set inside a
    # box gives the same distances inside the box whether the rest of the array exists or not.
    rng = np.random.default_rng(seed)
    big = tuple(s + int(rng.integers(0, 9)) for s in shape)
    offset = tuple(int(rng.integers(0, b - s + 1)) for b, s in zip(big, shape, strict=True))
    box = tuple(slice(o, o + s) for o, s in zip(offset, shape, strict=True))
    mask = np.zeros(big, bool)
    mask[box] = rng.random(shape) < 0.2
    mask[box][tuple(int(rng.integers(s)) for s in shape)] = True
    # Equal up to the last bit of a tie: two features at (almost) the same distance, e.g. 1 mm
    # along z or 5 x 0.2 mm along x, may be picked differently when the lines are longer.
    np.testing.assert_allclose(
        _native.squared_edt(mask[box], spacing),
        _native.squared_edt(mask, spacing)[box],
        rtol=1e-14,
        atol=0,
    )


@given(shape=shapes, seed=seeds, density=st.floats(0.0, 1.0))
def test_voxel_surface_is_6_neighbour_border_with_array_edge(
    shape: tuple[int, int, int], seed: int, density: float
) -> None:
    mask = np.random.default_rng(seed).random(shape) < density
    cross = ndimage.generate_binary_structure(3, 1)
    expected = mask & ~ndimage.binary_erosion(mask, structure=cross, border_value=0)
    np.testing.assert_array_equal(_native.voxel_surface(mask), expected)


def test_voxel_surface_of_a_full_array_is_its_edge() -> None:
    surf = _native.voxel_surface(np.ones((4, 5, 6), bool))
    interior = np.zeros((4, 5, 6), bool)
    interior[1:-1, 1:-1, 1:-1] = True
    np.testing.assert_array_equal(surf, ~interior)


@given(shape=shapes, seed=seeds, density=st.floats(0.0, 1.0))
def test_corner_codes_match_the_2x2x2_correlation(
    shape: tuple[int, int, int], seed: int, density: float
) -> None:
    # DeepMind's encoding: correlate the zero-padded mask with weights 128 >> (4a + 2b + c).
    mask = np.random.default_rng(seed).random(shape) < density
    padded = np.zeros(tuple(s + 1 for s in shape), np.uint8)
    padded[:-1, :-1, :-1] = mask
    kernel = np.array([[[128, 64], [32, 16]], [[8, 4], [2, 1]]])
    expected = ndimage.correlate(padded, kernel, mode="constant", cval=0)
    np.testing.assert_array_equal(_native.corner_codes(mask), expected)


def test_surfel_areas_hand_computed() -> None:
    sp = (2.5, 0.8, 0.6)
    areas = _native.surfel_areas(sp)
    assert areas[0] == 0 and areas[255] == 0
    # One inside corner voxel: one triangle with area vector (1, 1, 1) / 8 before scaling.
    one = math.sqrt((sp[1] * sp[2]) ** 2 + (sp[0] * sp[2]) ** 2 + (sp[0] * sp[1]) ** 2) / 8
    assert areas[1] == pytest.approx(one, rel=1e-15)
    # A flat face normal to z (the 4 voxels of one z-plane inside): one y-x voxel face.
    assert areas[15] == pytest.approx(sp[1] * sp[2], rel=1e-15)
    assert areas[0b11110000] == pytest.approx(sp[1] * sp[2], rel=1e-15)


def test_surfel_areas_match_deepmind_table() -> None:
    lookup_tables = pytest.importorskip("surface_distance.lookup_tables")
    for sp in [(1.0, 1.0, 1.0), (2.5, 0.8, 0.8), (0.3, 1.7, 2.9)]:
        np.testing.assert_array_equal(
            _native.surfel_areas(sp), lookup_tables.create_table_neighbour_code_to_surface_area(sp)
        )


def test_core_checks_name_argument() -> None:
    core = _native.core
    with pytest.raises(TypeError, match="mask: expected dtype uint8, got float32"):
        core.squared_edt(np.zeros((2, 2, 2), np.float32), [1, 1, 1])
    with pytest.raises(ValueError, match="mask: expected a 3-d array, got 2-d"):
        core.squared_edt(np.zeros((2, 2), np.uint8), [1, 1, 1])
    with pytest.raises(ValueError, match="mask: expected a C-contiguous array"):
        core.squared_edt(np.zeros((4, 4, 4), np.uint8)[:, ::2], [1, 1, 1])
    with pytest.raises(ValueError, match=r"spacing: expected finite values > 0 mm, got -1"):
        core.squared_edt(np.zeros((2, 2, 2), np.uint8), [1, -1, 1])
    with pytest.raises(ValueError, match=r"spacing: expected 3 values \(z, y, x\), got 2"):
        core.squared_edt(np.zeros((2, 2, 2), np.uint8), [1, 1])


def test_native_wrappers_reject_wrong_rank() -> None:
    from fastseg.errors import InputError

    with pytest.raises(InputError, match=r"mask: expected a 3-d \(z, y, x\) array"):
        _native.voxel_surface(np.zeros((3, 3), bool))
