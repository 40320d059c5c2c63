"""Random training patches, a fraction of them centred on foreground voxels (nnU-Net's scheme)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fastseg.errors import InputError


class PatchSampler:
    """Draws patches ``(C, pz, py, px)`` and their labels ``(pz, py, px)`` from whole cases.

    ``images[i]`` is ``(C, z, y, x)`` (or ``(z, y, x)``, taken as one channel), ``labels[i]`` is
    ``(z, y, x)`` with non-negative integer labels. In each batch the last
    ``round(oversample_foreground * batch_size)`` patches are forced to contain a foreground voxel:
    a class is drawn uniformly among the non-zero classes present in the case, then a voxel of
    that class, and the patch is centred on it (shifted to stay inside the case). Other patches
    start uniformly at random inside the case. Cases smaller than the patch are padded with
    ``pad_value`` (image) and 0 (label), centred.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        patch_size: Sequence[int],
        oversample_foreground: float = 0.33,
        seed: int | np.random.Generator = 0,
        pad_value: float = 0.0,
    ) -> None:
        if len(images) != len(labels) or not images:
            raise InputError(
                f"PatchSampler: expected equally many images and labels (>0), got {len(images)} "
                f"and {len(labels)}"
            )
        patch = tuple(int(p) for p in patch_size)
        if len(patch) != 3 or min(patch) < 1:
            raise InputError(
                f"patch_size: expected three positive sizes (z, y, x), got {patch_size}"
            )
        if not 0.0 <= oversample_foreground <= 1.0:
            raise InputError(
                f"oversample_foreground: expected a fraction in [0, 1], got {oversample_foreground}"
            )
        self.patch_size: tuple[int, int, int] = (patch[0], patch[1], patch[2])
        self.oversample_foreground = float(oversample_foreground)
        self.rng = np.random.default_rng(seed)
        self.images: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.foreground: list[dict[int, np.ndarray]] = []
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            image = np.asarray(image, dtype=np.float32)
            if image.ndim == 3:
                image = image[None]
            label = np.asarray(label)
            if image.ndim != 4 or label.shape != image.shape[1:]:
                raise InputError(
                    f"case {i}: expected image (C, z, y, x) and label (z, y, x) on the same grid, "
                    f"got {image.shape} and {label.shape}"
                )
            if label.dtype.kind not in "iub" or (label.size and label.min() < 0):
                raise InputError(
                    f"case {i}: labels must be non-negative integers, got dtype {label.dtype}"
                )
            image, label = self._pad(image, label, pad_value)
            self.images.append(image)
            self.labels.append(label.astype(np.int64))
            flat = label.ravel()
            self.foreground.append(
                {int(c): np.flatnonzero(flat == c) for c in np.unique(flat) if c != 0}
            )
        if len({im.shape[0] for im in self.images}) != 1:
            raise InputError("PatchSampler: all images must have the same number of channels")

    def _pad(
        self, image: np.ndarray, label: np.ndarray, value: float
    ) -> tuple[np.ndarray, np.ndarray]:
        short = [max(p - n, 0) for p, n in zip(self.patch_size, label.shape, strict=True)]
        if not any(short):
            return image, label
        widths = [(s // 2, s - s // 2) for s in short]
        return (
            np.pad(image, [(0, 0), *widths], constant_values=value),
            np.pad(label, widths, constant_values=0),
        )

    def _start(self, case: int, force_foreground: bool) -> tuple[int, ...]:
        shape = self.labels[case].shape
        high = [n - p for n, p in zip(shape, self.patch_size, strict=True)]
        classes = self.foreground[case]
        if force_foreground and classes:
            keys = sorted(classes)
            voxels = classes[keys[int(self.rng.integers(len(keys)))]]
            center = np.unravel_index(int(voxels[int(self.rng.integers(voxels.size))]), shape)
            return tuple(
                int(np.clip(c - p // 2, 0, h))
                for c, p, h in zip(center, self.patch_size, high, strict=True)
            )
        return tuple(int(self.rng.integers(h + 1)) for h in high)

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """A batch: images ``(N, C, pz, py, px)`` float32 and labels ``(N, pz, py, px)`` int64."""
        if batch_size < 1:
            raise InputError(f"batch_size: expected >= 1, got {batch_size}")
        n_forced = round(self.oversample_foreground * batch_size)
        channels = self.images[0].shape[0]
        images = np.empty((batch_size, channels, *self.patch_size), dtype=np.float32)
        labels = np.empty((batch_size, *self.patch_size), dtype=np.int64)
        for b in range(batch_size):
            case = int(self.rng.integers(len(self.images)))
            start = self._start(case, b >= batch_size - n_forced)
            region = tuple(slice(s, s + p) for s, p in zip(start, self.patch_size, strict=True))
            images[b] = self.images[case][(slice(None), *region)]
            labels[b] = self.labels[case][region]
        return images, labels
