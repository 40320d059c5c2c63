"""Synthetic chest CT phantoms in Hounsfield units, with a label map.

Each phantom is a scaled-down chest (about 12 cm wide): air (−1000 HU) around a body with a fat
layer (≈ −100 HU) and soft tissue (≈ 40 HU); two lungs (≈ −850 HU) with a few vessels (soft tissue
density, labelled lung) running out from the hilum; heart (≈ 45 HU) and liver (≈ 60 HU) that shape
the lungs' medial side and the right diaphragm dome; a spine (vertebral bodies and arches, ≈ +700
HU, with discs and spinal canal) and ribs (≈ +700 HU); and 1–3 lesions (≈ 80–120 HU, solid
nodules of 3.5–8 mm radius, some lobulated) inside the lungs.

Labels: 0 background (air, soft tissue, fat, heart, liver, discs, canal), 1 lung, 2 bone, 3 lesion.

Sizes, positions, intensities and a smooth random deformation of the whole anatomy vary per case.
The image is rendered on a 2x finer grid and averaged (partial-volume effect), blurred slightly
(scanner point-spread function) and given Gaussian noise of 10–20 HU; labels are the class at each
voxel centre. Coordinates are millimetres from the volume centre: z superior, y anterior, x toward
the patient's left (array axes (z, y, x); the written geometry is LAS-oriented, x → left).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from fastseg.errors import InputError

LABELS: dict[int, str] = {0: "background", 1: "lung", 2: "bone", 3: "lesion"}
"""Label values of the phantoms and their names."""

DEFAULT_SHAPE: tuple[int, int, int] = (48, 64, 80)
DEFAULT_SPACING: tuple[float, float, float] = (2.5, 1.5, 1.5)

Coords = tuple[np.ndarray, np.ndarray, np.ndarray]
MaskFn = Callable[[Coords], np.ndarray]
Box = tuple[tuple[float, float] | None, tuple[float, float] | None, tuple[float, float] | None]
FULL: Box = (None, None, None)


@dataclass(frozen=True)
class _Paint:
    """Set ``hu`` (and ``label`` unless None) where ``mask`` holds and the label is in ``within``.

    ``box`` bounds the mask per axis (z, y, x) in mm (None: unbounded), so rendering can skip the
    rest of the grid.
    """

    mask: MaskFn
    hu: float
    label: int | None
    box: Box = FULL
    within: tuple[int, ...] | None = None


def _ball_box(center: Sequence[float], radius: float) -> Box:
    return (
        (center[0] - radius, center[0] + radius),
        (center[1] - radius, center[1] + radius),
        (center[2] - radius, center[2] + radius),
    )


def _ellipsoid(center: Sequence[float], radii: Sequence[float], angle: float = 0.0) -> MaskFn:
    cz, cy, cx = center
    rz, ry, rx = radii
    c, s = np.cos(angle), np.sin(angle)

    def mask(p: Coords) -> np.ndarray:
        z, y, x = p[0] - cz, p[1] - cy, p[2] - cx
        u, v = c * x - s * y, s * x + c * y
        return np.asarray((z / rz) ** 2 + (v / ry) ** 2 + (u / rx) ** 2 <= 1.0)

    return mask


def _cylinder(cy: float, cx: float, ry: float, rx: float, taper: float = 0.0) -> MaskFn:
    """Elliptic cylinder along z; its radii scale by ``1 + taper * z / 100 mm``."""

    def mask(p: Coords) -> np.ndarray:
        f = 1.0 + taper * p[0] / 100.0
        return np.asarray(((p[1] - cy) / (ry * f)) ** 2 + ((p[2] - cx) / (rx * f)) ** 2 <= 1.0)

    return mask


def _slabs(period: float, thickness: float, phase: float) -> MaskFn:
    def mask(p: Coords) -> np.ndarray:
        return np.asarray(np.abs((p[0] - phase + period / 2) % period - period / 2) < thickness / 2)

    return mask


def _both(a: MaskFn, b: MaskFn) -> MaskFn:
    return lambda p: a(p) & b(p)


def _rib(
    z0: float, cy: float, ry: float, rx: float, radius: float, drop: float, arc: tuple[float, float]
) -> MaskFn:
    """A rib pair: tubes along the ellipse (ry, rx) around the body axis, mirrored left/right.

    ``arc`` bounds the angle from the posterior midline (radians); the rib descends by ``drop`` mm
    from back to front.
    """

    def mask(p: Coords) -> np.ndarray:
        z, y, x = p[0], p[1] - cy, p[2]
        rho = np.sqrt((y / ry) ** 2 + (x / rx) ** 2) + 1e-9
        reach = np.sqrt(y**2 + x**2) / rho
        theta = np.arctan2(np.abs(x), -y)
        dz = z - (z0 - drop * theta / np.pi)
        dist2 = ((rho - 1.0) * reach) ** 2 + dz**2
        return np.asarray((dist2 <= radius**2) & (theta >= arc[0]) & (theta <= arc[1]))

    return mask


def _segment(a: np.ndarray, b: np.ndarray, radius: float) -> MaskFn:
    ab = b - a
    length2 = float(ab @ ab)

    def mask(p: Coords) -> np.ndarray:
        t = ((p[0] - a[0]) * ab[0] + (p[1] - a[1]) * ab[1] + (p[2] - a[2]) * ab[2]) / length2
        t = np.clip(t, 0.0, 1.0)
        d2 = sum((p[k] - (a[k] + t * ab[k])) ** 2 for k in range(3))
        return np.asarray(d2 <= radius**2)

    return mask


def _axes(shape: Sequence[int], spacing: Sequence[float], factor: int) -> list[np.ndarray]:
    """Per axis, millimetre coordinates from the volume centre of a ``factor``-times finer grid."""
    axes = []
    for n, s in zip(shape, spacing, strict=True):
        fine = (np.arange(n * factor) + 0.5) / factor - 0.5
        axes.append(((fine - (n - 1) / 2) * s).astype(np.float32))
    return axes


class _Warp:
    """A smooth random displacement (a few sinusoids, ``amplitude`` mm, wavelengths 60–140 mm)."""

    def __init__(self, rng: np.random.Generator, amplitude: float, terms: int = 3) -> None:
        k = rng.normal(size=(3, terms, 3))
        k *= (2 * np.pi / rng.uniform(60, 140, size=(3, terms, 1))) / np.linalg.norm(
            k, axis=-1, keepdims=True
        )
        self.k = k.astype(np.float32)
        self.phase = rng.uniform(0, 2 * np.pi, size=(3, terms)).astype(np.float32)
        self.amplitude = np.float32(amplitude / np.sqrt(terms))
        self.max_shift = float(amplitude * np.sqrt(terms))

    def __call__(self, axes: Sequence[np.ndarray]) -> Coords:
        z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
        out = []
        for axis, base in enumerate((z, y, x)):
            d = np.zeros(np.broadcast_shapes(z.shape, y.shape, x.shape), dtype=np.float32)
            for k, ph in zip(self.k[axis], self.phase[axis], strict=True):
                d += np.sin(z * k[0] + y * k[1] + x * k[2] + ph)
            out.append(base + self.amplitude * d)
        return out[0], out[1], out[2]


def _anatomy(rng: np.random.Generator, extent_z: float) -> list[_Paint]:
    """Everything but the lesions, in painting order; sizes in mm."""
    ax = rng.uniform(47, 55)  # body half-width (left-right)
    ay = ax * rng.uniform(0.68, 0.8)  # half-depth (anterior-posterior)
    cy = rng.uniform(-3, 3)
    taper = rng.uniform(-0.12, 0.05)
    fat = rng.uniform(2.5, 5.0)
    soft = rng.uniform(35, 50)
    body_in = (ay - fat, ax - fat)
    paints = [
        _Paint(_cylinder(cy, 0.0, ay, ax, taper), rng.uniform(-110, -90), 0),
        _Paint(_cylinder(cy, 0.0, *body_in, taper), soft, 0),
    ]
    rib_radius = rng.uniform(2.8, 3.6)
    rib_ry, rib_rx = (body_in[0] - rib_radius - 1.5, body_in[1] - rib_radius - 1.5)
    chest = _cylinder(cy, 0.0, rib_ry - rib_radius - 1.5, rib_rx - rib_radius - 1.5)
    lung_hu = rng.uniform(-870, -820)
    lung_top = rng.uniform(0.30, 0.45) * extent_z
    lung_rz = rng.uniform(38, 48)
    for side in (-1.0, 1.0):
        center = (
            lung_top - lung_rz,
            cy - rng.uniform(0.0, 0.12) * ay,
            side * rng.uniform(0.4, 0.46) * ax,
        )
        radii = (lung_rz, rng.uniform(0.58, 0.7) * ay, rng.uniform(0.36, 0.42) * ax)
        paints.append(
            _Paint(
                _both(_ellipsoid(center, radii, side * rng.uniform(-0.25, 0.1)), chest),
                lung_hu + rng.uniform(-10, 10),
                1,
                _ball_box(center, max(radii)),
            )
        )
    hilum_z = lung_top - lung_rz * rng.uniform(0.7, 1.0)
    for side in (-1.0, 1.0):
        start = np.array([hilum_z, cy, side * 0.22 * ax])
        for _ in range(int(rng.integers(3, 6))):
            direction = rng.normal(size=3) * np.array([1.0, 0.6, 0.3])
            direction[2] = side * abs(direction[2]) + side * 0.8
            direction /= np.linalg.norm(direction)
            end = start + direction * rng.uniform(25, 40)
            radius = rng.uniform(1.0, 1.8)
            box = tuple(
                (min(start[a], end[a]) - radius, max(start[a], end[a]) + radius) for a in range(3)
            )
            paints.append(_Paint(_segment(start, end, radius), soft, None, box, (1,)))  # type: ignore[arg-type]
    center = (hilum_z - rng.uniform(10, 20), cy + 0.25 * ay, rng.uniform(0.08, 0.18) * ax)
    radii = (rng.uniform(28, 36), rng.uniform(0.4, 0.5) * ay, rng.uniform(0.32, 0.4) * ax)
    heart = _ellipsoid(center, radii, rng.uniform(0.2, 0.5))
    paints.append(_Paint(heart, rng.uniform(40, 50), 0, _ball_box(center, max(radii))))
    liver_z = lung_top - 2 * lung_rz + rng.uniform(-12, -2)
    center = (liver_z - 25, cy + 0.05 * ay, -rng.uniform(0.15, 0.35) * ax)
    radii = (rng.uniform(30, 38), 0.75 * ay, rng.uniform(0.55, 0.7) * ax)
    paints.append(
        _Paint(_ellipsoid(center, radii), rng.uniform(55, 65), 0, _ball_box(center, max(radii)))
    )

    bone = rng.uniform(620, 780)
    spine_y = cy - ay + fat + rng.uniform(22, 26)
    body_r = rng.uniform(8.5, 11)
    arch_y = spine_y - body_r - rng.uniform(4, 6)
    period, phase = rng.uniform(20, 26), rng.uniform(0, 20)
    vertebra = _cylinder(spine_y, 0.0, body_r * 0.85, body_r)
    spine_box: Box = (None, (arch_y - 8.0, spine_y + body_r), (-body_r, body_r))
    paints += [
        _Paint(vertebra, bone, 2, spine_box),
        _Paint(_cylinder(arch_y, 0.0, 7.5, 8.0), bone, 2, spine_box),
        _Paint(_cylinder(arch_y, 0.0, 4.0, 4.5), rng.uniform(5, 25), 0, spine_box),
        _Paint(_both(vertebra, _slabs(period, 4.5, phase)), rng.uniform(70, 90), 0, spine_box),
    ]
    z = extent_z / 2 + rng.uniform(0, 10)
    while z > -extent_z / 2 - 20:
        drop = rng.uniform(10, 18)
        paints.append(
            _Paint(
                _rib(z, cy, rib_ry, rib_rx, rib_radius, drop, (0.22 * np.pi, 0.78 * np.pi)),
                bone + rng.uniform(-40, 40),
                2,
                ((z - drop - rib_radius, z + rib_radius), None, None),
            )
        )
        z -= rng.uniform(17, 22)
    return paints


def _lesions(
    rng: np.random.Generator, lung: np.ndarray, points: Coords, spacing: Sequence[float], count: int
) -> list[_Paint]:
    """``count`` nodules centred inside the lung mask (on the voxel grid of ``points``)."""
    depth = ndimage.distance_transform_edt(lung, sampling=spacing)
    paints = []
    for _ in range(count):
        radius = rng.uniform(3.5, 8.0)
        candidates = np.flatnonzero(depth >= 0.8 * radius)
        if candidates.size == 0:
            candidates = np.flatnonzero(depth >= depth.max() * 0.8)
        index = np.unravel_index(int(rng.choice(candidates)), lung.shape)
        center = [float(np.broadcast_to(points[a], lung.shape)[index]) for a in range(3)]
        hu = rng.uniform(80, 120)
        lobes = int(rng.integers(1, 3))
        for lobe in range(lobes):
            offset = rng.normal(size=3) * radius * 0.4 * lobe
            radii = radius * rng.uniform(0.8, 1.15, size=3) * (0.75 if lobe else 1.0)
            c = [center[a] + offset[a] for a in range(3)]
            mask = _ellipsoid(c, radii.tolist(), rng.uniform(0, np.pi))
            paints.append(_Paint(mask, hu, 3, _ball_box(c, float(radii.max()))))
    return paints


def _render(
    paints: Sequence[_Paint], axes: Sequence[np.ndarray], points: Coords, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """Paint onto the grid whose unwarped axes are ``axes`` and warped coordinates ``points``.

    ``margin`` (mm) bounds the warp's displacement, so a box maps to an index range.
    """
    shape = tuple(len(a) for a in axes)
    hu = np.full(shape, -1000.0, dtype=np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    full = tuple(np.broadcast_to(p, shape) for p in points)
    for paint in paints:
        region = []
        for axis, bounds in zip(axes, paint.box, strict=True):
            if bounds is None:
                region.append(slice(None))
            else:
                lo, hi = np.searchsorted(axis, [bounds[0] - margin, bounds[1] + margin])
                region.append(slice(int(lo), int(hi)))
        sl = tuple(region)
        inside = paint.mask((full[0][sl], full[1][sl], full[2][sl]))
        if paint.within is not None:
            inside &= np.isin(label[sl], paint.within)
        hu[sl][inside] = paint.hu
        if paint.label is not None:
            label[sl][inside] = paint.label
    return hu, label


def make_phantom(
    seed: int | np.random.Generator,
    shape: Sequence[int] = DEFAULT_SHAPE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    supersample: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """One phantom: ``(image, label)``, int16 HU and uint8 labels (:data:`LABELS`), both ``(z, y, x)``.

    ``shape`` in voxels and ``spacing`` in mm are ``(z, y, x)``; the anatomy has a fixed physical
    size (about 120 mm left-right), so the grid should cover roughly 120 x 100 x 120 mm. The same
    seed gives the same phantom.
    """
    shape = tuple(int(n) for n in shape)
    spacing = tuple(float(s) for s in spacing)
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"shape: expected three positive sizes (z, y, x), got {shape}")
    if len(spacing) != 3 or min(spacing) <= 0:
        raise InputError(
            f"spacing: expected three positive spacings (z, y, x) in mm, got {spacing}"
        )
    if supersample < 1:
        raise InputError(f"supersample: expected >= 1, got {supersample}")
    rng = np.random.default_rng(seed)
    extent_z = shape[0] * spacing[0]
    anatomy = _anatomy(rng, extent_z)
    warp = _Warp(rng, amplitude=rng.uniform(2.0, 5.0))
    margin = warp.max_shift + 1.0
    axes = _axes(shape, spacing, 1)
    centres = warp(axes)
    _, label = _render(anatomy, axes, centres, margin)
    paints = anatomy + _lesions(rng, label == 1, centres, spacing, int(rng.integers(1, 4)))
    _, label = _render(paints, axes, centres, margin)

    fine_axes = _axes(shape, spacing, supersample)
    fine, _ = _render(paints, fine_axes, warp(fine_axes), margin)
    f = supersample
    image = fine.reshape(shape[0], f, shape[1], f, shape[2], f).mean(axis=(1, 3, 5))
    image = ndimage.gaussian_filter(image, sigma=[0.6 / s * min(spacing) for s in spacing])
    image += rng.normal(0.0, rng.uniform(10.0, 20.0), size=image.shape)
    return np.clip(np.rint(image), -1024, 3071).astype(np.int16), label
