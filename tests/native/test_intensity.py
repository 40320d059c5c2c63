"""The window kernel of _core against its NumPy formula, and the boundary checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastseg import _native
from fastseg.errors import InputError


def reference_window(
    image: np.ndarray, lo: float, hi: float, offset: float, scale: float
) -> np.ndarray:
    return ((np.clip(image.astype(np.float64), lo, hi) - offset) * scale).astype(np.float32)


@given(
    values=hnp.arrays(
        dtype=np.int32,
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=9),
        elements=st.integers(-3000, 3000),
    ),
    dtype=st.sampled_from([np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64]),
    lo=st.floats(-2000, 0),
    width=st.floats(0, 3000),
    scale=st.floats(-2, 2),
)
def test_window_matches_numpy(
    values: np.ndarray, dtype: type, lo: float, width: float, scale: float
) -> None:
    limits = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    image = np.clip(values, max(limits.min, -3000), min(limits.max, 3000)).astype(dtype)
    hi = lo + width
    got = _native.window(image, lo, hi, lo, scale)
    np.testing.assert_allclose(
        got, reference_window(image, lo, hi, lo, scale), rtol=1e-6, atol=1e-6
    )
    assert got.dtype == np.float32 and got.shape == image.shape


def test_window_non_contiguous_input() -> None:
    image = np.arange(2 * 6 * 5, dtype=np.int16).reshape(2, 6, 5) - 30
    view = image[:, ::2, ::-1]
    np.testing.assert_allclose(
        _native.window(view, -10, 10, -10, 0.05), reference_window(view, -10, 10, -10, 0.05)
    )


def test_window_rejects_inverted_window() -> None:
    with pytest.raises(ValueError, match="lo <= hi"):
        _native.window(np.zeros(3, np.float32), 5, 1, 0, 1)


def test_core_checks_name_argument_and_dtype() -> None:
    out = np.empty(4, np.float64)
    with pytest.raises(TypeError, match="out: expected dtype float32, got float64"):
        _native.core.window(np.zeros(4, np.float32), out, 0, 1, 0, 1)
    with pytest.raises(ValueError, match=r"out: expected shape \(4,\)"):
        _native.core.window(np.zeros(4, np.float32), np.empty(5, np.float32), 0, 1, 0, 1)


def test_build_info_reports_openmp_and_cuda() -> None:
    info = _native.build_info()
    assert info["openmp_threads"] >= 1
    assert isinstance(info["cuda_compiled"], bool)
    if info["cuda_compiled"]:
        assert {"80", "90"} <= set(info["cuda_architectures"])


@pytest.mark.cuda
def test_window_cuda_matches_cpu() -> None:
    import torch

    rng = np.random.default_rng(0)
    image = rng.normal(0, 500, size=(17, 33, 29)).astype(np.float32)
    got = _native.window(torch.from_numpy(image).cuda(), -1000, 400, -1000, 1 / 1400).cpu().numpy()
    np.testing.assert_allclose(
        got, _native.window(image, -1000, 400, -1000, 1 / 1400), rtol=1e-6, atol=1e-7
    )


def test_window_accepts_equal_dtype_objects_and_big_endian() -> None:
    """nibabel hands out dtypes equal to, but not identical with, NumPy's own objects."""
    image = np.arange(-50, 70, dtype=np.int16).reshape(4, 5, 6)
    distinct = image.view(np.dtype("<i2").newbyteorder("<"))
    big_endian = image.astype(">i2")
    expected = reference_window(image, -20, 30, -20, 0.02)
    np.testing.assert_allclose(_native.window(distinct, -20, 30, -20, 0.02), expected)
    np.testing.assert_allclose(_native.window(big_endian, -20, 30, -20, 0.02), expected)


@pytest.mark.parametrize(
    ("op", "arrays", "flags", "match"),
    [
        ("blur", [np.full((2, 1, 3), 65.0)], [], r"sigma: expected values in \[0, 64\]"),
        ("blur", [np.full((2, 1), 1.0)], [], r"sigma: expected shape \(2, 1, 3\)"),
        ("lowres", [np.zeros((2, 1, 3))], [], r"zoom: expected values in \(0, 1\]"),
        ("gamma", [np.zeros((2, 1)), np.zeros((2, 1))], [True], "gamma: expected values > 0"),
        ("noise", [np.ones((2, 1)), np.ones(3, np.uint64)], [], r"keys: expected shape \(2,\)"),
        ("bias_field", [np.ones((2, 1, 4))], [2], r"coef: expected shape \(2, 1, 10\)"),
        ("bias_field", [np.ones((2, 1, 4))], [9], "order: expected 0..7"),
        ("brightness", [np.ones((2, 1))], [], r"brightness: expected arrays \['mul', 'add'\]"),
        ("sharpen", [], [], "op: expected one of"),
    ],
)
def test_cuda_parameter_checks_match_the_cpu_bindings(
    op: str, arrays: list[np.ndarray], flags: list[object], match: str
) -> None:
    """The CUDA path hands raw pointers to the kernels: its parameters are checked (shape, the
    values the CPU bindings refuse) before any copy; only the image's shape is read here."""
    image = np.zeros((2, 1, 3, 4, 5), dtype=np.float32)
    active = np.ones((2, 1), dtype=np.uint8)
    with pytest.raises(InputError, match=match):
        _native._checked_intensity_params(op, image, active, arrays, flags)


def test_cuda_parameters_come_back_in_the_kernels_dtypes() -> None:
    image = np.zeros((2, 3, 3, 4, 5), dtype=np.float32)
    active = np.ones((2, 3), dtype=np.uint8)
    gamma, invert = _native._checked_intensity_params(
        "gamma", image, active, [np.full((2, 3), 1.5), np.ones((2, 3), bool)], [True]
    )
    assert gamma.dtype == np.float32 and invert.dtype == np.uint8 and gamma.flags.c_contiguous
    (coef,) = _native._checked_intensity_params(
        "bias_field", image, active, [np.zeros((2, 3, 1))], [0]
    )
    assert coef.shape == (2, 3, 1) and coef.dtype == np.float32
