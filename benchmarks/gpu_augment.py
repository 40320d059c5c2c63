"""GPU benchmark and check of fastseg.augment: a batch of 8 samples of 128³ (image + label) through
the full pipeline (affine + elastic + flips + every intensity step, all with p = 1) on CUDA tensors,
in samples/s, and the same drawn parameters on the CPU path compared with the GPU output.

Prints 'RESULT name|value|detail' lines that benchmarks/gpu_check.sh collects. Needs a CUDA build
of fastseg and a GPU; imports only numpy, torch and fastseg.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import torch

from fastseg.augment import Pipeline

N, SHAPE, SPACING = 8, (128, 128, 128), (1.5, 1.0, 1.0)
INTENSITY = ("noise", "blur", "brightness", "contrast", "lowres", "gamma", "bias_field")


def full_config() -> list[dict[str, Any]]:
    return [
        {
            "name": "affine",
            "p_rotation": 1.0,
            "p_scale": 1.0,
            "rotation": (-15, 15),
            "scale": (0.85, 1.15),
        },
        {"name": "elastic", "p": 1.0},
        {"name": "flip"},
        *({"name": n, "p": 1.0, "p_per_channel": 1.0} for n in INTENSITY),
    ]


def phantom(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    z, y, x = np.indices(SHAPE, dtype=np.float32)
    image = np.zeros((N, 1, *SHAPE), np.float32)
    label = np.zeros((N, *SHAPE), np.uint8)
    for k in range(N):
        c = rng.uniform(40, 88, 3)
        r = np.sqrt((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2)
        label[k] = (r < 25).astype(np.uint8) + (r < 12)
        image[k, 0] = 100.0 * label[k] + rng.normal(0, 10, SHAPE).astype(np.float32)
    return image, label


def timed(fn: Any, repeats: int) -> float:
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    card = torch.cuda.get_device_name()
    image, label = phantom(np.random.default_rng(0))
    gi = torch.from_numpy(image).cuda()
    gl = torch.from_numpy(label).cuda()
    pipeline = Pipeline(full_config())
    spatial = Pipeline(full_config()[:3])

    def gpu_run(p: Pipeline) -> Any:
        def run(i: int) -> None:
            p(gi, gl, seed=i, spacing=SPACING)
            torch.cuda.synchronize()

        return run

    params = pipeline.draw(100, image.shape)

    def gpu_kernels(i: int) -> None:
        pipeline.apply(gi, gl, params, spacing=SPACING)
        torch.cuda.synchronize()

    for p in (pipeline, spatial):
        gpu_run(p)(0)
    full_s = timed(gpu_run(pipeline), 30)
    spatial_s = timed(gpu_run(spatial), 30)
    kernels_s = timed(gpu_kernels, 30)
    cpu_s = timed(lambda i: pipeline.apply(image, label, params, spacing=SPACING), 3)

    cpu, cpu_label = pipeline.apply(image, label, params, spacing=SPACING)
    gpu, gpu_label = pipeline.apply(gi, gl, params, spacing=SPACING)
    gpu_np, gpu_label_np = gpu.cpu().numpy(), gpu_label.cpu().numpy()
    rel = float(np.abs(gpu_np - cpu).max() / max(np.abs(cpu).max(), 1e-12))
    mismatch = float((gpu_label_np != cpu_label).mean())

    print(f"RESULT augment {N}x128^3 full GPU|{N / full_s:.0f}|samples/s incl. drawing ({card})")
    print(
        f"RESULT augment {N}x128^3 full GPU kernels|{N / kernels_s:.0f}|samples/s, params pre-drawn ({card})"
    )
    print(f"RESULT augment {N}x128^3 affine+elastic GPU|{N / spatial_s:.0f}|samples/s ({card})")
    print(
        f"RESULT augment {N}x128^3 full CPU|{N / cpu_s:.1f}|samples/s (x{cpu_s / kernels_s:.0f} GPU)"
    )
    ok = rel < 1e-3 and mismatch < 1e-3
    print(
        f"RESULT augment GPU vs CPU|{'ok' if ok else 'MISMATCH'}|max rel diff {rel:.1e}, label mismatch {mismatch:.1e}"
    )


if __name__ == "__main__":
    main()
