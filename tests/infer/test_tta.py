"""Mirror test-time augmentation and autocast."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from fastseg.infer import (
    mirror_combinations,
    mirror_tta,
    sliding_window_inference,
    sliding_window_logits,
)


def conv_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    # An asymmetric kernel, so that flipping changes the output.
    return torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv3d(4, 3, 3, padding=1)
    ).eval()


def flipped(model: torch.nn.Module, dims: tuple[int, ...]) -> torch.nn.Module | object:
    def predict(x: torch.Tensor) -> torch.Tensor:
        if not dims:
            return model(x)
        return torch.flip(model(torch.flip(x, dims)), dims)

    return predict


def test_mirror_combinations() -> None:
    assert mirror_combinations(()) == [()]
    assert mirror_combinations((2, 0)) == [(), (2,), (0,), (2, 0)]
    assert len(mirror_combinations((0, 1, 2))) == 8


@pytest.mark.parametrize("axes", [(0,), (1, 2), (0, 1, 2)])
def test_single_window_tta_is_the_mean_of_flipped_predictions(axes: tuple[int, ...]) -> None:
    model = conv_net()
    image = np.random.default_rng(0).normal(size=(1, 6, 7, 5)).astype(np.float32)
    x = torch.from_numpy(image)[None]
    by_hand = []
    with torch.no_grad():
        for r in range(len(axes) + 1):
            for combo in itertools.combinations(axes, r):
                dims = [a + 2 for a in combo]
                out = model(torch.flip(x, dims)) if dims else model(x)
                by_hand.append((torch.flip(out, dims) if dims else out)[0].numpy())
    expected = np.mean(by_hand, axis=0)
    got = sliding_window_logits(model, image, (6, 7, 5), mirror_axes=axes)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    plain = sliding_window_logits(model, image, (6, 7, 5))
    assert np.abs(plain - got).max() > 1e-3
    with torch.no_grad():
        np.testing.assert_allclose(
            mirror_tta(model, axes)(x)[0].numpy(), expected, rtol=1e-5, atol=1e-6
        )


def test_tta_with_many_windows_is_the_mean_of_flipped_sliding_windows() -> None:
    # TTA flips each window (nnU-Net); by linearity the result is the mean over flips of sliding
    # windows run with the flipped model.
    model = conv_net(1)
    image = np.random.default_rng(1).normal(size=(1, 19, 13, 11)).astype(np.float32)
    axes = (0, 2)
    runs = [
        sliding_window_logits(flipped(model, tuple(a + 2 for a in combo)), image, (8, 6, 6))  # type: ignore[arg-type]
        for combo in mirror_combinations(axes)
    ]
    got = sliding_window_logits(model, image, (8, 6, 6), mirror_axes=axes, slab_size=8)
    np.testing.assert_allclose(got, np.mean(runs, axis=0), rtol=1e-5, atol=1e-6)
    labels = sliding_window_inference(model, image, (8, 6, 6), mirror_axes=axes)
    np.testing.assert_array_equal(labels, got.argmax(0))


def test_autocast_on_cpu_runs_in_bfloat16() -> None:
    seen: list[torch.dtype] = []
    model = conv_net(2)

    def predictor(x: torch.Tensor) -> torch.Tensor:
        out = model(x)
        seen.append(out.dtype)
        return out

    image = np.random.default_rng(2).normal(size=(1, 10, 10, 10)).astype(np.float32)
    exact = sliding_window_logits(predictor, image, (6, 6, 6))
    assert set(seen) == {torch.float32}
    seen.clear()
    amp = sliding_window_logits(predictor, image, (6, 6, 6), amp=True)
    assert set(seen) == {torch.bfloat16} and amp.dtype == np.float32
    np.testing.assert_allclose(amp, exact, atol=0.05)


@pytest.mark.cuda
def test_cuda_amp_float16_accumulation_matches_cpu() -> None:
    model = conv_net(3)
    image = np.random.default_rng(3).normal(size=(1, 40, 33, 30)).astype(np.float32)
    cpu = sliding_window_logits(model, image, (16, 16, 16), min_weight=1e-3, mirror_axes=(0, 1, 2))
    gpu_model = conv_net(3).cuda()
    labels, probs = sliding_window_inference(
        gpu_model,
        image,
        (16, 16, 16),
        device="cuda",
        accumulate_dtype="float16",
        slab_size=16,
        mirror_axes=(0, 1, 2),
        return_probabilities=True,
    )
    expected = torch.softmax(torch.from_numpy(cpu), 0).numpy()
    np.testing.assert_allclose(probs, expected, atol=2e-2)
    assert (labels == cpu.argmax(0)).mean() > 0.99
