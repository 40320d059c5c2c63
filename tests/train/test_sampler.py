"""PatchSampler: patches are sub-arrays of the cases, foreground forcing, padding, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from fastseg.errors import InputError
from fastseg.train import PatchSampler


def coded_case(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Image whose voxel value is its flat index (so a patch tells where it came from)."""
    image = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    label = np.zeros(shape, np.uint8)
    rng = np.random.default_rng(seed)
    z, y, x = (int(rng.integers(n)) for n in shape)
    label[z, y, x] = 3  # a single rare voxel
    label[: shape[0] // 2] = np.where(label[: shape[0] // 2] == 0, 1, label[: shape[0] // 2])
    return image, label


def locate(case: np.ndarray, patch: np.ndarray) -> tuple[int, ...]:
    start = np.unravel_index(int(patch.flat[0]), case.shape)
    return tuple(int(s) for s in start)


@pytest.mark.parametrize("shape", [(9, 10, 11), (6, 7, 5)])
def test_patches_are_sub_arrays_with_matching_labels(shape: tuple[int, int, int]) -> None:
    cases = [coded_case(shape, s) for s in range(3)]
    patch = (4, 5, 3)
    sampler = PatchSampler([c[0] for c in cases], [c[1] for c in cases], patch, 0.5, seed=7)
    for _ in range(20):
        images, labels = sampler.sample(4)
        assert images.shape == (4, 1, *patch) and images.dtype == np.float32
        assert labels.shape == (4, *patch) and labels.dtype == np.int64
        for image, label in zip(images, labels, strict=True):
            matches = [
                i
                for i, (im, lb) in enumerate(cases)
                for start in [locate(im, image[0])]
                if np.array_equal(
                    im[tuple(slice(s, s + p) for s, p in zip(start, patch, strict=True))], image[0]
                )
                and np.array_equal(
                    lb[tuple(slice(s, s + p) for s, p in zip(start, patch, strict=True))], label
                )
            ]
            assert matches


def test_forced_patches_contain_foreground_and_rare_classes() -> None:
    cases = [coded_case((12, 12, 12), s) for s in range(4)]
    sampler = PatchSampler([c[0] for c in cases], [c[1] for c in cases], (4, 4, 4), 1.0, seed=0)
    _, labels = sampler.sample(300)
    assert all((lb > 0).any() for lb in labels)
    with_rare = np.mean([(lb == 3).any() for lb in labels])
    assert 0.35 < with_rare < 0.65  # class drawn uniformly among the 2 present classes


def test_oversampling_fraction_of_the_batch() -> None:
    image = np.zeros((20, 20, 20), np.float32)
    label = np.zeros((20, 20, 20), np.uint8)
    label[0, 0, 0] = 1
    sampler = PatchSampler([image], [label], (2, 2, 2), oversample_foreground=0.25, seed=1)
    for _ in range(10):
        _, labels = sampler.sample(8)
        assert all(lb.any() for lb in labels[-2:])
    sampler = PatchSampler([image], [label], (2, 2, 2), oversample_foreground=0.0, seed=1)
    hits = sum(int(sampler.sample(8)[1].any()) for _ in range(10))
    assert hits <= 2


def test_case_smaller_than_patch_is_padded_centred() -> None:
    image = np.full((1, 2, 3, 4), 5.0, np.float32)
    label = np.ones((2, 3, 4), np.uint8)
    sampler = PatchSampler([image], [label], (4, 3, 6), seed=0, pad_value=-7.0)
    images, labels = sampler.sample(2)
    expected = np.full((4, 3, 6), -7.0, np.float32)
    expected[1:3, :, 1:5] = 5.0
    for im, lb in zip(images, labels, strict=True):
        np.testing.assert_array_equal(im[0], expected)
        np.testing.assert_array_equal(lb, (expected == 5.0).astype(np.int64))


def test_multichannel_and_determinism() -> None:
    rng = np.random.default_rng(0)
    images = [rng.normal(size=(2, 8, 9, 10)).astype(np.float32) for _ in range(2)]
    labels = [rng.integers(0, 3, size=(8, 9, 10)) for _ in range(2)]
    a = PatchSampler(images, labels, (3, 4, 5), seed=42).sample(5)
    b = PatchSampler(images, labels, (3, 4, 5), seed=42).sample(5)
    c = PatchSampler(images, labels, (3, 4, 5), seed=43).sample(5)
    assert a[0].shape == (5, 2, 3, 4, 5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_empty_foreground_falls_back_to_random_patches() -> None:
    sampler = PatchSampler([np.ones((4, 4, 4))], [np.zeros((4, 4, 4), int)], (2, 2, 2), 1.0)
    images, labels = sampler.sample(3)
    assert images.shape == (3, 1, 2, 2, 2) and not labels.any()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([], [], (2, 2, 2)), "equally many"),
        (([np.ones((4, 4, 4))], [np.ones((4, 4, 5), int)], (2, 2, 2)), "same grid"),
        (([np.ones((4, 4, 4))], [np.ones((4, 4, 4))], (2, 2, 2)), "non-negative integers"),
        (([np.ones((4, 4, 4))], [-np.ones((4, 4, 4), int)], (2, 2, 2)), "non-negative integers"),
        (([np.ones((4, 4, 4))], [np.ones((4, 4, 4), int)], (2, 2)), "patch_size"),
        (([np.ones((4, 4, 4))], [np.ones((4, 4, 4), int)], (2, 0, 2)), "patch_size"),
    ],
)
def test_bad_inputs(args: tuple[object, object, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        PatchSampler(*args)  # type: ignore[arg-type]


def test_bad_fraction_and_batch() -> None:
    with pytest.raises(InputError, match="oversample_foreground"):
        PatchSampler([np.ones((2, 2, 2))], [np.ones((2, 2, 2), int)], (1, 1, 1), 1.5)
    sampler = PatchSampler([np.ones((2, 2, 2))], [np.ones((2, 2, 2), int)], (1, 1, 1))
    with pytest.raises(InputError, match="batch_size"):
        sampler.sample(0)
