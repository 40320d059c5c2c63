"""Each intensity transform against its NumPy formula (nnU-Net's where nnU-Net has it), applied
through Pipeline.apply with explicit parameters; channels left inactive must come back unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from augment_reference import bias_field, blur, contrast, gamma, lowres, normals
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fastseg.augment import IntensityParams, Pipeline, SampleParams, SpatialParams

shapes = st.tuples(*[st.integers(1, 9)] * 3)


def apply_op(
    step: dict[str, Any], image: np.ndarray, active: list[bool], key: int = 0, **values: Any
) -> np.ndarray:
    """Run one intensity step with the given per-channel values on a (C, z, y, x) image."""
    op = IntensityParams(
        name=step["name"],
        active=np.array(active),
        values={k: np.asarray(v, dtype=np.float64) for k, v in values.items()},
        key=key,
    )
    out, _ = Pipeline([step]).apply(image, None, SampleParams(0, 0, SpatialParams(), (op,)))
    return out


def random_image(data: st.DataObject, shape: tuple[int, int, int], channels: int = 2) -> np.ndarray:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    offset = data.draw(st.sampled_from([0.0, -1000.0, 300.0]))
    scale = data.draw(st.sampled_from([1.0, 50.0]))
    return (offset + scale * rng.normal(size=(channels, *shape))).astype(np.float32)


def close(got: np.ndarray, want: np.ndarray, rel: float) -> None:
    """Equal up to `rel` of the data's magnitude (float32 rounding of large offsets included)."""
    mag = max(float(np.abs(want).max(initial=0.0)), 1e-6)
    np.testing.assert_allclose(got, want, atol=rel * mag, rtol=0)


@settings(max_examples=30)
@given(shape=shapes, sigma=st.floats(0.0, 2.0), key=st.integers(0, 2**63 - 1), data=st.data())
def test_noise_is_the_counter_based_normal(
    shape: tuple[int, int, int], sigma: float, key: int, data: st.DataObject
) -> None:
    image = random_image(data, shape)
    got = apply_op({"name": "noise"}, image, [True, False], key=key, sigma=[sigma, 0.5])
    n = int(np.prod(shape))
    want = image[0].astype(np.float64) + sigma * normals(key, 0, n).reshape(shape)
    close(got[0], want, 2e-6)
    assert np.array_equal(got[1], image[1])


def test_noise_is_standard_normal_and_differs_per_channel() -> None:
    image = np.zeros((2, 40, 50, 60), np.float32)
    got = apply_op({"name": "noise"}, image, [True, True], key=12345, sigma=[1.0, 1.0])
    a, b = got[0].ravel(), got[1].ravel()
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1.0) < 0.01
    assert stats.kstest(a, "norm").pvalue > 1e-3
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01


@settings(max_examples=30)
@given(shape=shapes, mul=st.floats(0.5, 1.5), add=st.floats(-3, 3), data=st.data())
def test_brightness(
    shape: tuple[int, int, int], mul: float, add: float, data: st.DataObject
) -> None:
    image = random_image(data, shape)
    got = apply_op(
        {"name": "brightness"}, image, [False, True], multiplier=[2.0, mul], additive=[1.0, add]
    )
    close(got[1], image[1].astype(np.float64) * np.float32(mul) + np.float32(add), 1e-6)
    assert np.array_equal(got[0], image[0])


@settings(max_examples=30)
@given(shape=shapes, factor=st.floats(0.5, 1.5), preserve=st.booleans(), data=st.data())
def test_contrast(
    shape: tuple[int, int, int], factor: float, preserve: bool, data: st.DataObject
) -> None:
    image = random_image(data, shape)
    got = apply_op(
        {"name": "contrast", "preserve_range": preserve}, image, [True, True], factor=[factor, 0.8]
    )
    close(got[0], contrast(image[0], np.float32(factor), preserve), 2e-6)
    close(got[1], contrast(image[1], np.float32(0.8), preserve), 2e-6)


@settings(max_examples=40)
@given(
    shape=shapes,
    g=st.floats(0.5, 2.0),
    invert=st.booleans(),
    retain=st.booleans(),
    data=st.data(),
)
def test_gamma(
    shape: tuple[int, int, int], g: float, invert: bool, retain: bool, data: st.DataObject
) -> None:
    image = random_image(data, shape)
    step = {"name": "gamma", "invert": invert, "retain_stats": retain}
    got = apply_op(step, image, [True, False], gamma=[g, 1.3])
    close(got[0], gamma(image[0], np.float32(g), invert, retain), 3e-5)
    assert np.array_equal(got[1], image[1])


def test_gamma_of_a_constant_image_keeps_it() -> None:
    image = np.full((1, 3, 4, 5), 7.5, np.float32)
    for invert in (False, True):
        got = apply_op({"name": "gamma", "invert": invert}, image, [True], gamma=[1.4])
        np.testing.assert_allclose(got, image, rtol=1e-6)


@settings(max_examples=25)
@given(shape=shapes, sigma=st.tuples(*[st.sampled_from([0.0, 0.5, 0.8, 1.7])] * 3), data=st.data())
def test_blur_matches_scipy_gaussian_filter(
    shape: tuple[int, int, int], sigma: tuple[float, float, float], data: st.DataObject
) -> None:
    image = random_image(data, shape)
    got = apply_op({"name": "blur"}, image, [True, False], sigma=[sigma, (1.0, 1.0, 1.0)])
    close(got[0], blur(image[0], sigma), 2e-6)
    assert np.array_equal(got[1], image[1])


@settings(max_examples=25)
@given(
    shape=st.tuples(*[st.integers(1, 13)] * 3),
    zoom=st.tuples(*[st.floats(0.2, 1.0)] * 3),
    data=st.data(),
)
def test_lowres_matches_torch_interpolate(
    shape: tuple[int, int, int], zoom: tuple[float, float, float], data: st.DataObject
) -> None:
    image = random_image(data, shape)
    got = apply_op({"name": "lowres"}, image, [True, False], zoom=[zoom, (0.5, 0.5, 0.5)])
    close(got[0], lowres(image[0], np.float32(zoom)), 2e-6)
    assert np.array_equal(got[1], image[1])


@settings(max_examples=25)
@given(shape=shapes, order=st.integers(0, 4), data=st.data())
def test_bias_field(shape: tuple[int, int, int], order: int, data: st.DataObject) -> None:
    image = random_image(data, shape)
    terms = (order + 1) * (order + 2) * (order + 3) // 6
    coef = np.random.default_rng(order).uniform(-0.5, 0.5, (2, terms))
    got = apply_op({"name": "bias_field", "order": order}, image, [True, True], coefficients=coef)
    for c in range(2):
        close(got[c], bias_field(image[c], coef[c].astype(np.float32), order), 3e-6)


def test_intensity_never_touches_labels() -> None:
    rng = np.random.default_rng(7)
    label = rng.integers(0, 3, (6, 7, 8)).astype(np.uint8)
    steps = [
        {"name": n, "p": 1.0, "p_per_channel": 1.0}
        for n in ("noise", "blur", "brightness", "contrast", "lowres", "gamma", "bias_field")
    ]
    out, out_label = Pipeline(steps)(
        rng.normal(size=(1, 6, 7, 8)).astype(np.float32), label, seed=3
    )
    assert np.array_equal(out_label, label)
    assert out.dtype == np.float32


@pytest.mark.parametrize(
    "name", ["noise", "blur", "brightness", "contrast", "lowres", "gamma", "bias_field"]
)
def test_drawn_values_follow_the_config(name: str) -> None:
    pipeline = Pipeline([{"name": name, "p": 1.0, "p_per_channel": 1.0, "per_channel": False}])
    params = pipeline.draw(5, (4, 3, 2, 2, 2))
    for p in params:
        (op,) = p.intensity
        assert op.active.all()
        for v in op.values.values():
            assert np.array_equal(v, np.repeat(v[:1], 3, axis=0))  # one value for all channels
    off = Pipeline([{"name": name, "p": 0.0}]).draw(5, (4, 3, 2, 2, 2))
    assert not any(p.intensity[0].active.any() for p in off)


def test_gamma_draw_is_nnunet_split_around_one() -> None:
    params = Pipeline([{"name": "gamma", "p": 1.0, "gamma": (0.7, 1.5)}]).draw(0, (400, 1, 1, 1, 1))
    values = np.array([p.intensity[0].values["gamma"][0] for p in params])
    assert values.min() >= 0.7 and values.max() <= 1.5
    assert 0.35 < np.mean(values < 1.0) < 0.65  # half below one although 1 is not mid-range
