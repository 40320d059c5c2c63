"""The training step replayed as a CUDA graph (fastseg.train._graph_step) and the capturable
optimizers it needs. The ``cuda`` tests run on a GPU machine (benchmarks/gpu_check.sh)."""

from __future__ import annotations

import copy

import pytest
import torch

from fastseg.errors import InputError
from fastseg.nn import DeepSupervisionLoss, DiceCELoss, build_model
from fastseg.train._config import load_config
from fastseg.train._graph_step import (
    WARMUP_STEPS,
    GraphCaptureError,
    GraphedStep,
    graph_obstacle,
)
from fastseg.train._optim import conform_optimizer, make_optimizer, set_learning_rate


def test_graph_obstacles() -> None:
    cuda = torch.device("cuda")
    assert graph_obstacle(cuda, torch.bfloat16, False) is None
    assert graph_obstacle(cuda, None, False) is None
    assert "cpu" in str(graph_obstacle(torch.device("cpu"), None, False))
    assert "GradScaler" in str(graph_obstacle(cuda, torch.float16, False))
    assert "DistributedDataParallel" in str(graph_obstacle(cuda, None, True))


def test_cuda_graph_config() -> None:
    assert load_config(None, None).training.cuda_graph == "off"
    assert (
        load_config(None, None, overrides={"training.cuda_graph": "auto"}).training.cuda_graph
        == "auto"
    )
    with pytest.raises(InputError, match=r"training\.cuda_graph"):
        load_config(None, None, overrides={"training": {"cuda_graph": "yes"}})
    with pytest.raises(InputError, match=r"training\.cuda_graph: on needs"):
        load_config(None, None, overrides={"training": {"cuda_graph": "on", "device": "cpu"}})
    with pytest.raises(InputError, match=r"training\.cuda_graph: on needs"):
        load_config(None, None, overrides={"training": {"cuda_graph": "on", "amp": "fp16"}})


def _steps(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter, n: int) -> None:
    for i in range(n):
        set_learning_rate(optimizer, 1e-2 * (1 - i / 10))
        optimizer.zero_grad()
        (param**2 + param).sum().backward()
        optimizer.step()


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_conform_optimizer_resumes_a_capturable_state_eagerly(name: str) -> None:
    """A checkpoint of a CUDA-graph run (tensor learning rate, capturable flags) resumes in an
    eager optimizer and gives the steps an eager run gives."""
    torch.manual_seed(0)
    start = torch.randn(7)
    eager_param = torch.nn.Parameter(start.clone())
    eager = make_optimizer([eager_param], name, 1e-2, 3e-5)
    _steps(eager, eager_param, 3)
    state = copy.deepcopy(eager.state_dict())
    for group in state["param_groups"]:  # as a capturable optimizer saves it
        group["lr"] = torch.tensor(group["lr"])
        if name == "adamw":
            group["capturable"] = True
        else:
            group["fused"] = True
    resumed_param = torch.nn.Parameter(eager_param.detach().clone())
    resumed = make_optimizer([resumed_param], name, 1e-2, 3e-5)
    resumed.load_state_dict(state)
    conform_optimizer(resumed, False)
    group = resumed.param_groups[0]
    assert isinstance(group["lr"], float)
    assert group.get("capturable", False) is False and not group.get("fused")
    _steps(eager, eager_param, 3)
    _steps(resumed, resumed_param, 3)
    torch.testing.assert_close(resumed_param, eager_param, rtol=0, atol=1e-7)


def test_capturable_sgd_matches_eager_on_cpu() -> None:
    """The fused SGD with a tensor learning rate that CUDA graphs use gives the eager steps."""
    torch.manual_seed(0)
    start = torch.randn(11)
    a, b = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    plain, fused = (
        make_optimizer([a], "sgd", 1e-2, 3e-5),
        make_optimizer([b], "sgd", 1e-2, 3e-5, capturable=True),
    )
    assert isinstance(fused.param_groups[0]["lr"], torch.Tensor)
    _steps(plain, a, 5)
    _steps(fused, b, 5)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-7)
    conform_optimizer(fused, True)  # already capturable: unchanged
    assert isinstance(fused.param_groups[0]["lr"], torch.Tensor)


def _setup(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    spec = {"name": "unet", "dimensions": 3, "in_channels": 1, "num_classes": 3,
            "widths": [8, 16, 32], "deep_supervision": True}  # fmt: skip
    model = build_model(spec).cuda().train()
    loss = DeepSupervisionLoss(DiceCELoss(include_background=False, check_labels=False))
    return model, loss


def _batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator(device="cuda").manual_seed(1)
    return [
        (
            torch.randn((2, 1, 16, 24, 20), generator=gen, device="cuda"),
            torch.randint(0, 3, (2, 16, 24, 20), generator=gen, device="cuda"),
        )
        for _ in range(n)
    ]


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["adamw", "sgd"])
@pytest.mark.parametrize("amp", [None, torch.bfloat16])
def test_graphed_step_trains_as_the_eager_step(
    name: str, amp: torch.dtype | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Warm-up, capture and replays give the parameters and losses of plain eager steps."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    model, loss_fn = _setup()
    twin = copy.deepcopy(model)
    batches = _batches(WARMUP_STEPS + 4)
    graphed_opt = make_optimizer(model.parameters(), name, 1e-3, 3e-5, capturable=True)
    step = GraphedStep(model, loss_fn, graphed_opt, amp, grad_clip=1.0)
    eager_opt = make_optimizer(twin.parameters(), name, 1e-3, 3e-5)
    graphed_losses, eager_losses = [], []
    for i, (x, y) in enumerate(batches):
        lr = 1e-3 * (1 - i / 20)
        set_learning_rate(graphed_opt, lr)
        set_learning_rate(eager_opt, lr)
        graphed_losses.append(float(step(x, y)))
        eager_opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=amp, enabled=amp is not None):
            loss = loss_fn(twin(x), y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
        eager_opt.step()
        eager_losses.append(float(loss))
    assert step.captured
    tol = 1e-4 if amp is None else 2e-2
    assert graphed_losses == pytest.approx(eager_losses, rel=tol, abs=tol)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=tol, atol=tol)
    with pytest.raises(ValueError, match="captured"):
        step(batches[0][0][:1], batches[0][1][:1])


@pytest.mark.cuda
def test_failed_capture_leaves_model_and_optimizer_as_they_were() -> None:
    """A loss that reads a value on the host cannot be captured: GraphCaptureError, with the
    parameters and the optimizer's state those of the warm-up steps, and eager steps go on."""
    model, dice = _setup()

    def syncing_loss(out: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        value = dice(out, y)
        if float(value) < 0:  # a host read-back: not allowed while capturing
            raise AssertionError("unreachable")
        return value

    optimizer = make_optimizer(model.parameters(), "adamw", 1e-3, 3e-5, capturable=True)
    step = GraphedStep(model, syncing_loss, optimizer, None, grad_clip=None)
    batches = _batches(WARMUP_STEPS + 1)
    for x, y in batches[:WARMUP_STEPS]:
        step(x, y)
    before = [p.detach().clone() for p in model.parameters()]
    steps_before = [s["step"].clone() for s in optimizer.state.values()]
    with pytest.raises(GraphCaptureError):
        step(*batches[-1])
    assert not step.captured
    torch.cuda.synchronize()
    for p, q in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    for s, t in zip(optimizer.state.values(), steps_before, strict=True):
        torch.testing.assert_close(s["step"], t, rtol=0, atol=0)
    conform_optimizer(optimizer, False)
    optimizer.zero_grad(set_to_none=True)
    syncing_loss(model(batches[-1][0]), batches[-1][1]).backward()
    optimizer.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
