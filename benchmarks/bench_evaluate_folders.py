"""`fastseg evaluate` end to end: N pairs of 160x160x96 NIfTI label maps, I/O included.

Writes N prediction/reference pairs (organ-like masks from bench_metrics.make_pair, shape
(z, y, x) = (96, 160, 160), spacing (2.5, 0.8, 0.8) mm, gzip NIfTI) into a work folder (not timed;
reused when present), then times `fastseg.metrics.evaluate_folders` (reading both files, all
metrics, CSV written), and prints pairs/s and the time for 1,000 pairs. Required (issue 3):
1,000 pairs in under a minute on 2 cores. Usage: python benchmarks/bench_evaluate_folders.py
[--pairs 1000] [--workdir DIR]. The pairs are made from 16 distinct masks, cycled.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_metrics import make_pair
from fastseg import io
from fastseg.metrics import evaluate_folders

SHAPE = (96, 160, 160)
SPACING = (2.5, 0.8, 0.8)


def write_pairs(root: Path, n: int) -> tuple[Path, Path]:
    pred_dir, ref_dir = root / "pred", root / "ref"
    masks = [make_pair(SHAPE, SPACING, (40.0, 30.0, 35.0), seed) for seed in range(16)]
    for i in range(n):
        name = f"case_{i:05d}.nii.gz"
        if (ref_dir / name).exists() and (pred_dir / name).exists():
            continue
        pred, ref = masks[i % len(masks)]
        io.write(io.Volume(pred, spacing=SPACING), pred_dir / name)
        io.write(io.Volume(ref, spacing=SPACING), ref_dir / name)
    return pred_dir, ref_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="fastseg-bench-eval-"))
    t0 = time.perf_counter()
    pred_dir, ref_dir = write_pairs(root, args.pairs)
    print(
        f"inputs: {args.pairs} pairs in {root} ({time.perf_counter() - t0:.0f} s to write, not timed)"
    )
    t0 = time.perf_counter()
    rows = evaluate_folders(pred_dir, ref_dir, root / "metrics.csv", progress=False)
    seconds = time.perf_counter() - t0
    assert len(rows) == args.pairs
    print(
        f"fastseg evaluate: {args.pairs} pairs in {seconds:.1f} s = {args.pairs / seconds:.1f} pairs/s"
    )
    print(f"1,000 pairs would take {1000 * seconds / args.pairs:.1f} s (bar: under 60 s)")


if __name__ == "__main__":
    main()
