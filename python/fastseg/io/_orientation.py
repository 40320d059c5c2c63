"""Orientation codes and exact reorientation (axis permutations and flips only)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fastseg.errors import InputError
from fastseg.io._volume import Volume

_LETTERS = (("R", "L"), ("A", "P"), ("S", "I"))
_LETTER_TO_AXIS = {
    letter: (world, 1 if positive else -1)
    for world, pair in enumerate(_LETTERS)
    for positive, letter in zip((True, False), pair, strict=True)
}


def axis_map(direction: npt.ArrayLike) -> list[tuple[int, int]]:
    """For each array axis ``k`` (0 = z, 1 = y, 2 = x): the closest world axis (0 = R, 1 = A,
    2 = S) and the sign (+1 when the index increases towards R, A or S).

    Same algorithm as ``nibabel.orientations.io_orientation``: take the nearest orthonormal
    matrix, then give each axis in NIfTI order (x, y, z) its largest remaining component.
    """
    d = np.asarray(direction, dtype=np.float64)
    u, _, vt = np.linalg.svd(d)
    r = u @ vt
    result: list[tuple[int, int]] = [(0, 1)] * 3
    for k in (2, 1, 0):
        col = r[:, k]
        world = int(np.argmax(np.abs(col)))
        result[k] = (world, 1 if col[world] >= 0 else -1)
        r[world, :] = 0.0
    return result


def axcodes(direction: npt.ArrayLike) -> str:
    """Orientation code for array axes x, y, z, e.g. ``"RAS"`` (nibabel ``aff2axcodes`` style)."""
    amap = axis_map(direction)
    return "".join(_LETTERS[amap[k][0]][0 if amap[k][1] > 0 else 1] for k in (2, 1, 0))


def _parse_code(code: str) -> list[tuple[int, int]]:
    """Target (world axis, sign) for array axes (z, y, x) from a code for axes x, y, z."""
    if not isinstance(code, str) or len(code) != 3:
        raise InputError(f"orientation: expected a 3-letter code such as 'RAS', got {code!r}")
    parsed = []
    for letter in code.upper():
        if letter not in _LETTER_TO_AXIS:
            raise InputError(
                f"orientation: {code!r} has {letter!r}; letters must be from R/L, A/P, S/I"
            )
        parsed.append(_LETTER_TO_AXIS[letter])
    if len({world for world, _ in parsed}) != 3:
        raise InputError(f"orientation: {code!r} must name each of R/L, A/P, S/I exactly once")
    return parsed[::-1]


def reorient(volume: Volume, code: str = "RAS") -> Volume:
    """Permute and flip the axes of ``volume`` so its orientation code becomes ``code``.

    Exact: no resampling, every voxel keeps its world position, and reorienting back to the
    original code gives the identical array and geometry (up to float rounding of the origin).
    Oblique volumes are matched by their closest axes; their directions stay oblique.
    The returned array is C-contiguous (a copy unless nothing changes).
    """
    target = _parse_code(code)
    current = axis_map(volume.direction)
    source_of_world = {world: (k, sign) for k, (world, sign) in enumerate(current)}
    perm: list[int] = []
    flips: list[bool] = []
    for world, sign in target:
        k, cur_sign = source_of_world[world]
        perm.append(k)
        flips.append(cur_sign != sign)
    if perm == [0, 1, 2] and not any(flips):
        return Volume(volume.array, volume.spacing, volume.origin, volume.direction, volume.meta)

    array = np.transpose(volume.array, perm)
    flip_axes = tuple(t for t, f in enumerate(flips) if f)
    if flip_axes:
        array = np.flip(array, axis=flip_axes)
    corner = np.zeros(3)
    for t, k in enumerate(perm):
        if flips[t]:
            corner[k] = max(volume.shape[k] - 1, 0)
    origin = volume.index_to_world(corner)
    signs = np.where(flips, -1.0, 1.0)
    direction = volume.direction[:, perm] * signs
    spacing = tuple(volume.spacing[k] for k in perm)
    return Volume(np.ascontiguousarray(array), spacing, tuple(origin), direction, volume.meta)
