"""Tri-planar (axial, coronal, sagittal) views with label overlays, written as PNG.

Display follows the radiological convention: axial slices are seen from the feet (patient
right on the image left, anterior at the top), coronal slices from the front (patient right
on the left, superior at the top), sagittal slices from the patient's left (anterior on the
left, superior at the top). Each panel is drawn at its physical aspect ratio (spacing in mm).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fastseg._atomic import atomic_path
from fastseg.errors import GeometryMismatchError, InputError
from fastseg.report._overlay import check_labels, label_color, overlay_rgb
from fastseg.report._window import resolve_window

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Display frame: array axis 0 -> superior, 1 -> posterior, 2 -> patient left ("LPS" in the
# NIfTI/ITK letters for x, y, z). As (RAS world axis, sign) per display axis:
_DISPLAY_AXES = ((2, 1.0), (1, -1.0), (0, -1.0))


def _parts(
    x: object, name: str
) -> tuple[np.ndarray, tuple[float, float, float] | None, np.ndarray | None]:
    """Array, spacing and direction of an array or a Volume-like (``.array``, ``.spacing``,
    optional ``.direction``)."""
    spacing = direction = None
    if hasattr(x, "array"):
        spacing = tuple(float(s) for s in x.spacing)  # type: ignore[attr-defined]
        if getattr(x, "direction", None) is not None:
            direction = np.asarray(x.direction, dtype=np.float64)  # type: ignore[attr-defined]
        x = x.array
    array = np.asarray(x)
    if array.ndim != 3:
        hint = " (select one channel first)" if array.ndim == 4 else ""
        raise InputError(f"{name} must be a 3-d (z, y, x) volume, got shape {array.shape}{hint}")
    if 0 in array.shape:
        raise InputError(f"{name} is empty (shape {array.shape})")
    return array, spacing, direction  # type: ignore[return-value]


def _check_spacing(spacing: object) -> tuple[float, float, float]:
    try:
        values = tuple(float(s) for s in spacing)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise InputError(f"spacing must be 3 numbers (z, y, x) in mm, got {spacing!r}") from None
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise InputError(f"spacing must be 3 positive numbers (z, y, x) in mm, got {spacing!r}")
    return values


def _display_transform(direction: np.ndarray | None) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Axis permutation and flips taking the array to the display frame (identity when the
    direction is unknown or too oblique to map onto the body axes)."""
    identity = ((0, 1, 2), (False, False, False))
    if direction is None or direction.shape != (3, 3):
        return identity
    world = np.argmax(np.abs(direction), axis=0)
    if sorted(world.tolist()) != [0, 1, 2]:
        return identity
    perm, flips = [], []
    for world_axis, sign in _DISPLAY_AXES:
        k = int(np.flatnonzero(world == world_axis)[0])
        perm.append(k)
        flips.append(bool(np.sign(direction[world_axis, k]) != sign))
    return tuple(perm), tuple(flips)


def _to_display(array: np.ndarray, perm: Sequence[int], flips: Sequence[bool]) -> np.ndarray:
    out = np.transpose(array, perm)
    for axis, flip in enumerate(flips):
        if flip:
            out = np.flip(out, axis)
    return out


def label_center(
    label: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> tuple[int, int, int]:
    """The foreground voxel ``(z, y, x)`` nearest (in mm) to the centroid of ``label > 0``, so
    all three views through it show the label; the volume centre when the label is empty."""
    fg = np.asarray(label) > 0
    if fg.ndim != 3:
        raise InputError(f"label must be a 3-d (z, y, x) array, got shape {fg.shape}")
    total = int(fg.sum())
    if total == 0:
        return tuple(int(n) // 2 for n in fg.shape)  # type: ignore[return-value]
    sz, sy, sx = (float(s) for s in spacing)
    centroid = [
        float(np.dot(fg.sum(axis=tuple(a for a in range(3) if a != axis)), np.arange(n))) / total
        for axis, n in enumerate(fg.shape)
    ]
    nearest = tuple(round(c) for c in centroid)
    if fg[nearest]:
        return nearest  # type: ignore[return-value]
    best, best_d = nearest, math.inf
    for z in np.flatnonzero(fg.any(axis=(1, 2))):
        yx = np.argwhere(fg[z])
        d = (
            ((z - centroid[0]) * sz) ** 2
            + ((yx[:, 0] - centroid[1]) * sy) ** 2
            + ((yx[:, 1] - centroid[2]) * sx) ** 2
        )
        i = int(np.argmin(d))
        if d[i] < best_d:
            best_d, best = float(d[i]), (int(z), int(yx[i, 0]), int(yx[i, 1]))
    return best  # type: ignore[return-value]


def _unit_rgb(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    return (rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)


def _label_names(label_names: object) -> dict[int, str]:
    if label_names is None:
        return {}
    if not isinstance(label_names, Mapping):
        raise InputError(
            f"label_names must be a mapping {{label value: name}}, got {type(label_names).__name__}"
        )
    try:
        return {int(k): str(v) for k, v in label_names.items()}
    except (TypeError, ValueError):
        raise InputError("label_names keys must be label values (ints or digit strings)") from None


def triplanar_figure(
    image: object,
    label: object = None,
    *,
    spacing: Sequence[float] | None = None,
    window: object = None,
    center: Sequence[int] | None = None,
    title: str | None = None,
    label_names: Mapping[Any, str] | None = None,
    alpha: float = 0.4,
    crosshair: bool = False,
    dpi: int = 100,
) -> Figure:
    """A matplotlib Figure (no pyplot state) with axial, coronal and sagittal views.

    Arguments as for :func:`save_triplanar`.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    array, vol_spacing, direction = _parts(image, "image")
    if spacing is None:
        spacing = vol_spacing if vol_spacing is not None else (1.0, 1.0, 1.0)
    elif vol_spacing is not None and not np.allclose(_check_spacing(spacing), vol_spacing):
        raise InputError(
            f"spacing={tuple(spacing)} contradicts the image Volume's spacing {vol_spacing}"
        )
    spacing = _check_spacing(spacing)
    labels = None
    if label is not None:
        labels, lab_spacing, lab_direction = _parts(label, "label")
        if labels.shape != array.shape:
            raise GeometryMismatchError(
                f"label has shape {labels.shape}, but image has shape {array.shape}"
            )
        if direction is None:
            direction = lab_direction
        elif lab_direction is not None and not np.allclose(direction, lab_direction, atol=1e-4):
            raise GeometryMismatchError("label and image Volumes have different directions")
        if lab_spacing is not None and not np.allclose(lab_spacing, spacing, rtol=1e-4):
            raise GeometryMismatchError(
                f"label spacing {lab_spacing} differs from the image spacing {spacing}"
            )
        labels = check_labels(labels, "label")
    names = _label_names(label_names)
    width, level = resolve_window(window, array)
    if not 0.0 <= float(alpha) <= 1.0:
        raise InputError(f"alpha must be in [0, 1], got {alpha!r}")

    if center is None:
        center = label_center(labels, spacing) if labels is not None else None
        if center is None:
            center = tuple(n // 2 for n in array.shape)
    try:
        center = tuple(int(c) for c in center)
    except (TypeError, ValueError):
        raise InputError(f"center must be 3 voxel indices (z, y, x), got {center!r}") from None
    if len(center) != 3 or not all(0 <= c < n for c, n in zip(center, array.shape, strict=True)):
        raise InputError(f"center {center} is not a voxel (z, y, x) of shape {array.shape}")

    perm, flips = _display_transform(direction)
    vol = _to_display(array, perm, flips)
    lab = _to_display(labels, perm, flips) if labels is not None else None
    sz, sy, sx = (spacing[k] for k in perm)
    nz, ny, nx = vol.shape
    cz, cy, cx = (
        (vol.shape[a] - 1 - center[k]) if flip else center[k]
        for a, (k, flip) in enumerate(zip(perm, flips, strict=True))
    )

    def cut(volume: np.ndarray, view: str) -> np.ndarray:
        if view == "axial":
            return volume[cz]
        if view == "coronal":
            return volume[::-1, cy, :]
        return volume[::-1, :, cx]

    # (view, physical width, height in mm, edge letters left/right/top/bottom, crosshair x/y mm)
    views = (
        ("axial", nx * sx, ny * sy, "RLAP", ((cx + 0.5) * sx, (cy + 0.5) * sy)),
        ("coronal", nx * sx, nz * sz, "RLSI", ((cx + 0.5) * sx, (nz - cz - 0.5) * sz)),
        ("sagittal", ny * sy, nz * sz, "APSI", ((cy + 0.5) * sy, (nz - cz - 0.5) * sz)),
    )
    visible: set[int] = set()
    panels = []
    for view, *_ in views:
        label_slice = cut(lab, view) if lab is not None else None
        if label_slice is not None:
            visible.update(int(v) for v in np.unique(label_slice) if v > 0)
        panels.append(overlay_rgb(cut(vol, view), label_slice, (width, level), alpha))
    ncol = min(len(visible), 8) or 1
    total_w = sum(v[1] for v in views)
    max_h = max(v[2] for v in views)
    scale = min(11.0 / total_w, 6.0 / max_h)
    head, foot = 0.7, 0.15 + 0.22 * math.ceil(len(visible) / ncol)
    fig = Figure(
        figsize=(total_w * scale + 1.0, max_h * scale + head + foot), dpi=dpi, facecolor="black"
    )
    grid = fig.add_gridspec(
        1,
        3,
        width_ratios=[v[1] for v in views],
        left=0.02,
        right=0.98,
        top=1 - head / fig.get_figheight(),
        bottom=foot / fig.get_figheight(),
        wspace=0.08,
    )
    for i, (rgb, (view, w_mm, h_mm, letters, (hx, hy))) in enumerate(
        zip(panels, views, strict=True)
    ):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(rgb, extent=(0.0, w_mm, h_mm, 0.0), aspect="equal", interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(view, color="white", fontsize=10)
        style: dict[str, Any] = {"color": "yellow", "fontsize": 9, "fontweight": "bold"}
        ax.text(0.01, 0.5, letters[0], transform=ax.transAxes, ha="left", va="center", **style)
        ax.text(0.99, 0.5, letters[1], transform=ax.transAxes, ha="right", va="center", **style)
        ax.text(0.5, 0.99, letters[2], transform=ax.transAxes, ha="center", va="top", **style)
        ax.text(0.5, 0.01, letters[3], transform=ax.transAxes, ha="center", va="bottom", **style)
        if crosshair:
            ax.axvline(hx, color="cyan", linewidth=0.6, alpha=0.7)
            ax.axhline(hy, color="cyan", linewidth=0.6, alpha=0.7)
    where = f"centre voxel (z, y, x) = {center}, window W {width:.4g} / L {level:.4g}"
    fig.suptitle(f"{title}\n{where}" if title else where, color="white", fontsize=10)
    if visible:
        handles = [
            Patch(facecolor=_unit_rgb(label_color(v)), label=names.get(v, f"label {v}"))
            for v in sorted(visible)
        ]
        fig.legend(
            handles=handles,
            loc="lower center",
            ncol=ncol,
            frameon=False,
            labelcolor="white",
            fontsize=8,
        )
    return fig


def save_triplanar(
    path: str | os.PathLike[str],
    image: object,
    label: object = None,
    *,
    spacing: Sequence[float] | None = None,
    window: object = None,
    center: Sequence[int] | None = None,
    title: str | None = None,
    label_names: Mapping[Any, str] | None = None,
    alpha: float = 0.4,
    crosshair: bool = False,
    dpi: int = 100,
) -> Path:
    """Write a PNG with axial, coronal and sagittal slices through ``center``.

    Parameters
    ----------
    path : output ``.png`` (parent folders are created; written atomically).
    image : 3-d intensities ``(z, y, x)``, or a Volume (anything with ``.array``,
        ``.spacing`` and optionally ``.direction``).
    label : integer label map of the same shape (array or Volume), 0 = background; each label
        is overlaid in its :data:`PALETTE` colour, with a legend of the labels in view.
    spacing : voxel size ``(z, y, x)`` in mm; default: the Volume's, else ``(1, 1, 1)``.
    window : None (1st-99th percentile of the volume), ``"lung"`` (1500, -600), ``"soft"``
        (400, 40), ``"bone"`` (1800, 400), ``"W,L"`` or ``(width, level)`` in HU.
    center : voxel ``(z, y, x)``; default :func:`label_center` of the label, else the volume
        centre.
    title : first line of the figure title (the second states centre and window).
    label_names : ``{label value: name}`` for the legend (MSD ``dataset.json`` string keys
        work).
    alpha, crosshair, dpi : label opacity, crosshair lines through the centre, PNG resolution.

    Orientation: a Volume is turned to the radiological display described in this module
    (its direction says where patient left, posterior and superior are). A plain array is
    assumed to be stored with x towards the patient's left, y posterior, z superior (LPS, as
    an axial DICOM series read through SimpleITK); other layouts display mirrored.
    """
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise InputError(f"path {str(out)!r} must end in .png")
    fig = triplanar_figure(
        image,
        label,
        spacing=spacing,
        window=window,
        center=center,
        title=title,
        label_names=label_names,
        alpha=alpha,
        crosshair=crosshair,
        dpi=dpi,
    )
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(out, ".png") as tmp:
        fig.savefig(tmp, format="png", facecolor=fig.get_facecolor())
    return out
