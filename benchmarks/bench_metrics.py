"""Distance metrics: fastseg (every metric) against SimpleITK, surface-distance, MONAI and MedPy.

Pairs of organ-like masks (ellipsoids with a smooth random boundary; the prediction is the same
organ shifted, rescaled and differently perturbed) in two settings:

- ``mr``: 160x160x96 volumes, array shape (z, y, x) = (96, 160, 160), spacing (2.5, 0.8, 0.8) mm;
- ``ct``: 512x512x200 volumes, shape (200, 512, 512), spacing (1.5, 0.8, 0.8) mm, an organ of a
  few percent of the volume.

Every library runs on the same pairs in this one process; the script prints the median time per
pair and each peer's time divided by fastseg's (the ratio). What each computes:

- fastseg: dice, jaccard, vs, hd, hd95, avd, assd, nsd for the label (``fastseg.metrics.evaluate``);
- SimpleITK: HausdorffDistanceImageFilter (hd and average hd);
- surface-distance (DeepMind): surface distances, then robust hd95, average distance, surface dice;
- MONAI: compute_hausdorff_distance(percentile=95) (hd95 only);
- MedPy: medpy.metric.binary.hd95 (hd95 only).

Each library's time per pair is its best of several runs (peers run once per CT-sized pair); the
table shows the median over pairs. Run ``python benchmarks/bench_metrics.py`` (a few minutes) or
``--quick`` (about a minute). Shared machines make absolute times unstable; compare the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

Spacing = tuple[float, float, float]


def organ(
    shape: tuple[int, int, int],
    spacing: Spacing,
    center_mm: np.ndarray,
    radii_mm: np.ndarray,
    rng: np.random.Generator,
    roughness: float = 0.12,
) -> np.ndarray:
    """Bool mask (z, y, x) of an ellipsoid whose boundary is displaced by smooth noise."""
    sp = np.asarray(spacing)
    lo = np.maximum(((center_mm - 1.4 * radii_mm) / sp).astype(int), 0)
    hi = np.minimum(((center_mm + 1.4 * radii_mm) / sp).astype(int) + 1, shape)
    grid = np.meshgrid(
        *[(np.arange(a, b) * s) for a, b, s in zip(lo, hi, sp, strict=True)], indexing="ij"
    )
    level = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center_mm, radii_mm, strict=True))
    coarse = rng.normal(size=tuple(max(2, (b - a) // 8) for a, b in zip(lo, hi, strict=True)))
    noise = ndimage.zoom(
        ndimage.gaussian_filter(coarse, 1.0),
        [(b - a) / c for a, b, c in zip(lo, hi, coarse.shape, strict=True)],
        order=1,
    )
    noise = noise[: hi[0] - lo[0], : hi[1] - lo[1], : hi[2] - lo[2]]
    noise = noise / (np.abs(noise).max() + 1e-9)
    mask = np.zeros(shape, dtype=bool)
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = level * (1.0 + roughness * noise) < 1.0
    return mask


def make_pair(
    shape: tuple[int, int, int], spacing: Spacing, radii_mm: tuple[float, float, float], seed: int
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    extent = np.asarray(shape) * np.asarray(spacing)
    center = extent / 2 + rng.uniform(-0.1, 0.1, 3) * extent
    radii = np.asarray(radii_mm) * rng.uniform(0.9, 1.1, 3)
    ref = organ(shape, spacing, center, radii, rng)
    pred = organ(
        shape, spacing, center + rng.normal(0, 2.0, 3), radii * rng.uniform(0.93, 1.07, 3), rng
    )
    return pred.astype(np.uint8), ref.astype(np.uint8)


def run_fastseg(pred: np.ndarray, ref: np.ndarray, spacing: Spacing) -> float:
    from fastseg.metrics import evaluate

    return float(evaluate(pred, ref, spacing=spacing)[1]["hd95"])


def run_sitk(pred: np.ndarray, ref: np.ndarray, spacing: Spacing) -> float:
    import SimpleITK as sitk

    images = []
    for a in (pred, ref):
        img = sitk.GetImageFromArray(a)
        img.SetSpacing((spacing[2], spacing[1], spacing[0]))
        images.append(img)
    f = sitk.HausdorffDistanceImageFilter()
    f.Execute(images[0], images[1])
    f.GetAverageHausdorffDistance()
    return float("nan")  # no hd95


def run_surface_distance(pred: np.ndarray, ref: np.ndarray, spacing: Spacing) -> float:
    import surface_distance as sd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        d = sd.compute_surface_distances(ref.astype(bool), pred.astype(bool), spacing)
    sd.compute_average_surface_distance(d)
    sd.compute_surface_dice_at_tolerance(d, 1.0)
    return float(sd.compute_robust_hausdorff(d, 95))


def run_monai(pred: np.ndarray, ref: np.ndarray, spacing: Spacing) -> float:
    import torch
    from monai.metrics import compute_hausdorff_distance

    p = torch.from_numpy(pred.astype(bool))[None, None]
    r = torch.from_numpy(ref.astype(bool))[None, None]
    out = compute_hausdorff_distance(
        p, r, include_background=True, percentile=95, spacing=list(spacing)
    )
    return float(out.item())


def run_medpy(pred: np.ndarray, ref: np.ndarray, spacing: Spacing) -> float:
    from medpy.metric.binary import hd95

    return float(hd95(pred, ref, voxelspacing=spacing))


PEERS: dict[str, Callable[[np.ndarray, np.ndarray, Spacing], float]] = {
    "fastseg": run_fastseg,
    "SimpleITK": run_sitk,
    "surface-distance": run_surface_distance,
    "MONAI": run_monai,
    "MedPy": run_medpy,
}


def available(name: str) -> bool:
    module = {
        "fastseg": "fastseg",
        "SimpleITK": "SimpleITK",
        "surface-distance": "surface_distance",
        "MONAI": "monai",
        "MedPy": "medpy",
    }[name]
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def bench(
    setting: str,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    spacing: Spacing,
    repeats: int,
    peer_repeats: int,
) -> None:
    """Best of `repeats` (fastseg) or `peer_repeats` (peers) runs per pair, median over pairs."""
    fg = 100.0 * np.mean([r.mean() for _, r in pairs])
    print(
        f"\n== {setting}: {len(pairs)} pairs of shape {pairs[0][0].shape} (z, y, x), spacing {spacing} mm, organ {fg:.1f}% of the volume"
    )
    times: dict[str, float] = {}
    values: dict[str, float] = {}
    for name, fn in PEERS.items():
        if not available(name):
            print(f"{name:>17}: not installed, skipped")
            continue
        fn(*pairs[0], spacing)  # warm-up (imports, thread pools)
        per_pair = []
        for pred, ref in pairs:
            best = float("inf")
            for _ in range(repeats if name == "fastseg" else peer_repeats):
                t0 = time.perf_counter()
                fn(pred, ref, spacing)
                best = min(best, time.perf_counter() - t0)
            per_pair.append(best)
        times[name] = statistics.median(per_pair)
        values[name] = fn(*pairs[0], spacing)
    base = times.get("fastseg")
    for name, t in times.items():
        ratio = f"{t / base:7.1f}x" if base else "      -"
        hd95 = "" if np.isnan(values[name]) else f"   hd95(pair 0) = {values[name]:.3f} mm"
        print(f"{name:>17}: {1000 * t:9.1f} ms/pair   ratio {ratio}{hd95}")
    peers = {k: v for k, v in times.items() if k != "fastseg"}
    if base and peers:
        fastest = min(peers, key=lambda k: peers[k])
        print(f"fastseg vs the fastest peer ({fastest}): {peers[fastest] / base:.1f}x faster")


def main(argv: Any = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer pairs and repeats")
    parser.add_argument("--skip-ct", action="store_true", help="only the 160x160x96 pairs")
    args = parser.parse_args(argv)
    n_mr, n_ct, repeats = (3, 1, 3) if args.quick else (8, 2, 5)

    mr_spacing: Spacing = (2.5, 0.8, 0.8)
    mr = [make_pair((96, 160, 160), mr_spacing, (45.0, 28.0, 24.0), seed) for seed in range(n_mr)]
    bench("160x160x96", mr, mr_spacing, repeats, repeats)
    if not args.skip_ct:
        ct_spacing: Spacing = (1.5, 0.8, 0.8)
        ct = [
            make_pair((200, 512, 512), ct_spacing, (70.0, 80.0, 60.0), 100 + s) for s in range(n_ct)
        ]
        bench("512x512x200", ct, ct_spacing, repeats, 1)


if __name__ == "__main__":
    main()
