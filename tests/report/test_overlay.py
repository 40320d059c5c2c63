"""overlay_rgb and windowing: exact pixel values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

from fastseg.errors import InputError
from fastseg.report import PALETTE, WINDOW_PRESETS, overlay_rgb


def _grey(values: np.ndarray, width: float, level: float) -> np.ndarray:
    out = np.empty(values.shape, dtype=np.uint8)
    for idx, v in np.ndenumerate(values):
        t = (v - (level - width / 2)) / width
        out[idx] = round(min(max(t, 0.0), 1.0) * 255)
    return out


@pytest.mark.parametrize(("width", "level"), [(400.0, 40.0), (1500.0, -600.0), (3.0, 0.5)])
def test_window_endpoints(width: float, level: float) -> None:
    lo, hi = level - width / 2, level + width / 2
    values = np.array([[lo, hi, level, lo - 1000, hi + 1000, lo + width / 4]])
    grey = overlay_rgb(values, window=(width, level))[..., 0]
    np.testing.assert_array_equal(grey, [[0, 255, 128, 0, 255, 64]])


@pytest.mark.parametrize("name", sorted(WINDOW_PRESETS))
def test_presets_and_strings_equal_tuples(name: str) -> None:
    width, level = WINDOW_PRESETS[name]
    hu = np.linspace(-1500, 1500, 60).reshape(3, 20)
    expected = overlay_rgb(hu, window=(width, level))
    np.testing.assert_array_equal(overlay_rgb(hu, window=name), expected)
    np.testing.assert_array_equal(overlay_rgb(hu, window=f"{width:g},{level:g}"), expected)


def test_preset_values() -> None:
    assert WINDOW_PRESETS == {
        "lung": (1500.0, -600.0),
        "soft": (400.0, 40.0),
        "bone": (1800.0, 400.0),
    }


def test_auto_window_is_1st_to_99th_percentile() -> None:
    values = np.random.default_rng(0).normal(size=(40, 50))
    p1, p99 = np.percentile(values, [1, 99])
    grey = overlay_rgb(values)[..., 0]
    np.testing.assert_array_equal(grey, _grey(values, p99 - p1, (p1 + p99) / 2))
    assert (grey[values <= p1] == 0).all() and (grey[values >= p99] == 255).all()


def test_constant_slice_and_nan() -> None:
    assert overlay_rgb(np.full((3, 4), 7.0)).shape == (3, 4, 3)
    rgb = overlay_rgb(np.array([[np.nan, 1.0]]), window=(2.0, 0.0))
    np.testing.assert_array_equal(rgb[0, 0], [0, 0, 0])


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=12),
        elements=hs.floats(-2000, 2000),
    ),
    hs.integers(0, 2**32 - 1),
    hs.floats(0.0, 1.0),
)
def test_colours_exactly_where_labelled(image: np.ndarray, seed: int, alpha: float) -> None:
    labels = np.random.default_rng(seed).integers(0, 25, image.shape)
    labels[labels > 20] = 0
    rgb = overlay_rgb(image, labels, window=(400.0, 40.0), alpha=alpha)
    grey = _grey(image, 400.0, 40.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (*image.shape, 3)
    for idx in np.ndindex(image.shape):
        value = labels[idx]
        if value == 0:
            expected = np.full(3, grey[idx], dtype=np.float64)
        else:
            colour = np.array(PALETTE[(value - 1) % len(PALETTE)], dtype=np.float64)
            expected = np.rint((1 - alpha) * float(grey[idx]) + alpha * colour)
        np.testing.assert_array_equal(rgb[idx], expected)


def test_alpha_one_paints_palette_colours() -> None:
    labels = np.array([[0, 1, 2], [3, 19, 0]])
    rgb = overlay_rgb(np.zeros((2, 3)), labels, window=(1.0, 0.5), alpha=1.0)
    assert tuple(rgb[0, 1]) == PALETTE[0] and tuple(rgb[0, 2]) == PALETTE[1]
    assert tuple(rgb[1, 0]) == PALETTE[2] and tuple(rgb[1, 1]) == PALETTE[0]
    assert tuple(rgb[1, 2]) == (0, 0, 0)


def test_float_labels_with_integer_values_accepted() -> None:
    labels = np.array([[0.0, 2.0]])
    np.testing.assert_array_equal(
        overlay_rgb(np.zeros((1, 2)), labels, window=(1.0, 0.5), alpha=1.0)[0, 1], PALETTE[1]
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"slice2d": np.zeros((2, 2, 2))}, "slice2d must be 2-d"),
        ({"label2d": np.zeros((3, 2), int)}, "label2d has shape"),
        ({"label2d": np.array([[0.5, 0], [0, 0]])}, "integer label"),
        ({"label2d": np.array([[-1, 0], [0, 0]])}, "negative"),
        ({"label2d": np.array([["a", "b"], ["c", "d"]])}, "dtype"),
        ({"window": "brain"}, "window 'brain'"),
        ({"window": (0.0, 10.0)}, "width > 0"),
        ({"window": (1.0, 2.0, 3.0)}, "window must be"),
        ({"window": 5}, "window must be"),
        ({"alpha": 1.5}, "alpha"),
    ],
)
def test_bad_input(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"slice2d": np.zeros((2, 2))} | kwargs
    with pytest.raises(InputError, match=match):
        overlay_rgb(**args)
