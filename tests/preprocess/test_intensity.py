"""HU windowing and normalisation against their NumPy formulas."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastseg.errors import InputError
from fastseg.preprocess import WINDOWS, CTNormalization, apply_window, window_limits, zscore

volumes = hnp.arrays(
    dtype=st.sampled_from([np.int16, np.float32, np.float64, np.int32]),
    shape=hnp.array_shapes(min_dims=3, max_dims=3, min_side=0, max_side=7),
    elements=st.integers(-1024, 3071),
)


def test_window_limits_of_names_and_pairs() -> None:
    assert window_limits("lung") == (-1350.0, 150.0)
    assert window_limits("soft") == (-160.0, 240.0)
    assert window_limits("bone") == (-500.0, 1300.0)
    assert window_limits((100, 50)) == (0.0, 100.0)
    assert set(WINDOWS) == {"lung", "soft", "bone"}


@pytest.mark.parametrize("bad", ["brain", (0, 40), (-5, 0), (1, 2, 3), (float("nan"), 0)])
def test_window_limits_rejects(bad: object) -> None:
    with pytest.raises(InputError, match="window"):
        window_limits(bad)  # type: ignore[arg-type]


@given(image=volumes, width=st.floats(1, 3000), level=st.floats(-1000, 1000))
def test_apply_window_matches_numpy(image: np.ndarray, width: float, level: float) -> None:
    lo, hi = level - width / 2, level + width / 2
    expected = (np.clip(image.astype(np.float64), lo, hi) - lo) / (hi - lo)
    got = apply_window(image, (width, level))
    assert got.dtype == np.float32 and got.shape == image.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    if got.size:
        assert got.min() >= 0.0 and got.max() <= 1.0 + 1e-6


@given(image=volumes, use_mask=st.booleans(), data=st.data())
def test_zscore_matches_numpy(image: np.ndarray, use_mask: bool, data: st.DataObject) -> None:
    mask = None
    values = image.astype(np.float64)
    if use_mask:
        mask = data.draw(hnp.arrays(bool, image.shape))
        values = values[mask]
    if values.size == 0:
        with pytest.raises(InputError, match="no voxels"):
            zscore(image, mask)
        return
    std = values.std()
    expected = (image - values.mean()) / (std if std > 0 else 1.0)
    got = zscore(image, mask)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_zscore_rejects_mask_of_other_shape() -> None:
    with pytest.raises(InputError, match="mask: expected shape"):
        zscore(np.zeros((2, 3, 4)), np.ones((2, 3, 5), bool))


def test_ct_normalization_fit_and_apply_match_numpy() -> None:
    rng = np.random.default_rng(3)
    images = [rng.normal(0, 400, size=s).astype(np.int16) for s in [(5, 6, 7), (3, 9, 4)]]
    labels = [(rng.random(im.shape) < 0.4).astype(np.uint8) * 2 for im in images]
    norm = CTNormalization.fit(images, labels)
    fg = np.concatenate(
        [im[lb > 0].astype(np.float64) for im, lb in zip(images, labels, strict=True)]
    )
    lo, hi = np.percentile(fg, [0.5, 99.5])
    clipped = np.clip(fg, lo, hi)
    assert norm.lo == pytest.approx(lo) and norm.hi == pytest.approx(hi)
    assert norm.mean == pytest.approx(clipped.mean()) and norm.std == pytest.approx(clipped.std())
    expected = (np.clip(images[1].astype(np.float64), lo, hi) - clipped.mean()) / clipped.std()
    np.testing.assert_allclose(norm(images[1]), expected, rtol=1e-5, atol=1e-5)
    assert CTNormalization.from_dict(norm.to_dict()) == norm


def test_ct_normalization_errors() -> None:
    with pytest.raises(InputError, match="no foreground"):
        CTNormalization.fit([np.ones((2, 2, 2))], [np.zeros((2, 2, 2), np.uint8)])
    with pytest.raises(InputError, match="shape"):
        CTNormalization.fit([np.ones((2, 2, 2))], [np.ones((2, 2, 3), np.uint8)])
    with pytest.raises(InputError, match="equally many"):
        CTNormalization.fit([], [])
    with pytest.raises(InputError, match="std must be positive"):
        CTNormalization(lo=0, hi=1, mean=0, std=0)
    with pytest.raises(InputError, match="missing key"):
        CTNormalization.from_dict({"lo": 0, "hi": 1, "mean": 0})


@pytest.mark.parametrize(
    "dtype", [np.dtype("<i2").newbyteorder("<"), np.dtype(">i2"), np.dtype(">f4")]
)
def test_non_canonical_dtypes_as_nibabel_returns_them(dtype: np.dtype) -> None:
    image = np.arange(-500, 500, 37).astype(dtype).reshape(1, 1, -1)
    expected = (np.clip(image.astype(np.float64), -160, 240) + 160) / 400
    np.testing.assert_allclose(apply_window(image, "soft"), expected, rtol=1e-6, atol=1e-7)
