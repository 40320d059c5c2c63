"""The per-voxel functions the CUDA kernels run (augment_map.h's map_voxel with the 64-tap
B-spline, augment_intensity.h's direct bias polynomial), evaluated on the CPU against the float64
references, so the GPU's math is checked on machines without a GPU."""

from __future__ import annotations

import numpy as np
from augment_reference import bias_field, coordinates
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseg import _native
from fastseg.augment import SpatialParams, compile_maps

shapes = st.tuples(*[st.integers(1, 9)] * 3)


@settings(max_examples=40)
@given(
    src=shapes,
    out=shapes,
    spacing=st.tuples(*[st.floats(0.5, 3.0)] * 3),
    angles=st.tuples(*[st.floats(-np.pi, np.pi)] * 3),
    scale=st.tuples(*[st.floats(0.6, 1.6)] * 3),
    flip=st.tuples(*[st.booleans()] * 3),
    grid=st.none() | st.tuples(*[st.integers(1, 6)] * 3),
)
def test_map_voxel_matches_reference_coordinates(
    src: tuple[int, int, int],
    out: tuple[int, int, int],
    spacing: tuple[float, float, float],
    angles: tuple[float, float, float],
    scale: tuple[float, float, float],
    flip: tuple[bool, bool, bool],
    grid: tuple[int, int, int] | None,
) -> None:
    elastic = None if grid is None else np.random.default_rng(0).uniform(-4, 4, (*grid, 3))
    sp = SpatialParams(
        rotation=angles, scale=scale, translation=(1.0, -2.0, 0.5), flip=flip, elastic=elastic
    )
    maps, coef, _ = compile_maps([sp], src, out, spacing)
    got = _native.augment_coordinates(out, maps, coef)[0]
    np.testing.assert_allclose(got, coordinates(sp, src, out, spacing), atol=2e-4)


@settings(max_examples=20)
@given(shape=shapes, order=st.integers(0, 7), seed=st.integers(0, 1000))
def test_direct_bias_polynomial(shape: tuple[int, int, int], order: int, seed: int) -> None:
    terms = (order + 1) * (order + 2) * (order + 3) // 6
    coef = np.random.default_rng(seed).uniform(-0.5, 0.5, terms).astype(np.float32)
    got = _native.augment_bias_log(shape, coef, order)
    want = np.log(bias_field(np.ones(shape), coef, order))
    np.testing.assert_allclose(got, want, atol=2e-5)
