"""Labels-only inference of a large CT-sized volume keeps memory O(slab), not O(volume x classes).

Each check runs in a child process and reads its peak resident set (VmHWM) before and after the
call; the input volume is allocated before the first reading, so the growth is what inference
adds: the ring buffer, the label map and temporaries.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np, torch
    from fastseg.infer import sliding_window_inference

    z, patch_z = int(sys.argv[1]), int(sys.argv[2])

    def peak():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM"))

    torch.manual_seed(0)
    model = torch.nn.Conv3d(1, 14, 1).eval()
    image = np.random.default_rng(0).standard_normal((z, 512, 512), dtype=np.float32)
    before = peak()
    labels = sliding_window_inference(model, image, (patch_z, 128, 128), (0.25, 0.0, 0.0))
    after = peak()
    # A 1x1x1 convolution gives every voxel the same logits in every window: check the labels
    # against direct forward passes, a few rows at a time.
    with torch.inference_mode():
        for i in range(0, z, 16):
            direct = torch.max(model(torch.from_numpy(image[None, None, i : i + 16]))[0], 0)
            assert np.array_equal(labels[i : i + 16], direct.indices.numpy()), i
    print(before, after, labels.dtype, labels.shape)
    """
)


def run_child(z: int, patch_z: int) -> tuple[int, str]:
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(z), str(patch_z)],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    before, after, *rest = result.stdout.split()
    return int(after) - int(before), " ".join(rest)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc (Linux)")
def test_512x512x200_with_14_classes_stays_far_below_the_logits_size() -> None:
    growth, info = run_child(200, 16)
    full_logits = 14 * 200 * 512 * 512 * 4  # 2.9 GB
    assert info == "uint8 (200, 512, 512)"
    # Ring buffer 14 x 16 x 512 x 512 float32 (235 MB) + labels (52 MB) + temporaries.
    assert growth < full_logits / 4, f"peak RSS grew by {growth / 2**20:.0f} MiB"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs /proc (Linux)")
def test_512x512x1000_ct_runs_within_a_few_hundred_mb() -> None:
    growth, info = run_child(1000, 16)
    full_logits = 14 * 1000 * 512 * 512 * 4  # 14.7 GB
    assert info == "uint8 (1000, 512, 512)"
    assert growth < 1 << 30 and growth < full_logits / 12, f"grew by {growth / 2**20:.0f} MiB"
