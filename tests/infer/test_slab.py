"""Slab-by-slab accumulation gives exactly the whole-volume result; outputs into array-likes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fastseg.errors import InputError
from fastseg.infer import sliding_window_inference, sliding_window_logits


def conv_net(in_channels: int = 2, classes: int = 3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv3d(in_channels, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv3d(4, classes, 3, padding=1),
    ).eval()


@settings(max_examples=40)
@given(
    size=st.tuples(st.integers(1, 24), st.integers(1, 10), st.integers(1, 10)),
    patch=st.tuples(st.integers(1, 9), st.integers(1, 6), st.integers(1, 6)),
    overlap=st.sampled_from([0.0, 0.3, 0.5, 0.75]),
    extra=st.integers(0, 6),
    batch=st.integers(1, 5),
    scheme=st.sampled_from(["nnunet", "monai"]),
    dtype=st.sampled_from(["float32", "float16"]),
    seed=st.integers(0, 100),
)
def test_slab_equals_whole_volume_bit_for_bit(
    size: tuple[int, int, int],
    patch: tuple[int, int, int],
    overlap: float,
    extra: int,
    batch: int,
    scheme: str,
    dtype: str,
    seed: int,
) -> None:
    model = conv_net(seed=seed)
    image = np.random.default_rng(seed).normal(size=(2, *size)).astype(np.float32)
    common = dict(overlap=overlap, batch_size=batch, scheme=scheme, accumulate_dtype=dtype)
    whole = sliding_window_logits(model, image, patch, slab_size=None, **common)  # type: ignore[arg-type]
    slab = sliding_window_logits(model, image, patch, slab_size=patch[0] + extra, **common)  # type: ignore[arg-type]
    np.testing.assert_array_equal(slab, whole)
    labels_whole, probs_whole = sliding_window_inference(
        model,
        image,
        patch,
        slab_size=None,
        return_probabilities=True,
        **common,  # type: ignore[arg-type]
    )
    labels_slab, probs_slab = sliding_window_inference(
        model,
        image,
        patch,
        slab_size=patch[0] + extra,
        return_probabilities=True,
        **common,  # type: ignore[arg-type]
    )
    np.testing.assert_array_equal(labels_slab, labels_whole)
    np.testing.assert_allclose(probs_slab, probs_whole, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(labels_whole, whole.argmax(0))


def test_slab_mode_agrees_with_a_direct_accumulation() -> None:
    # Whole-volume buffers accumulated the obvious way, in float64.
    model = conv_net(in_channels=1)
    image = np.random.default_rng(3).normal(size=(1, 29, 9, 11)).astype(np.float32)
    patch, overlap = (8, 6, 7), 0.5
    from fastseg.infer import gaussian_importance_map, window_starts

    weight = gaussian_importance_map(patch).astype(np.float64)
    total = np.zeros((3, *image.shape[1:]))
    norm = np.zeros(image.shape[1:])
    for z in window_starts(29, 8, overlap):
        for y in window_starts(9, 6, overlap):
            for x in window_starts(11, 7, overlap):
                region = (slice(z, z + 8), slice(y, y + 6), slice(x, x + 7))
                with torch.no_grad():
                    out = model(torch.from_numpy(image[(slice(None), *region)][None]))[0]
                total[(slice(None), *region)] += out.numpy().astype(np.float64) * weight
                norm[region] += weight
    got = sliding_window_logits(model, image, patch, overlap, slab_size=8)
    np.testing.assert_allclose(got, total / norm, rtol=1e-5, atol=1e-6)


def test_float16_accumulation_is_close_to_float32() -> None:
    # float16 cannot hold logit x corner weight (~e^-24): weights are clamped at 1e-3 by default.
    model = conv_net()
    image = np.random.default_rng(4).normal(size=(2, 20, 12, 12)).astype(np.float32)
    full = sliding_window_logits(model, image, (8, 8, 8), slab_size=8, min_weight=1e-3)
    half = sliding_window_logits(model, image, (8, 8, 8), slab_size=8, accumulate_dtype="float16")
    np.testing.assert_allclose(half, full, rtol=5e-3, atol=5e-3)
    assert not np.array_equal(half, full)
    unclamped = sliding_window_logits(model, image, (8, 8, 8), slab_size=8)
    assert not np.allclose(unclamped, full, rtol=5e-3, atol=5e-3)


def test_zarr_input_and_probability_output() -> None:
    zarr = pytest.importorskip("zarr")
    model = conv_net(in_channels=1, classes=4)
    data = np.random.default_rng(5).normal(size=(23, 10, 9)).astype(np.float32)
    source = zarr.create_array(store={}, shape=data.shape, chunks=(5, 10, 9), dtype="float32")
    source[:] = data
    target = zarr.create_array(
        store={}, shape=(4, *data.shape), chunks=(4, 4, 10, 9), dtype="float32"
    )
    labels, probs = sliding_window_inference(
        model,
        source,
        (6, 8, 8),
        slab_size=6,
        return_probabilities=True,
        probabilities_out=target,
    )
    assert probs is target
    expected_labels, expected_probs = sliding_window_inference(
        model, data, (6, 8, 8), slab_size=None, return_probabilities=True
    )
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(target[:], expected_probs, rtol=1e-6, atol=1e-7)
    logits = np.zeros((4, *data.shape), np.float32)
    assert sliding_window_logits(model, source, (6, 8, 8), out=logits) is logits
    np.testing.assert_allclose(
        torch.softmax(torch.from_numpy(logits), 0).numpy(), expected_probs, rtol=1e-5, atol=1e-6
    )


def test_integer_and_tensor_inputs_are_read_as_float32() -> None:
    model = conv_net(in_channels=1)
    data = np.random.default_rng(6).integers(-1000, 1000, size=(12, 9, 8)).astype(np.int16)
    expected = sliding_window_logits(model, data.astype(np.float32), (5, 5, 5))
    np.testing.assert_array_equal(sliding_window_logits(model, data, (5, 5, 5)), expected)
    np.testing.assert_array_equal(
        sliding_window_logits(model, torch.from_numpy(data), (5, 5, 5)), expected
    )


@pytest.mark.parametrize("classes", [2, 256, 257, 40000])
def test_label_dtype_is_the_smallest_that_holds_the_classes(classes: int) -> None:
    from fastseg.infer import label_dtype

    dtype = label_dtype(classes)
    assert np.iinfo(dtype).max >= classes - 1
    assert dtype == {2: np.uint8, 256: np.uint8, 257: np.int16, 40000: np.int32}[classes]


def test_empty_volume_gives_empty_outputs() -> None:
    model = conv_net(in_channels=1)
    labels, probs = sliding_window_inference(
        model, np.zeros((0, 5, 6), np.float32), (3, 3, 3), return_probabilities=True
    )
    assert labels.shape == (0, 5, 6) and probs.shape == (3, 0, 5, 6)


def test_per_axis_overlap() -> None:
    model = conv_net(in_channels=1)
    image = np.random.default_rng(7).normal(size=(1, 20, 9, 9)).astype(np.float32)
    same = sliding_window_logits(model, image, (6, 6, 6), (0.5, 0.5, 0.5))
    np.testing.assert_array_equal(same, sliding_window_logits(model, image, (6, 6, 6), 0.5))
    other = sliding_window_logits(model, image, (6, 6, 6), (0.75, 0.0, 0.0))
    assert other.shape == same.shape and not np.array_equal(other, same)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"slab_size": 3}, "slab_size"),
        ({"slab_size": True}, "slab_size"),
        ({"accumulate_dtype": "int8"}, "accumulate_dtype"),
        ({"accumulate_dtype": torch.int32}, "accumulate_dtype"),
        ({"scheme": "torchio"}, "scheme"),
        ({"overlap": (0.5, 0.5)}, "overlap"),
        ({"overlap": 1.0}, "overlap"),
        ({"mirror_axes": (3,)}, "mirror_axes"),
        ({"mirror_axes": (0, 0)}, "mirror_axes"),
        ({"batch_size": 0}, "batch_size"),
        ({"min_weight": 0.0}, "min_weight"),
        ({"out": np.zeros((2, 8, 8, 8), np.float32)}, "out: expected shape"),
    ],
)
def test_bad_options(kwargs: dict[str, object], match: str) -> None:
    model = conv_net(in_channels=1)
    with pytest.raises(InputError, match=match):
        sliding_window_logits(model, np.zeros((8, 8, 8), np.float32), (4, 4, 4), **kwargs)  # type: ignore[arg-type]


def test_predictor_changing_class_count_is_refused() -> None:
    calls = iter(range(100))

    def predictor(x: torch.Tensor) -> torch.Tensor:
        k = 2 if next(calls) == 0 else 3
        return torch.zeros((x.shape[0], k, *x.shape[2:]))

    with pytest.raises(InputError, match="predictor"):
        sliding_window_inference(predictor, np.zeros((8, 8, 8), np.float32), (4, 4, 4))
    with pytest.raises(InputError, match="probabilities_out"):
        sliding_window_inference(
            lambda x: torch.zeros((x.shape[0], 2, *x.shape[2:])),
            np.zeros((8, 8, 8), np.float32),
            (4, 4, 4),
            return_probabilities=True,
            probabilities_out=np.zeros((3, 8, 8, 8), np.float32),
        )


def test_progress_bar_counts_windows(capsys: pytest.CaptureFixture[str]) -> None:
    model = conv_net(in_channels=1)
    sliding_window_inference(model, np.zeros((9, 8, 8), np.float32), (4, 8, 8), progress=True)
    err = capsys.readouterr().err
    assert "sliding window" in err and "4/4" in err
