"""Hypothesis strategies for the metrics tests: random masks, label maps and spacings (z, y, x)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from scipy import ndimage

spacings = st.tuples(*[st.floats(0.3, 3.0, allow_nan=False) for _ in range(3)])
shapes = st.tuples(st.integers(1, 12), st.integers(1, 14), st.integers(1, 13))


def blob(
    shape: tuple[int, ...], rng: np.random.Generator, density: float, smooth: bool
) -> np.ndarray:
    """Bool mask: random voxels, optionally smoothed into blobs (organ-like, with holes and islands)."""
    noise = rng.random(shape)
    if smooth and min(shape) > 1:
        noise = ndimage.gaussian_filter(noise, 1.0)
        return noise > np.quantile(noise, 1.0 - density)
    return noise < density


@st.composite
def mask_pairs(draw: st.DrawFn, nonempty: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Two bool masks of one random shape; both non-empty when asked."""
    shape = draw(shapes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density_a = draw(st.floats(0.05, 0.9))
    density_b = draw(st.floats(0.05, 0.9))
    smooth = draw(st.booleans())
    a = blob(shape, rng, density_a, smooth)
    b = blob(shape, rng, density_b, smooth)
    if nonempty:
        a.flat[rng.integers(a.size)] = True
        b.flat[rng.integers(b.size)] = True
    return a, b


@st.composite
def label_map_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two int16 label maps with labels drawn from {0, 1, 2, 5, -3} (some labels may be absent)."""
    shape = draw(shapes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = np.array([0, 1, 2, 5, -3], dtype=np.int16)
    weights = rng.dirichlet(np.ones(len(values)))
    pred = rng.choice(values, size=shape, p=weights)
    ref = np.where(rng.random(shape) < 0.7, pred, rng.choice(values, size=shape, p=weights))
    return pred.astype(np.int16), ref.astype(np.int16)
