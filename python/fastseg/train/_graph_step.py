"""The training step — forward, loss, backward, gradient clipping, optimizer step — captured once
as a CUDA graph and replayed for every batch.

A small-patch 3D U-Net step is a thousand-odd short kernels; launched one by one from Python the
GPU idles between them (the H200 was busy 45% of the time training MSD hippocampus eagerly,
waiting for data 3% of it). Replaying the captured graph launches them all at once. What a
captured step needs: fixed batch shapes (the patch size is fixed), no host syncs inside it (the
fused Dice loss with ``check_labels=False``, ``clip_grad_norm_`` without ``error_if_nonfinite``),
an optimizer whose step runs on the device (:func:`fastseg.train._optim.make_optimizer` with
``capturable=True``: the learning rate is a device tensor), no GradScaler (fp16) and no
DistributedDataParallel. Batches are ``(N, C, z, y, x)`` images and ``(N, z, y, x)`` labels on
the GPU; they are copied into the graph's own input buffers before each replay.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import nn

WARMUP_STEPS = 3
"""Eager steps before the capture (on a side stream, as CUDA graphs need): cuDNN picks its
kernels and the optimizer creates its state in them."""


class GraphCaptureError(RuntimeError):
    """The step could not be captured as a CUDA graph (a host sync or an unsupported op in it)."""


def graph_obstacle(
    device: torch.device, amp_dtype: torch.dtype | None, distributed: bool
) -> str | None:
    """Why the training step cannot run as a CUDA graph here, or None when it can."""
    if device.type != "cuda":
        return f"the device is {device.type}, not cuda"
    if amp_dtype == torch.float16:
        return "fp16 autocast needs a GradScaler, which syncs with the host every step"
    if distributed:
        return "DistributedDataParallel's gradient buckets are not captured"
    return None


class GraphedStep:
    """``step(image, label) -> loss`` (a detached scalar tensor on the device): the first
    :data:`WARMUP_STEPS` calls run eagerly, the next captures the step and replays it, every
    later call replays it. Each call is one real optimizer step on its batch."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable[[torch.Tensor | list[torch.Tensor], torch.Tensor], torch.Tensor],
        optimizer: torch.optim.Optimizer,
        amp_dtype: torch.dtype | None,
        grad_clip: float | None,
    ) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.amp_dtype = amp_dtype
        self.grad_clip = grad_clip
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.graph: torch.cuda.CUDAGraph | None = None
        self.eager_steps = 0
        self._image: torch.Tensor | None = None
        self._label: torch.Tensor | None = None
        self._loss: torch.Tensor | None = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        # no cast cache: a captured graph must not reuse weights cast in an earlier replay
        return torch.autocast("cuda", dtype=self.amp_dtype, cache_enabled=False)

    def _step(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            loss = self.loss_fn(self.model(image), label)
        loss.backward()
        if self.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.grad_clip, foreach=True)
        self.optimizer.step()
        return loss.detach()

    @contextlib.contextmanager
    def _side_stream(self) -> Iterator[None]:
        current = torch.cuda.current_stream()
        side = torch.cuda.Stream(device=current.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            yield
        current.wait_stream(side)

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        if self.graph is not None:
            assert self._image is not None and self._label is not None and self._loss is not None
            if image.shape != self._image.shape or label.shape != self._label.shape:
                raise ValueError(
                    f"GraphedStep: batch shapes {tuple(image.shape)}, {tuple(label.shape)} differ "
                    f"from the captured {tuple(self._image.shape)}, {tuple(self._label.shape)}"
                )
            self._image.copy_(image, non_blocking=True)
            self._label.copy_(label, non_blocking=True)
            self.graph.replay()
            return self._loss.clone()
        if self.eager_steps < WARMUP_STEPS:
            self.eager_steps += 1
            with self._side_stream(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*running without .* graph capture")
                self.optimizer.zero_grad(set_to_none=True)
                return self._step(image, label)
        return self._capture(image, label)

    def _capture(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Captures the step on this batch's buffers, then replays it once (the capture itself
        runs nothing). Raises :class:`GraphCaptureError` when the capture fails; the model and
        the optimizer's state are then as before and the batch is not yet trained on."""
        self._image, self._label = image.clone(), label.clone()
        torch.cuda.synchronize()
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._loss = self._step(self._image, self._label)
        except Exception as exc:
            self.optimizer.zero_grad(set_to_none=True)
            self._image = self._label = self._loss = None
            raise GraphCaptureError(f"{type(exc).__name__}: {exc}") from exc
        self.graph = graph
        graph.replay()
        assert self._loss is not None
        return self._loss.clone()
