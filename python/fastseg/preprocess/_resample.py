"""Resampling to a target spacing as nnU-Net does it.

Grids are aligned by their outer voxel edges (scikit-image ``resize`` / SciPy ``zoom`` with
``grid_mode=True``): output voxel ``i`` of ``m`` samples input position ``(i + 0.5) * n / m - 0.5``
of ``n``; positions beyond the edge take the edge value. Arrays are ``(z, y, x)`` or
``(C, z, y, x)``, spacings ``(z, y, x)`` in mm.

Anisotropy (nnU-Net's rule): when the largest spacing is more than ``ANISOTROPY_THRESHOLD`` times
the smallest (of the source spacing, else of the target spacing) and exactly one axis has that
largest spacing, the data are not interpolated across that coarse axis: in-plane interpolation
as usual, nearest neighbour (order 0) along the coarse axis.

Labels never gain classes: each class is interpolated as a one-hot membership with linear
weights (background membership = 1 - the others) and every voxel takes the class with the
largest membership, ties to the smaller class (argmax).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from fastseg.errors import InputError

ANISOTROPY_THRESHOLD = 3.0
"""Spacing ratio above which the coarse axis is not interpolated (nnU-Net's value)."""

Shape3 = tuple[int, int, int]


def _shape3(shape: Sequence[int], name: str) -> Shape3:
    if len(shape) != 3 or any(int(v) < 1 for v in shape):
        raise InputError(f"{name}: expected 3 positive sizes (z, y, x), got {tuple(shape)}")
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def _spacing3(spacing: Sequence[float], name: str) -> npt.NDArray[np.float64]:
    s = np.asarray(spacing, dtype=np.float64)
    if s.shape != (3,) or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise InputError(f"{name}: expected 3 positive millimetres (z, y, x), got {spacing!r}")
    return s


def resampled_shape(
    shape: Sequence[int], spacing: Sequence[float], new_spacing: Sequence[float]
) -> Shape3:
    """``round(shape * spacing / new_spacing)`` per axis (at least 1), ``(z, y, x)``."""
    s = np.asarray(_shape3(shape, "shape"), dtype=np.float64)
    ratio = _spacing3(spacing, "spacing") / _spacing3(new_spacing, "new_spacing")
    out = np.maximum(np.round(s * ratio), 1).astype(int)
    return (int(out[0]), int(out[1]), int(out[2]))


def _coarse_axis(spacing: npt.NDArray[np.float64], threshold: float) -> int | None:
    if spacing.max() / spacing.min() <= threshold:
        return None
    coarse = np.flatnonzero(spacing == spacing.max())
    return int(coarse[0]) if coarse.size == 1 else None


def separate_axis(
    spacing: Sequence[float],
    new_spacing: Sequence[float],
    threshold: float = ANISOTROPY_THRESHOLD,
) -> int | None:
    """The axis (0 = z, 1 = y, 2 = x) not to interpolate across, or None (nnU-Net's rule)."""
    source = _spacing3(spacing, "spacing")
    axis = _coarse_axis(source, threshold)
    if axis is None:
        axis = _coarse_axis(_spacing3(new_spacing, "new_spacing"), threshold)
    return axis


def resampled_grid(
    shape: Sequence[int],
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: npt.ArrayLike,
    new_shape: Sequence[int],
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Spacing (mm) and origin (RAS+ mm of voxel 0) of the grid that resampling ``shape`` to
    ``new_shape`` produces: same extent, so spacing is ``spacing * shape / new_shape`` exactly."""
    s = np.asarray(_shape3(shape, "shape"), dtype=np.float64)
    m = np.asarray(_shape3(new_shape, "new_shape"), dtype=np.float64)
    sp = _spacing3(spacing, "spacing")
    new_sp = sp * s / m
    first = 0.5 * s / m - 0.5
    o = np.asarray(origin, dtype=np.float64) + np.asarray(direction, dtype=np.float64) @ (
        first * sp
    )
    return (
        (float(new_sp[0]), float(new_sp[1]), float(new_sp[2])),
        (float(o[0]), float(o[1]), float(o[2])),
    )


def _split(array: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    a = np.asarray(array)
    if a.ndim == 3:
        return a[None], False
    if a.ndim == 4:
        return a, True
    raise InputError(f"{name}: expected (z, y, x) or (C, z, y, x), got shape {a.shape}")


def _axis_weights(
    n_in: int, n_out: int, nearest: bool
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float32]]:
    """Linear (or nearest) interpolation along one axis: output ``i`` is
    ``in[i0] * (1 - w) + in[i1] * w``; edge values beyond the ends."""
    centres = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out)
    if nearest:
        idx = np.clip(np.floor(centres), 0, n_in - 1).astype(np.intp)
        return idx, idx, np.zeros(n_out, dtype=np.float32)
    x = np.clip(centres - 0.5, 0.0, n_in - 1)
    i0 = np.floor(x).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (x - i0).astype(np.float32)


def _interp_axis(
    a: np.ndarray,
    axis: int,
    weights: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float32]],
) -> np.ndarray:
    i0, i1, w = weights
    lo = np.take(a, i0, axis=axis)
    if not np.any(w):
        return lo
    shape = [1] * a.ndim
    shape[axis] = w.size
    wb = w.reshape(shape)
    hi = np.take(a, i1, axis=axis)
    out: np.ndarray = lo * (1.0 - wb) + hi * wb
    return out


def resample_image(
    image: np.ndarray,
    new_shape: Sequence[int],
    *,
    order: int = 3,
    separate: int | None = None,
    order_separate: int = 0,
) -> np.ndarray:
    """Resample an image ``(z, y, x)`` or ``(C, z, y, x)`` to spatial ``new_shape``; float32.

    ``order`` is the spline order (0-5, 3 = nnU-Net's default for images); ``separate`` names an
    axis interpolated on its own with ``order_separate`` (0 nearest, 1 linear) — see
    :func:`separate_axis`.
    """
    from scipy import ndimage

    data, multi = _split(image, "image")
    target = _shape3(new_shape, "new_shape")
    if not 0 <= order <= 5:
        raise InputError(f"order: expected a spline order 0..5, got {order}")
    if order_separate not in (0, 1):
        raise InputError(
            f"order_separate: expected 0 (nearest) or 1 (linear), got {order_separate}"
        )
    if separate is not None and separate not in (0, 1, 2):
        raise InputError(f"separate: expected None or an axis 0, 1, 2, got {separate}")
    if data.shape[1:] == target:
        out = data.astype(np.float32, copy=True)
        return out if multi else out[0]
    channels = []
    for channel in data:
        src = channel.astype(np.float32, copy=False)
        if separate is None:
            factors = [t / s for t, s in zip(target, src.shape, strict=True)]
            res = ndimage.zoom(src, factors, order=order, mode="nearest", grid_mode=True,
                               output=np.float32)  # fmt: skip
        else:
            moved = np.moveaxis(src, separate, 0)
            plane = tuple(t for k, t in enumerate(target) if k != separate)
            factors2 = [t / s for t, s in zip(plane, moved.shape[1:], strict=True)]
            slices = np.empty((moved.shape[0], *plane), dtype=np.float32)
            for k in range(moved.shape[0]):
                if moved.shape[1:] == plane:
                    slices[k] = moved[k]
                else:
                    ndimage.zoom(moved[k], factors2, output=slices[k], order=order,
                                 mode="nearest", grid_mode=True)  # fmt: skip
            along = _axis_weights(moved.shape[0], target[separate], nearest=order_separate == 0)
            res = np.moveaxis(_interp_axis(slices, 0, along), 0, separate).astype(np.float32)
        channels.append(np.ascontiguousarray(res))
    out = np.stack(channels)
    return out if multi else out[0]


def _label_classes(label: np.ndarray) -> list[int]:
    if label.dtype.kind == "b":
        return [1] if label.any() else []
    if label.dtype.kind not in "iu":
        raise InputError(f"label: expected an integer or bool array, got dtype {label.dtype}")
    if label.size == 0:
        return []
    lo = int(label.min())
    if lo < 0:
        raise InputError(f"label: classes must be >= 0, found {lo}")
    hi = int(label.max())
    if hi < 1 << 16:
        counts = np.bincount(label.ravel(), minlength=hi + 1)
        return [int(c) for c in np.flatnonzero(counts) if c > 0]
    return [int(c) for c in np.unique(label) if c > 0]


def resample_label(
    label: np.ndarray, new_shape: Sequence[int], *, separate: int | None = None
) -> np.ndarray:
    """Resample a label map ``(z, y, x)`` to ``new_shape`` without inventing classes.

    Per class: linear interpolation of its one-hot mask (nearest along ``separate``), then the
    argmax over classes (background included). Same dtype as ``label``.
    """
    lab = np.asarray(label)
    if lab.ndim != 3:
        raise InputError(f"label: expected (z, y, x), got shape {lab.shape}")
    target = _shape3(new_shape, "new_shape")
    classes = _label_classes(lab)
    if lab.shape == target:
        return lab.copy()
    out = np.zeros(target, dtype=lab.dtype)
    if not classes:
        return out
    weights = [_axis_weights(lab.shape[k], target[k], nearest=separate == k) for k in range(3)]
    best = np.zeros(target, dtype=np.float32)
    total = np.zeros(target, dtype=np.float32)
    for c in classes:
        mask = lab == c
        src_box: list[slice] = []
        dst_box: list[slice] = []
        sub_weights = []
        missed = False
        for axis in range(3):
            others = tuple(k for k in range(3) if k != axis)
            hits = np.flatnonzero(mask.any(axis=others))
            lo, hi = int(hits[0]), int(hits[-1])
            i0, i1, w = weights[axis]
            touches = (i1 >= lo) & (i0 <= hi)
            sel = np.flatnonzero(touches)
            if sel.size == 0:
                missed = True
                break
            a0, a1 = int(sel[0]), int(sel[-1]) + 1
            s0 = max(lo - 1, 0)
            s1 = min(hi + 2, lab.shape[axis])
            src_box.append(slice(s0, s1))
            dst_box.append(slice(a0, a1))
            sub_weights.append(
                (
                    np.clip(i0[a0:a1], s0, s1 - 1) - s0,
                    np.clip(i1[a0:a1], s0, s1 - 1) - s0,
                    w[a0:a1],
                )
            )
        if missed:
            continue
        member = mask[tuple(src_box)].astype(np.float32)
        for axis in range(3):
            member = _interp_axis(member, axis, sub_weights[axis])
        region = tuple(dst_box)
        total[region] += member
        win = member > best[region]
        best[region] = np.where(win, member, best[region])
        out[region] = np.where(win, np.asarray(c, dtype=lab.dtype), out[region])
    out[(1.0 - total) >= best] = 0
    return out
