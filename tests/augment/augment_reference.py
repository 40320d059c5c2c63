"""Slow, obvious references for fastseg.augment: the coordinate map written out from its
definition in float64, SciPy's map_coordinates for sampling, and the NumPy formulas of the
intensity transforms (nnU-Net's where nnU-Net has them)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from fastseg.augment import SpatialParams

# ---- spatial ----


def rotation(angles: Sequence[float]) -> np.ndarray:
    """R_z @ R_y @ R_x on (z, y, x) vectors, written out element by element."""
    a, b, c = angles
    rz = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rx = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    return rz @ ry @ rx


def bspline_matrix(n_out: int, g: int) -> np.ndarray:
    """(n_out, g): weight of control point k at output voxel p (uniform cubic B-spline, control
    points spread over the axis, indices clamped to the grid)."""
    w = np.zeros((n_out, g))
    for p in range(n_out):
        t = p * (g - 1) / (n_out - 1) if n_out > 1 and g > 1 else 0.0
        i = math.floor(t)
        f = t - i
        basis = [
            (1 - f) ** 3 / 6,
            (3 * f**3 - 6 * f**2 + 4) / 6,
            (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6,
            f**3 / 6,
        ]
        for k, b in enumerate(basis):
            w[p, min(max(i - 1 + k, 0), g - 1)] += b
    return w


def coordinates(
    sp: SpatialParams, src_shape: Sequence[int], out_shape: Sequence[int], spacing: Sequence[float]
) -> np.ndarray:
    """(3, *out_shape) source voxel positions of every output voxel, float64."""
    s = np.asarray(spacing, dtype=np.float64)
    out = np.asarray(out_shape)
    p = np.indices(tuple(out_shape), dtype=np.float64)
    c_out = (out - 1) / 2.0
    c_src = c_out + (np.asarray(src_shape) - out) // 2
    flip = np.where(np.asarray(sp.flip), -1.0, 1.0)
    q = (flip * s)[:, None, None, None] * (p - c_out[:, None, None, None])
    if sp.elastic is not None:
        gz, gy, gx, _ = sp.elastic.shape
        wz, wy, wx = (
            bspline_matrix(int(n), g) for n, g in zip(out_shape, (gz, gy, gx), strict=True)
        )
        q = q + np.einsum("ak,bl,cm,klmj->jabc", wz, wy, wx, sp.elastic)
    q = q / np.asarray(sp.scale)[:, None, None, None]
    src_mm = np.einsum("ij,jabc->iabc", rotation(sp.rotation), q)
    src_mm = src_mm + np.asarray(sp.translation)[:, None, None, None]
    return src_mm / s[:, None, None, None] + c_src[:, None, None, None]


def sample_linear(volume: np.ndarray, coords: np.ndarray, border: str, cval: float) -> np.ndarray:
    mode = "grid-constant" if border == "constant" else "nearest"
    return ndimage.map_coordinates(volume.astype(np.float64), coords, order=1, mode=mode, cval=cval)


def sample_nearest(label: np.ndarray, coords: np.ndarray, border: str, cval: int) -> np.ndarray:
    idx = np.floor(coords + 0.5).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.asarray(label.shape)[:, None, None, None]), axis=0)
    clamped = np.stack([np.clip(idx[k], 0, label.shape[k] - 1) for k in range(3)])
    vals = label[tuple(clamped)]
    return vals if border == "edge" else np.where(inside, vals, cval).astype(label.dtype)


def sample_label_linear(
    label: np.ndarray, coords: np.ndarray, border: str, cval: int
) -> np.ndarray:
    """Trilinear interpolation of each label's one-hot map, argmax (ties: the smaller label)."""
    mode = "grid-constant" if border == "constant" else "nearest"
    values = np.union1d(np.unique(label), [cval] if border == "constant" else [])
    probs = np.stack(
        [
            ndimage.map_coordinates(
                (label == v).astype(np.float64), coords, order=1, mode=mode, cval=float(v == cval)
            )
            for v in values
        ]
    )
    return values[np.argmax(probs, axis=0)].astype(label.dtype)


def keys(f: np.ndarray) -> list[np.ndarray]:
    a = -0.5
    return [
        a * f**3 - 2 * a * f**2 + a * f,
        (a + 2) * f**3 - (a + 3) * f**2 + 1,
        -(a + 2) * f**3 + (2 * a + 3) * f**2 - a * f,
        -a * f**3 + a * f**2,
    ]


def sample_cubic(volume: np.ndarray, coords: np.ndarray, border: str, cval: float) -> np.ndarray:
    """Cubic convolution (Keys, a = -0.5) with 4 taps per axis."""
    base = np.floor(coords).astype(np.int64)
    frac = coords - base
    weights = [keys(frac[k]) for k in range(3)]
    out = np.zeros(coords.shape[1:])
    shape = np.asarray(volume.shape)
    for a in range(4):
        for b in range(4):
            for c in range(4):
                idx = np.stack([base[0] - 1 + a, base[1] - 1 + b, base[2] - 1 + c])
                inside = np.all((idx >= 0) & (idx < shape[:, None, None, None]), axis=0)
                clamped = np.stack([np.clip(idx[k], 0, shape[k] - 1) for k in range(3)])
                v = volume[tuple(clamped)].astype(np.float64)
                if border == "constant":
                    v = np.where(inside, v, cval)
                out += weights[0][a] * weights[1][b] * weights[2][c] * v
    return out


# ---- intensity ----

_M64 = (1 << 64) - 1


def splitmix64(key: int, counter: int) -> int:
    z = (key + (counter + 1) * 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def lowbias32(h: np.ndarray) -> np.ndarray:
    h = h.astype(np.uint64)
    m = np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x7FEB352D)) & m
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(0x846CA68B)) & m
    h ^= h >> np.uint64(16)
    return h


def normals(key: int, channel: int, count: int) -> np.ndarray:
    """The standard normals fastseg draws for voxels 0..count-1 of one channel (float64)."""
    h = splitmix64(key, channel)
    k0, k1 = h & 0xFFFFFFFF, h >> 32
    i = np.arange(count, dtype=np.uint64)
    m = np.uint64(0xFFFFFFFF)
    a = lowbias32((i * np.uint64(0x9E3779B9) + np.uint64(k0)) & m)
    b = lowbias32((i * np.uint64(0x85EBCA6B) + np.uint64(k1)) & m)
    u1 = ((a >> np.uint64(8)) + np.uint64(1)).astype(np.float64) / 2**24
    u2 = (b >> np.uint64(8)).astype(np.float64) / 2**24
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def gamma(x: np.ndarray, g: float, invert: bool, retain_stats: bool) -> np.ndarray:
    """batchgenerators' augment_gamma for one channel."""
    x = x.astype(np.float64)
    if invert:
        x = -x
    mn, sd = x.mean(), x.std()
    minm = x.min()
    rnge = x.max() - minm
    x = np.power((x - minm) / (rnge + 1e-7), g) * rnge + minm
    if retain_stats:
        x = x - x.mean()
        x = x / (x.std() + 1e-8) * sd
        x = x + mn
    return -x if invert else x


def contrast(x: np.ndarray, factor: float, preserve_range: bool) -> np.ndarray:
    """batchgenerators' augment_contrast for one channel."""
    x = x.astype(np.float64)
    mn, lo, hi = x.mean(), x.min(), x.max()
    y = (x - mn) * factor + mn
    return np.clip(y, lo, hi) if preserve_range else y


def blur(x: np.ndarray, sigma: Sequence[float]) -> np.ndarray:
    return ndimage.gaussian_filter(
        x.astype(np.float64), sigma=tuple(sigma), mode="reflect", truncate=4.0
    )


def lowres_size(n: int, zoom: float) -> int:
    m = int(np.floor(np.float32(n) * np.float32(zoom) + np.float32(0.5)))
    return min(max(m, 1), n)


def lowres(x: np.ndarray, zoom: Sequence[float]) -> np.ndarray:
    """Down with F.interpolate(mode="nearest"), up with mode="trilinear", align_corners=False."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
    size = tuple(lowres_size(n, z) for n, z in zip(x.shape, zoom, strict=True))
    low = F.interpolate(t, size=size, mode="nearest")
    return (
        F.interpolate(low, size=x.shape, mode="trilinear", align_corners=False)[0, 0]
        .double()
        .numpy()
    )


def bias_field(x: np.ndarray, coef: Sequence[float], order: int) -> np.ndarray:
    """x * exp(sum c_ijk uz^i uy^j ux^k), coordinates in [-1, 1], terms ordered by i, j, k."""
    u = [np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1) for n in x.shape]
    uz, uy, ux = np.meshgrid(*u, indexing="ij")
    log = np.zeros(x.shape)
    t = 0
    for i in range(order + 1):
        for j in range(order + 1 - i):
            for k in range(order + 1 - i - j):
                log += coef[t] * uz**i * uy**j * ux**k
                t += 1
    return x.astype(np.float64) * np.exp(log)
