"""GPU benchmark of the fused soft-Dice loss: forward + backward of fastseg's CUDA kernels against the
plain PyTorch formula, ``torch.compile`` of that formula and MONAI's DiceLoss (when installed).

Logits (2, 3, 96, 96, 96) (float32, then bfloat16) and an int64 label map on the GPU; every loss
computes softmax, one-hot, 1 - (2Σpt + 1e-5) / (Σp² + Σt² + 1e-5) per sample and class, mean.
fastseg's loss runs with ``check_labels=False``, as the trainer uses it (the labels are checked
once at start-up; MONAI checks none). Two timings per loss, medians of 30: eager (CUDA events
around a Python call of forward + backward: what a training loop pays, host overhead included)
and graphed (forward + backward captured once as a CUDA graph and replayed: the GPU's own time,
as in fastseg's CUDA-graph training step). Prints 'RESULT name|value|detail' lines that
benchmarks/gpu_check.sh collects. Needs a CUDA build and a GPU.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch

from fastseg.nn import DiceCELoss, DiceLoss
from fastseg.nn._losses import cross_entropy_reference, dice_loss_reference

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def plain_dice(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The formula without input checks (what torch.compile can trace as one graph)."""
    probs = torch.softmax(x.float(), dim=1)
    onehot = torch.nn.functional.one_hot(t[:, 0], x.shape[1]).movedim(-1, 1).to(probs.dtype)
    axes = tuple(range(2, x.dim()))
    inter = (probs * onehot).sum(axes)
    den = (probs * probs).sum(axes) + onehot.sum(axes)
    return 1 - ((2 * inter + 1e-5) / (den + 1e-5)).mean()


def median_ms(fn: LossFn, logits: torch.Tensor, target: torch.Tensor, repeats: int = 30) -> float:
    """Eager forward + backward, ms (median; 5 warm-up calls)."""
    times = []
    for i in range(repeats + 5):
        x = logits.detach().requires_grad_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn(x, target).backward()
        end.record()
        torch.cuda.synchronize()
        if i >= 5:
            times.append(start.elapsed_time(end))
    return statistics.median(times)


def graphed_ms(fn: LossFn, logits: torch.Tensor, target: torch.Tensor, repeats: int = 30) -> float:
    """Forward + backward captured as a CUDA graph, ms per replay (median)."""
    x = logits.detach().clone().requires_grad_()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            x.grad = None
            fn(x, target).backward()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    x.grad = None
    with torch.cuda.graph(graph):
        fn(x, target).backward()
    times = []
    for i in range(repeats + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(start.elapsed_time(end))
    return statistics.median(times)


def compare(name: str, fused: LossFn, others: dict[str, LossFn | None], logits: torch.Tensor,
            target: torch.Tensor) -> None:  # fmt: skip
    """RESULT lines of ``fused`` against each peer, eager and graphed."""
    for mode, timer in (("eager", median_ms), ("graphed", graphed_ms)):
        try:
            fused_ms = timer(fused, logits, target)
        except Exception as exc:
            print(f"RESULT {name} {mode}|failed|{type(exc).__name__}: {str(exc)[:200]}")
            continue
        ratios = []
        for peer, fn in others.items():
            if fn is None:
                ratios.append(f"{peer} n/a")
                continue
            try:
                ratios.append(f"x{timer(fn, logits, target) / fused_ms:.1f} vs {peer}")
            except Exception as exc:
                ratios.append(f"{peer} failed ({type(exc).__name__})")
        print(f"RESULT {name} {mode}|{fused_ms:.3f} ms|{', '.join(ratios)}")


def peers() -> dict[str, LossFn | None]:
    out: dict[str, LossFn | None] = {
        "plain": lambda x, t: dice_loss_reference(x, t),
        "torch.compile": None,
        "MONAI": None,
    }
    try:
        out["torch.compile"] = torch.compile(plain_dice)
    except Exception as exc:  # reported, not fatal: the fused numbers still stand
        print(f"torch.compile unavailable: {exc}")
    try:
        from monai.losses import DiceLoss as MonaiDice

        out["MONAI"] = MonaiDice(softmax=True, to_onehot_y=True, squared_pred=True)
    except ImportError:
        print("MONAI not installed: no MONAI ratio")
    return out


def main() -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    shape = (2, 3, 96, 96, 96)
    target = torch.randint(0, 3, (2, 1, *shape[2:]), generator=gen, device="cuda")
    fused = DiceLoss(check_labels=False)
    others = peers()
    for dtype in (torch.float32, torch.bfloat16):
        logits = torch.randn(shape, generator=gen, device="cuda").to(dtype)
        expected = float(dice_loss_reference(logits.double(), target))
        got = float(fused(logits, target))
        assert abs(got - expected) < 1e-5, f"fused {got} vs reference {expected}"
        compare(f"Dice fwd+bwd 2x3x96^3 {str(dtype).removeprefix('torch.')}", fused, others,
                logits, target)  # fmt: skip
    logits = torch.randn(shape, generator=gen, device="cuda")
    fused_ce = DiceCELoss(check_labels=False)

    def plain_ce(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return dice_loss_reference(x, t) + cross_entropy_reference(x, t)

    expected = float(plain_ce(logits.double(), target))
    got = float(fused_ce(logits, target))
    assert abs(got - expected) < 1e-5, f"fused Dice+CE {got} vs reference {expected}"
    compare("DiceCE fwd+bwd 2x3x96^3 float32", fused_ce, {"plain": plain_ce}, logits, target)


if __name__ == "__main__":
    main()
