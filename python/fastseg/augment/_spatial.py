"""Composition of the spatial parameters into the one coordinate map the native kernels evaluate.

For output voxel ``p`` (z, y, x) of an output patch of shape ``O`` cut from a source of shape ``S``
with voxel spacing ``s`` (mm):

    q      = F (p - c_out) * s + elastic_mm(p)           (mm, centred on the patch)
    src_mm = R @ (q / scale) + translation
    src    = src_mm / s + c_src                          (source voxel position)

with c_out = (O - 1) / 2, c_src = c_out + floor((S - O) / 2) (the patch is centred in the source),
F the flips and R = R_z @ R_y @ R_x. Rotation happens in millimetres, so anisotropic spacing is
respected. The map is ``src = A p + b + E(p)`` with A = S⁻¹ R D⁻¹ F S (S = diag(s), D = diag(scale)),
composed in double precision so that identity parameters give A = I and b = 0 exactly, and E the
B-spline of the control displacements transformed by S⁻¹ R D⁻¹.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fastseg.augment._params import SpatialParams


def rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """R_z(a0) @ R_y(a1) @ R_x(a2) acting on (z, y, x) vectors, angles in radians."""
    out = np.eye(3)
    for axis, a in enumerate(angles):
        if a == 0.0:
            continue
        c, s = math.cos(a), math.sin(a)
        i, j = [k for k in range(3) if k != axis]
        r = np.eye(3)
        sign = -1.0 if axis == 1 else 1.0  # right-handed about y in (z, y, x) order
        r[i, i] = r[j, j] = c
        r[i, j] = -s * sign
        r[j, i] = s * sign
        out = out @ r
    return out


def crop_offset(src_shape: Sequence[int], out_shape: Sequence[int]) -> tuple[int, int, int]:
    """Integer offset of a patch of ``out_shape`` centred in ``src_shape`` (may be negative)."""
    return tuple((int(s) - int(o)) // 2 for s, o in zip(src_shape, out_shape, strict=True))  # type: ignore[return-value]


def linear_part(
    params: SpatialParams,
    src_shape: Sequence[int],
    out_shape: Sequence[int],
    spacing: Sequence[float],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, b, B): src = A p + b + B @ elastic_mm(p), all float64."""
    s = np.asarray(spacing, dtype=np.float64)
    m = rotation_matrix(params.rotation) / np.asarray(params.scale, dtype=np.float64)[None, :]
    flips = np.where(np.asarray(params.flip), -1.0, 1.0)
    a = m * flips[None, :] * s[None, :] / s[:, None]
    c_out = (np.asarray(out_shape, dtype=np.float64) - 1.0) / 2.0
    c_src = c_out + np.asarray(crop_offset(src_shape, out_shape), dtype=np.float64)
    b = c_src + np.asarray(params.translation, dtype=np.float64) / s - a @ c_out
    return a, b, m / s[:, None]


def compile_maps(
    params: Sequence[SpatialParams],
    src_shape: Sequence[int],
    out_shape: Sequence[int],
    spacing: Sequence[float],
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Per-sample maps for the kernels: (N, 12) float32 (A row-major, b), control displacements
    (N, gz, gy, gx, 3) float32 in source voxels (None when no sample has an elastic part), and
    (N,) uint8 flags of the samples that have one."""
    maps = np.zeros((len(params), 12), dtype=np.float32)
    grids = {p.elastic.shape for p in params if p.elastic is not None}
    if len(grids) > 1:
        from fastseg.errors import InputError

        raise InputError(
            f"params: expected one elastic control-grid shape per batch, got {sorted(grids)}"
        )
    coef = np.zeros((len(params), *grids.pop()), dtype=np.float32) if grids else None
    has = np.zeros(len(params), dtype=np.uint8)
    for k, p in enumerate(params):
        a, b, to_src = linear_part(p, src_shape, out_shape, spacing)
        maps[k, :9] = a.ravel()
        maps[k, 9:] = b
        if p.elastic is not None and coef is not None:
            coef[k] = p.elastic @ to_src.T
            has[k] = 1
    return maps, coef, has
