"""GPU benchmark of the HU window kernel: CUDA path vs the CPU (OpenMP) path on one 512x512x300 CT.

Prints 'RESULT ...' lines that benchmarks/gpu_check.sh collects. Needs a CUDA build and a GPU.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from fastseg import _native


def median_seconds(fn, repeats: int = 20) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(-1024, 2000, size=(300, 512, 512), dtype=np.int16)
    params = (-1000.0, 400.0, -1000.0, 1.0 / 1400.0)
    gpu = torch.from_numpy(image.astype(np.float32)).cuda()

    def run_gpu() -> None:
        _native.window(gpu, *params)
        torch.cuda.synchronize()

    run_gpu()
    cpu_s = median_seconds(lambda: _native.window(image, *params), repeats=5)
    gpu_s = median_seconds(run_gpu)
    np.testing.assert_allclose(
        _native.window(gpu, *params).cpu().numpy(),
        _native.window(image, *params),
        rtol=1e-6,
        atol=1e-7,
    )
    voxels = image.size
    print(f"RESULT window 512x512x300 CPU|{voxels / cpu_s / 1e9:.2f}|Gvox/s")
    print(
        f"RESULT window 512x512x300 GPU|{voxels / gpu_s / 1e9:.2f}|Gvox/s (x{cpu_s / gpu_s:.0f} vs CPU)"
    )


if __name__ == "__main__":
    main()
