"""Soft-Dice loss, forward + backward on CPU: fastseg's fused kernels against MONAI and plain PyTorch.

Logits (N, C, z, y, x) = (2, 3, 96, 96, 96) float32 and a random integer label map (2, 1, 96, 96, 96).
Every loss computes the same definition — softmax, one-hot target, squared denominators
1 - (2Σpt + 1e-5) / (Σp² + Σt² + 1e-5) per sample and class, mean over both (all classes) — and
the Dice + cross-entropy variants add the mean cross-entropy:

- fastseg: ``fastseg.nn.DiceLoss()`` and ``DiceCELoss()`` (fused native kernels, the defaults);
- MONAI: ``DiceLoss(softmax=True, to_onehot_y=True, squared_pred=True)`` and ``DiceCELoss(...)``;
- plain: the same formula in PyTorch (``fastseg.nn._losses.dice_loss_reference``: softmax and a
  one-hot tensor in memory), which is what the fused kernels replace.

All run in this one process on the same tensors, in interleaved rounds (so that load on a shared
machine hits them alike); the script checks that the values agree, then prints the median time of
forward + backward per loss and each peer's time divided by fastseg's. Run
``python benchmarks/bench_loss.py [--repeats R] [--size S]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch

from fastseg import _native
from fastseg.nn import DiceCELoss, DiceLoss
from fastseg.nn._losses import cross_entropy_reference, dice_loss_reference

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def losses() -> dict[str, LossFn]:
    from monai.losses import DiceCELoss as MonaiDiceCE
    from monai.losses import DiceLoss as MonaiDice

    def plain_dice(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return dice_loss_reference(x, t)

    def plain_dice_ce(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return dice_loss_reference(x, t) + cross_entropy_reference(x, t)

    return {
        "fastseg DiceLoss": DiceLoss(),
        "MONAI DiceLoss": MonaiDice(softmax=True, to_onehot_y=True, squared_pred=True),
        "plain Dice formula": plain_dice,
        "fastseg DiceCELoss": DiceCELoss(),
        "MONAI DiceCELoss": MonaiDiceCE(softmax=True, to_onehot_y=True, squared_pred=True),
        "plain Dice+CE formula": plain_dice_ce,
    }


def forward_backward(loss: LossFn, logits: torch.Tensor, target: torch.Tensor) -> float:
    x = logits.detach().requires_grad_()
    start = time.perf_counter()
    value = loss(x, target)
    value.backward()
    elapsed = time.perf_counter() - start
    assert x.grad is not None
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds (default 15)")
    parser.add_argument("--size", type=int, default=96, help="cube side in voxels (default 96)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)  # MONAI's deprecation chatter

    gen = torch.Generator().manual_seed(0)
    s = args.size
    logits = torch.randn(2, 3, s, s, s, generator=gen)
    target = torch.randint(0, 3, (2, 1, s, s, s), generator=gen)
    fns = losses()

    values = {name: float(fn(logits, target)) for name, fn in fns.items()}
    for kind in ("DiceLoss", "DiceCELoss"):
        ref = values[f"MONAI {kind}"]
        got = values[f"fastseg {kind}"]
        assert abs(got - ref) <= 1e-5 * max(1.0, abs(ref)), f"{kind}: fastseg {got} vs MONAI {ref}"

    for fn in fns.values():  # warm-up
        forward_backward(fn, logits, target)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.repeats):
        for name, fn in fns.items():
            times[name].append(forward_backward(fn, logits, target))
    median = {name: statistics.median(ts) for name, ts in times.items()}

    info = _native.build_info()
    print(
        f"logits (2, 3, {s}, {s}, {s}) float32, forward + backward, median of {args.repeats} rounds; "
        f"torch threads {torch.get_num_threads()}, fastseg OpenMP threads {info['openmp_threads']}"
    )
    print(f"{'loss':<24}{'value':>12}{'ms':>10}{'vs fastseg':>12}")
    for name in fns:
        base = "fastseg DiceLoss" if "CE" not in name else "fastseg DiceCELoss"
        ratio = median[name] / median[base]
        print(f"{name:<24}{values[name]:>12.6f}{median[name] * 1e3:>10.1f}{ratio:>11.2f}x")
    speedup = median["MONAI DiceLoss"] / median["fastseg DiceLoss"]
    print(f"fastseg DiceLoss is {speedup:.1f}x faster than MONAI DiceLoss (required: >= 3x)")


if __name__ == "__main__":
    main()
