"""``scheme="monai"`` reproduces MONAI's sliding_window_inference (mode="gaussian")."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from fastseg.infer import gaussian_importance_map, sliding_window_logits, window_starts

monai_utils = pytest.importorskip("monai.inferers.utils")
monai_data = pytest.importorskip("monai.data.utils")


def monai_logits(
    model: torch.nn.Module, image: np.ndarray, patch: tuple[int, int, int], overlap: float
) -> np.ndarray:
    with torch.no_grad():
        out = monai_utils.sliding_window_inference(
            torch.from_numpy(image)[None],
            patch,
            1,
            model,
            overlap=overlap,
            mode="gaussian",
            sigma_scale=0.125,
        )
    return out[0].numpy()


@given(
    size=st.integers(1, 60),
    patch=st.integers(1, 24),
    overlap=st.sampled_from([0.0, 0.25, 0.5, 0.6, 0.75]),
)
def test_window_starts_match_monai_dense_patch_slices(
    size: int, patch: int, overlap: float
) -> None:
    if patch > size:
        return
    interval = monai_utils._get_scan_interval((size,), (patch,), 1, (overlap,))
    slices = monai_data.dense_patch_slices((size,), (patch,), interval)
    assert window_starts(size, patch, overlap, "monai") == [s[0].start for s in slices]


@pytest.mark.parametrize("patch", [(8, 8, 8), (5, 9, 16), (1, 2, 3), (32, 48, 48)])
def test_gaussian_map_matches_monai(patch: tuple[int, int, int]) -> None:
    expected = monai_data.compute_importance_map(patch, mode="gaussian", sigma_scale=0.125)
    got = gaussian_importance_map(patch, scheme="monai")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-6, atol=0)


@pytest.mark.parametrize("patch", [(7, 9, 5), (3, 11, 13)])
def test_odd_patches_share_the_centre_and_differ_only_where_monai_clamps(
    patch: tuple[int, int, int],
) -> None:
    nnunet, monai = gaussian_importance_map(patch), gaussian_importance_map(patch, scheme="monai")
    unclamped = monai > 1e-3
    np.testing.assert_allclose(nnunet[unclamped], monai[unclamped], rtol=1e-6)
    np.testing.assert_allclose(monai[~unclamped], 1e-3, rtol=1e-6)


@pytest.mark.parametrize(
    ("size", "patch", "overlap"),
    [
        ((17, 23, 19), (8, 10, 6), 0.5),
        ((9, 30, 31), (9, 8, 7), 0.25),
        ((5, 7, 40), (8, 8, 8), 0.5),  # smaller than the patch on two axes: padded
        ((20, 20, 20), (7, 6, 5), 0.75),
    ],
)
def test_conv_net_matches_monai(
    size: tuple[int, int, int], patch: tuple[int, int, int], overlap: float
) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv3d(2, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 3, 3, padding=1)
    ).eval()
    image = np.random.default_rng(0).normal(size=(2, *size)).astype(np.float32)
    expected = monai_logits(model, image, patch, overlap)
    got = sliding_window_logits(model, image, patch, overlap, scheme="monai", batch_size=2)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    sliced = sliding_window_logits(model, image, patch, overlap, scheme="monai", slab_size=patch[0])
    np.testing.assert_allclose(sliced, expected, rtol=1e-4, atol=1e-4)


def test_unet_matches_monai() -> None:
    from fastseg.nn import UNet3D

    torch.manual_seed(1)
    model = UNet3D(1, 4, widths=(4, 8)).eval()
    image = np.random.default_rng(1).normal(size=(1, 30, 27, 21)).astype(np.float32)
    expected = monai_logits(model, image, (16, 16, 16), 0.5)
    got = sliding_window_logits(model, image, (16, 16, 16), 0.5, scheme="monai")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    nnunet = sliding_window_logits(model, image, (16, 16, 16), 0.5)
    assert np.abs(nnunet - expected).max() > 1e-3  # the two schemes differ for even patches
