"""Slow, obvious references for the metrics of DESIGN.md (MedPy, MONAI, DeepMind, SciPy)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

Spacing = Sequence[float]


def voxel_surface(mask: np.ndarray) -> np.ndarray:
    """DESIGN.md's ∂X: voxels of X with a 6-neighbour outside X, outside the array counting."""
    cross = ndimage.generate_binary_structure(3, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=cross, border_value=0)


def directed_surface_distances(a: np.ndarray, m: np.ndarray, spacing: Spacing) -> np.ndarray:
    """d(x, ∂M) for every x in ∂A, in mm."""
    dist = ndimage.distance_transform_edt(~voxel_surface(m), sampling=spacing)
    return dist[voxel_surface(a)]


def medpy_hd(a: np.ndarray, m: np.ndarray, spacing: Spacing) -> float:
    from medpy.metric.binary import hd

    return float(hd(a, m, voxelspacing=spacing))


def medpy_hd95(a: np.ndarray, m: np.ndarray, spacing: Spacing) -> float:
    """MedPy's hd95: the 95th percentile of both directed distance sets pooled."""
    from medpy.metric.binary import hd95

    return float(hd95(a, m, voxelspacing=spacing))


def medpy_assd(a: np.ndarray, m: np.ndarray, spacing: Spacing) -> float:
    """Mean of MedPy's two directed mean surface distances (asd). MedPy >= 0.5's own ``assd``
    pools both distance sets before averaging instead, which weights the larger surface more."""
    from medpy.metric.binary import asd

    return 0.5 * (float(asd(a, m, voxelspacing=spacing)) + float(asd(m, a, voxelspacing=spacing)))


def monai_hd95(a: np.ndarray, m: np.ndarray, spacing: Spacing) -> float:
    """MONAI's hd95: max of the two directed 95th percentiles (torch.quantile, float32)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch
        from monai.metrics import compute_hausdorff_distance

        out = compute_hausdorff_distance(
            torch.from_numpy(a[None, None].copy()),
            torch.from_numpy(m[None, None].copy()),
            include_background=True,
            percentile=95,
            directed=False,
            spacing=[float(s) for s in spacing],
        )
    return float(out.item())


def avd(a: np.ndarray, m: np.ndarray, spacing: Spacing) -> float:
    """Taha & Hanbury's average Hausdorff distance over all voxels, via SciPy's EDT."""
    d_am = ndimage.distance_transform_edt(~m, sampling=spacing)[a].mean()
    d_ma = ndimage.distance_transform_edt(~a, sampling=spacing)[m].mean()
    return float(max(d_am, d_ma))


def avd_pairwise(a: np.ndarray, m: np.ndarray, spacing: Spacing) -> float:
    """The same by brute force over all voxel pairs (small masks only)."""
    pa = np.argwhere(a) * np.asarray(spacing)
    pm = np.argwhere(m) * np.asarray(spacing)
    d = np.sqrt(((pa[:, None, :] - pm[None, :, :]) ** 2).sum(-1))
    return float(max(d.min(axis=1).mean(), d.min(axis=0).mean()))


def deepmind_nsd(a: np.ndarray, m: np.ndarray, spacing: Spacing, tolerance: float) -> float:
    """DeepMind surface-distance's surface Dice (its package must be installed)."""
    import surface_distance

    with warnings.catch_warnings():
        # The package reaches scipy.ndimage through namespaces deprecated in SciPy 1.8+.
        warnings.simplefilter("ignore", DeprecationWarning)
        d = surface_distance.compute_surface_distances(m, a, [float(s) for s in spacing])
    return float(surface_distance.compute_surface_dice_at_tolerance(d, tolerance))
