"""Volume: a 3-d array in ``(z, y, x)`` order with its place in the world (RAS+ millimetres)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fastseg.errors import InputError

_UNIT_TOL = 1e-3


def _vector3(value: Any, name: str) -> tuple[float, float, float]:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise InputError(f"{name}: expected 3 finite numbers in (z, y, x) order, got {value!r}")
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def _direction(value: Any) -> npt.NDArray[np.float64]:
    arr = np.array(value, dtype=np.float64)
    if arr.shape != (3, 3) or not np.all(np.isfinite(arr)):
        raise InputError(f"direction: expected a finite 3x3 matrix, got {value!r}")
    norms = np.linalg.norm(arr, axis=0)
    if np.any(np.abs(norms - 1.0) > _UNIT_TOL):
        raise InputError(
            f"direction: columns must be unit vectors, got column norms {norms.tolist()}"
        )
    arr /= norms
    if abs(np.linalg.det(arr)) < 1e-6:
        raise InputError(
            f"direction: matrix is singular (columns are not independent): {arr.tolist()}"
        )
    arr.setflags(write=False)
    return arr


class Volume:
    """A 3-d image or label map with its geometry.

    Parameters
    ----------
    array : array-like, shape ``(z, y, x)``
        Voxel values, C order. Multi-channel images are handled as several Volumes.
    spacing : (z, y, x) voxel size in millimetres, all > 0.
    origin : RAS+ world position (mm) of voxel index ``(0, 0, 0)``, as (R, A, S) coordinates.
    direction : 3x3; column ``k`` is the RAS+ unit vector of array axis ``k`` (0 = z, 1 = y, 2 = x).
    meta : non-identifying extras (e.g. ``{"modality": "CT"}``).
    """

    __slots__ = ("array", "direction", "meta", "origin", "spacing")

    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: npt.NDArray[np.float64]
    meta: dict[str, Any]

    def __init__(
        self,
        array: npt.ArrayLike,
        spacing: Sequence[float] = (1.0, 1.0, 1.0),
        origin: Sequence[float] = (0.0, 0.0, 0.0),
        direction: npt.ArrayLike | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        arr = np.asarray(array)
        if arr.ndim != 3:
            raise InputError(
                f"array: expected 3 dimensions (z, y, x), got shape {arr.shape}; "
                "handle multi-channel images as one Volume per channel"
            )
        self.array = arr
        self.spacing = _vector3(spacing, "spacing")
        if min(self.spacing) <= 0.0:
            raise InputError(f"spacing: expected positive millimetres, got {self.spacing}")
        self.origin = _vector3(origin, "origin")
        self.direction = _direction(np.eye(3) if direction is None else direction)
        self.meta = dict(meta) if meta else {}

    @classmethod
    def from_affine(
        cls, array: npt.ArrayLike, affine: npt.ArrayLike, meta: dict[str, Any] | None = None
    ) -> Volume:
        """Build from a 4x4 affine mapping voxel index ``(z, y, x, 1)`` to RAS+ mm."""
        aff = np.asarray(affine, dtype=np.float64)
        if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
            raise InputError(f"affine: expected a finite 4x4 matrix, got {affine!r}")
        linear = aff[:3, :3]
        spacing = np.linalg.norm(linear, axis=0)
        if np.any(spacing <= 0.0):
            raise InputError(f"affine: a column of the 3x3 part is zero: {aff.tolist()}")
        return cls(array, tuple(spacing), tuple(aff[:3, 3]), linear / spacing, meta)

    @property
    def affine(self) -> npt.NDArray[np.float64]:
        """4x4 mapping voxel index ``(z, y, x, 1)`` to RAS+ millimetres."""
        aff = np.eye(4)
        aff[:3, :3] = self.direction * np.asarray(self.spacing)
        aff[:3, 3] = self.origin
        return aff

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        s = self.array.shape
        return (int(s[0]), int(s[1]), int(s[2]))

    @property
    def orientation(self) -> str:
        """Orientation code of array axes x, y, z as a NIfTI viewer shows it, e.g. ``"RAS"``.

        Each letter is the world direction in which that axis' index increases (nibabel's
        ``aff2axcodes`` convention); oblique directions give the closest axes.
        """
        from fastseg.io._orientation import axcodes

        return axcodes(self.direction)

    def with_array(self, array: npt.ArrayLike) -> Volume:
        """A Volume with the same geometry and meta and a new array of the same shape."""
        arr = np.asarray(array)
        if arr.shape != self.array.shape:
            raise InputError(
                f"array: with_array keeps the geometry, so the shape must stay {self.array.shape}, "
                f"got {arr.shape}"
            )
        return Volume(arr, self.spacing, self.origin, self.direction, self.meta)

    def index_to_world(self, index: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """RAS+ mm of voxel indices ``(..., 3)`` given in ``(z, y, x)`` order."""
        idx = np.asarray(index, dtype=np.float64)
        return idx @ (self.direction * np.asarray(self.spacing)).T + np.asarray(self.origin)

    def world_to_index(self, world: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Continuous voxel indices ``(z, y, x)`` of RAS+ mm points ``(..., 3)``."""
        pts = np.asarray(world, dtype=np.float64) - np.asarray(self.origin)
        linear = self.direction * np.asarray(self.spacing)
        return np.linalg.solve(linear, pts.reshape(-1, 3).T).T.reshape(pts.shape)

    def geometry_difference(self, other: Volume, atol: float = 1e-3) -> str | None:
        """None when shape and geometry agree within ``atol`` (mm, and unitless for direction),
        else a short description such as ``"spacing (1.0, 1.0, 1.0) vs (1.0, 1.0, 1.2)"``."""
        diffs = []
        if self.shape != other.shape:
            diffs.append(f"shape {self.shape} vs {other.shape}")
        if not np.allclose(self.spacing, other.spacing, rtol=0.0, atol=atol):
            diffs.append(f"spacing {_fmt(self.spacing)} vs {_fmt(other.spacing)}")
        if not np.allclose(self.origin, other.origin, rtol=0.0, atol=atol):
            diffs.append(f"origin {_fmt(self.origin)} vs {_fmt(other.origin)}")
        if not np.allclose(self.direction, other.direction, rtol=0.0, atol=atol):
            diffs.append(
                f"direction {_fmt(self.direction.ravel())} vs {_fmt(other.direction.ravel())} "
                f"({self.orientation} vs {other.orientation})"
            )
        return "; ".join(diffs) or None

    def same_geometry(self, other: Volume, atol: float = 1e-3) -> bool:
        """Same shape, and spacing, origin (mm) and direction equal within ``atol``."""
        return self.geometry_difference(other, atol) is None

    def equals(self, other: Volume, atol: float = 0.0) -> bool:
        """Identical array (values, shape and dtype) and geometry within ``atol``."""
        return (
            self.array.dtype == other.array.dtype
            and self.same_geometry(other, atol)
            and bool(
                np.array_equal(self.array, other.array, equal_nan=self.array.dtype.kind in "fc")
            )
        )

    def __repr__(self) -> str:
        return (
            f"Volume(shape={self.shape}, dtype={self.array.dtype}, spacing={_fmt(self.spacing)}, "
            f"origin={_fmt(self.origin)}, orientation={self.orientation!r})"
        )


def _fmt(values: Any) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in values) + ")"
