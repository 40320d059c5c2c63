"""The vectorised row kernels of the CPU spatial pass (16 voxels at a time, with scalar tails) against
the definition: rows longer than 16 and of odd length, control grids small enough for the in-register
elastic evaluation and too large for it (x grid > 13), every label dtype through the nearest path
(one-byte labels are gathered in the vector kernel, reads near the end of the volume included)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from augment_reference import coordinates, sample_linear, sample_nearest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseg.augment import Pipeline, SampleParams, SpatialParams


def run(
    sp: SpatialParams,
    image: np.ndarray,
    label: np.ndarray | None,
    out_shape: tuple[int, int, int],
    **options: object,
) -> tuple[np.ndarray, np.ndarray | None]:
    pipeline = Pipeline([], patch_size=out_shape, **options)  # type: ignore[arg-type]
    return pipeline.apply(image, label, SampleParams(0, 0, sp, ()), spacing=(1.0, 1.2, 0.9))


def params(grid: tuple[int, int, int] | None, seed: int, amplitude: float = 3.0) -> SpatialParams:
    rng = np.random.default_rng(seed)
    elastic = None if grid is None else rng.uniform(-amplitude, amplitude, (*grid, 3))
    return SpatialParams(
        rotation=tuple(rng.uniform(-0.6, 0.6, 3)),
        scale=tuple(rng.uniform(0.8, 1.25, 3)),
        translation=tuple(rng.uniform(-3.0, 3.0, 3)),
        flip=(False, True, False),
        elastic=elastic,
    )


def near_half(coords: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    frac = coords - np.floor(coords)
    return np.any(np.abs(frac - 0.5) < tol, axis=0)


@pytest.mark.parametrize("grid", [None, (3, 4, 5), (2, 3, 13), (4, 2, 14), (3, 3, 30)])
@pytest.mark.parametrize("border", ["constant", "edge"])
@pytest.mark.parametrize("out_x", [16, 37, 64])
def test_long_rows_match_map_coordinates(
    grid: tuple[int, int, int] | None, border: str, out_x: int
) -> None:
    src, out = (9, 11, 45), (5, 6, out_x)
    rng = np.random.default_rng(out_x)
    image = rng.uniform(-1.0, 1.0, (2, *src)).astype(np.float32)
    label = rng.integers(0, 5, src).astype(np.uint8)
    sp = params(grid, seed=out_x + (0 if grid is None else sum(grid)))
    got, got_label = run(
        sp, image, label, out, border=border, border_value=0.25, label_border_value=9
    )
    coords = coordinates(sp, src, out, (1.0, 1.2, 0.9))
    for c in range(2):
        np.testing.assert_allclose(got[c], sample_linear(image[c], coords, border, 0.25), atol=5e-4)
    want = sample_nearest(label, coords, border, 9)
    assert got_label is not None and got_label.dtype == np.uint8
    assert not np.any((got_label != want) & ~near_half(coords))


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16, np.bool_]
)
@pytest.mark.parametrize("border", ["constant", "edge"])
def test_label_dtypes_and_reads_at_the_volume_end(dtype: type, border: str) -> None:
    # A shift towards the far corner: many voxels read the last voxels of the volume (for one-byte
    # labels the vector gather must not read past its end) or fall outside it.
    src, out = (4, 5, 19), (4, 5, 40)
    rng = np.random.default_rng(7)
    hi = 2 if dtype is np.bool_ else 100
    label = rng.integers(0, hi, src).astype(dtype)
    label[-1, -1, -3:] = np.array([1, 0, 1]).astype(dtype)
    image = rng.uniform(-1.0, 1.0, (1, *src)).astype(np.float32)
    sp = SpatialParams(
        rotation=(0.0, 0.0, 0.0),
        scale=(1.0, 1.0, 0.5),
        translation=(1.7, 2.3, 7.9),
        flip=(False, False, False),
        elastic=None,
    )
    cval = 0 if dtype is np.bool_ else 3
    got_image, got = run(sp, image, label, out, border=border, label_border_value=cval)
    coords = coordinates(sp, src, out, (1.0, 1.2, 0.9))
    want = sample_nearest(label, coords, border, cval)
    assert got is not None and got.dtype == label.dtype
    assert not np.any((got != want) & ~near_half(coords))
    np.testing.assert_allclose(
        got_image[0], sample_linear(image[0], coords, border, 0.0), atol=5e-4
    )


def test_identity_on_long_rows_is_exact() -> None:
    rng = np.random.default_rng(11)
    image = rng.normal(0.0, 100.0, (2, 3, 4, 53)).astype(np.float32)
    label = rng.integers(0, 7, (3, 4, 53)).astype(np.uint8)
    for border in ("constant", "edge"):
        got, got_label = Pipeline([], border=border, border_value=5.0)(image, label, seed=0)
        np.testing.assert_array_equal(got, image)
        np.testing.assert_array_equal(got_label, label)


@settings(max_examples=12, deadline=None)
@given(
    out=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(15, 50)),
    grid=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 24)),
    seed=st.integers(0, 2**32 - 1),
)
def test_separable_elastic_matches_the_direct_sum(
    out: tuple[int, int, int], grid: tuple[int, int, int], seed: int
) -> None:
    # The identity image (values = x index) turns the image output into the x source coordinate,
    # elastic displacement included, written by the staged (separable) evaluation.
    src = (6, 6, 60)
    image = np.broadcast_to(np.arange(60, dtype=np.float32), src)[None].copy()
    rng = np.random.default_rng(seed)
    sp = SpatialParams(
        rotation=(0.0, 0.0, 0.0),
        scale=(1.0, 1.0, 1.0),
        translation=(0.0, 0.0, 0.0),
        flip=(False, False, False),
        elastic=rng.uniform(-2.0, 2.0, (*grid, 3)),
    )
    got, _ = run(sp, image, None, out, border="edge")
    coords = coordinates(sp, src, out, (1.0, 1.2, 0.9))
    np.testing.assert_allclose(got[0], np.clip(coords[2], 0, 59), atol=2e-4)


_NARROW_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, {here!r})
from test_spatial_rows import case
image, label = case()
np.save({out!r} + "_image.npy", image)
np.save({out!r} + "_label.npy", label)
"""


def case() -> tuple[np.ndarray, np.ndarray]:
    """One fixed long-row case with both elastic paths (x grid 5 and 20), for the SIMD-cap test."""
    rng = np.random.default_rng(5)
    src, out = (8, 9, 50), (4, 5, 45)
    image = rng.uniform(-1.0, 1.0, (2, *src)).astype(np.float32)
    label = rng.integers(0, 5, src).astype(np.uint8)
    images, labels = [], []
    for grid in ((3, 3, 5), (3, 3, 20)):
        got, got_label = run(params(grid, seed=3), image, label, out, border_value=0.5)
        assert got_label is not None
        images.append(got)
        labels.append(got_label)
    return np.stack(images), np.stack(labels)


@pytest.mark.parametrize("cap", ["avx2", "base"])
def test_narrower_simd_paths_agree(cap: str, tmp_path: Path) -> None:
    # FASTSEG_AUGMENT_SIMD caps the hand-written kernels (read once per process): the AVX2 and
    # baseline paths, run in a child process, give this process's result up to float rounding.
    out = str(tmp_path / cap)
    script = _NARROW_SCRIPT.format(here=str(Path(__file__).resolve().parent), out=out)
    env = {**os.environ, "FASTSEG_AUGMENT_SIMD": cap}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)
    image, label = case()
    np.testing.assert_allclose(np.load(out + "_image.npy"), image, atol=1e-4)
    other = np.load(out + "_label.npy")
    assert other.dtype == label.dtype and other.shape == label.shape
    assert np.mean(other != label) < 0.01
