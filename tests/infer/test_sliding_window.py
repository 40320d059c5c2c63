"""Sliding-window inference against direct forward passes and a slow window-by-window reference."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import ndimage

from fastseg.errors import InputError
from fastseg.infer import gaussian_importance_map, sliding_window_inference, window_starts


def nnunet_steps(image_size: int, tile_size: int, tile_step_size: float) -> list[int]:
    """nnU-Net v2's compute_steps_for_sliding_window, one axis, as published."""
    target_step = tile_size * tile_step_size
    num_steps = int(np.ceil((image_size - tile_size) / target_step)) + 1
    max_step_value = image_size - tile_size
    actual_step = max_step_value / (num_steps - 1) if num_steps > 1 else 99999999999
    return [int(np.round(actual_step * i)) for i in range(num_steps)]


def nnunet_gaussian(tile_size: tuple[int, ...], sigma_scale: float = 1.0 / 8) -> np.ndarray:
    """nnU-Net v2's compute_gaussian: a smoothed impulse scaled to peak 1, zeros lifted to min."""
    tmp = np.zeros(tile_size)
    tmp[tuple(i // 2 for i in tile_size)] = 1
    g = ndimage.gaussian_filter(
        tmp, [i * sigma_scale for i in tile_size], 0, mode="constant", cval=0
    )
    g /= g.max()
    g[g == 0] = g[g > 0].min()
    return g


def conv_model(
    kernel: int, in_channels: int = 2, classes: int = 3, seed: int = 0
) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Conv3d(in_channels, classes, kernel, padding=kernel // 2)
    return model.double().eval()


def slow_reference(
    model: torch.nn.Module,
    image: np.ndarray,
    patch: tuple[int, int, int],
    overlap: float,
    pad_values: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Averaged logits ``(K, z, y, x)``: every window run alone, weighted voxel by voxel; the
    volume padded (centred) to the patch with ``pad_values`` per channel (default 0)."""
    size = image.shape[1:]
    short = [max(p - n, 0) for p, n in zip(patch, size, strict=True)]
    before = [s // 2 for s in short]
    widths = [(b, s - b) for b, s in zip(before, short, strict=True)]
    values = pad_values or (0.0,) * image.shape[0]
    padded = np.stack(
        [
            np.pad(channel, widths, constant_values=v)
            for channel, v in zip(image, values, strict=True)
        ]
    )
    weight = nnunet_gaussian(patch)
    total = norm = None
    axes = [nnunet_steps(n, p, 1 - overlap) for n, p in zip(padded.shape[1:], patch, strict=True)]
    for start in itertools.product(*axes):
        region = tuple(slice(s, s + p) for s, p in zip(start, patch, strict=True))
        with torch.no_grad():
            out = model(torch.from_numpy(padded[(slice(None), *region)][None]))[0].numpy()
        if total is None:
            total = np.zeros((out.shape[0], *padded.shape[1:]))
            norm = np.zeros(padded.shape[1:])
        for idx in itertools.product(*(range(p) for p in patch)):
            voxel = tuple(s + i for s, i in zip(start, idx, strict=True))
            total[(slice(None), *voxel)] += out[(slice(None), *idx)] * weight[idx]
            norm[voxel] += weight[idx]
    assert total is not None and norm is not None
    crop = tuple(slice(b, b + n) for b, n in zip(before, size, strict=True))
    return (total / norm)[(slice(None), *crop)]


@given(
    size=st.integers(1, 300),
    patch=st.integers(1, 128),
    overlap=st.sampled_from([0.0, 0.25, 0.5, 0.75]),
)
def test_window_starts_match_nnunet(size: int, patch: int, overlap: float) -> None:
    if patch > size:
        with pytest.raises(InputError):
            window_starts(size, patch, overlap)
        return
    starts = window_starts(size, patch, overlap)
    assert starts == nnunet_steps(size, patch, 1 - overlap)
    assert starts[0] == 0 and starts[-1] == size - patch
    assert all(b - a <= patch * (1 - overlap) + 1 for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize("patch", [(8, 8, 8), (5, 9, 16), (1, 2, 3), (32, 48, 48), (12,)])
def test_gaussian_map_matches_nnunet_and_formula(patch: tuple[int, ...]) -> None:
    got = gaussian_importance_map(patch)
    assert got.dtype == np.float32 and got.shape == patch
    np.testing.assert_allclose(got, nnunet_gaussian(patch), rtol=1e-5, atol=1e-7)
    grids = np.meshgrid(*(np.arange(p) - p // 2 for p in patch), indexing="ij")
    formula = np.exp(-sum(g**2 / (2 * (p / 8) ** 2) for g, p in zip(grids, patch, strict=True)))
    np.testing.assert_allclose(got, formula, rtol=1e-5)
    assert got[tuple(p // 2 for p in patch)] == 1.0 and got.min() > 0


def test_patch_covering_the_volume_equals_a_direct_forward_pass() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 3, 3, padding=1)
    ).eval()
    image = np.random.default_rng(0).normal(size=(1, 6, 7, 5)).astype(np.float32)
    labels, probs = sliding_window_inference(model, image, (6, 7, 5), return_probabilities=True)
    with torch.no_grad():
        logits = model(torch.from_numpy(image)[None])[0]
    np.testing.assert_allclose(probs, torch.softmax(logits, 0).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(labels, logits.argmax(0).numpy())
    assert labels.shape == (6, 7, 5) and probs.shape == (3, 6, 7, 5)


@pytest.mark.parametrize(
    ("size", "patch", "overlap"),
    [((7, 9, 11), (4, 5, 6), 0.5), ((5, 3, 13), (5, 3, 4), 0.25), ((3, 4, 5), (6, 6, 2), 0.5)],
)
@pytest.mark.parametrize("kernel", [1, 3])
def test_matches_slow_window_by_window_reference(
    size: tuple[int, int, int], patch: tuple[int, int, int], overlap: float, kernel: int
) -> None:
    model = conv_model(kernel)
    image = np.random.default_rng(1).normal(size=(2, *size))
    expected = slow_reference(model, image, patch, overlap)
    labels, probs = sliding_window_inference(
        lambda x: model(x.double()), image, patch, overlap, batch_size=3, return_probabilities=True
    )
    np.testing.assert_allclose(
        probs, torch.softmax(torch.from_numpy(expected), 0).numpy(), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_array_equal(labels, expected.argmax(0))


@given(
    size=st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12)),
    patch=st.tuples(st.integers(1, 8), st.integers(1, 8), st.integers(1, 8)),
    overlap=st.sampled_from([0.0, 0.5, 0.75]),
    gaussian=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_pointwise_model_gives_the_direct_result_for_any_windows(
    size: tuple[int, int, int],
    patch: tuple[int, int, int],
    overlap: float,
    gaussian: bool,
    seed: int,
) -> None:
    # A 1x1x1 conv gives each voxel the same logits in every window, so any weighted average of
    # the windows equals one forward pass over the whole volume.
    model = conv_model(1, seed=seed)
    image = np.random.default_rng(seed).normal(size=(2, *size))
    _, probs = sliding_window_inference(
        lambda x: model(x.double()),
        image,
        patch,
        overlap,
        gaussian=gaussian,
        return_probabilities=True,
    )
    with torch.no_grad():
        direct = torch.softmax(model(torch.from_numpy(image)[None])[0], 0).numpy()
    np.testing.assert_allclose(probs, direct, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pad", [-2.5, (-3.0, 4.0)])
def test_padding_takes_one_value_or_one_per_channel(pad: float | tuple[float, float]) -> None:
    model = conv_model(3)
    image = np.random.default_rng(3).normal(size=(2, 3, 4, 5))
    values = (pad, pad) if isinstance(pad, float) else pad
    expected = slow_reference(model, image, (6, 6, 2), 0.5, pad_values=values)
    _, probs = sliding_window_inference(
        lambda x: model(x.double()), image, (6, 6, 2), pad_value=pad, return_probabilities=True
    )
    np.testing.assert_allclose(
        probs, torch.softmax(torch.from_numpy(expected), 0).numpy(), rtol=1e-4, atol=1e-5
    )
    zero = slow_reference(model, image, (6, 6, 2), 0.5)
    assert not np.allclose(expected, zero)  # the padding reaches the result


def test_batch_size_does_not_change_the_result() -> None:
    model = conv_model(3, in_channels=1)
    image = np.random.default_rng(2).normal(size=(9, 10, 7))
    one = sliding_window_inference(lambda x: model(x.double()), image, (4, 4, 4), batch_size=1)
    many = sliding_window_inference(lambda x: model(x.double()), image, (4, 4, 4), batch_size=5)
    np.testing.assert_array_equal(one, many)
    assert one.shape == (9, 10, 7)


def test_bad_inputs() -> None:
    model = conv_model(1, in_channels=1)
    with pytest.raises(InputError, match="image"):
        sliding_window_inference(model, np.zeros((2, 3)), (1, 1, 1))
    with pytest.raises(InputError, match="patch_size"):
        sliding_window_inference(model, np.zeros((2, 3, 4)), (1, 1))
    with pytest.raises(InputError, match="batch_size"):
        sliding_window_inference(model, np.zeros((2, 3, 4)), (1, 1, 1), batch_size=0)
    with pytest.raises(InputError, match="predictor: expected logits"):
        sliding_window_inference(lambda x: x[:, :, :1], np.zeros((2, 3, 4)), (2, 2, 2))
    bad: list[Any] = [(1.0, 2.0), float("nan"), "low"]
    for pad in bad:
        with pytest.raises(InputError, match="pad_value"):
            sliding_window_inference(model, np.zeros((2, 3, 4)), (4, 4, 4), pad_value=pad)
    with pytest.raises(InputError, match="overlap"):
        window_starts(10, 4, 1.0)
    with pytest.raises(InputError, match="gaussian_importance_map"):
        gaussian_importance_map((4, 0))
