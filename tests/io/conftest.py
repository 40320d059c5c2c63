"""Hypothesis strategies for random geometry, shared by the io tests as session fixtures
(the suite runs with --import-mode=importlib, so test modules cannot import each other)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st


@st.composite
def directions(draw: st.DrawFn, oblique: bool = True) -> np.ndarray:
    """A 3x3 direction: a random signed axis permutation, optionally rotated by up to ~15° about each axis
    so the closest axes stay unambiguous."""
    perm = draw(st.permutations([0, 1, 2]))
    signs = np.array(draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=3, max_size=3)))
    base = np.eye(3)[:, perm] * signs
    if not oblique:
        return base
    angles = draw(st.lists(st.floats(-0.25, 0.25), min_size=3, max_size=3))
    rot = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rot = rot @ r
    return rot @ base


spacings = st.tuples(*[st.floats(0.2, 6.0) for _ in range(3)])
origins = st.tuples(*[st.floats(-500.0, 500.0) for _ in range(3)])
shapes = st.tuples(*[st.integers(1, 7) for _ in range(3)])


@pytest.fixture(scope="session")
def geometry() -> st.SearchStrategy[tuple[Any, ...]]:
    """(shape, spacing, origin, direction): odd small shapes, anisotropic spacing (mm),
    origin (mm), oblique direction near a random signed axis permutation."""
    return st.tuples(shapes, spacings, origins, directions())
