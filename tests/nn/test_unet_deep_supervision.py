"""DeepSupervisionLoss against a hand-written weighted sum; nnU-Net v2 weights; target scaling."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fastseg.errors import InputError
from fastseg.nn import DeepSupervisionLoss, DiceCELoss, UNet, deep_supervision_weights


def test_nnunet_weights() -> None:
    assert deep_supervision_weights(1) == [1.0]
    assert deep_supervision_weights(2) == [1.0, 0.0]
    assert deep_supervision_weights(3) == pytest.approx([2 / 3, 1 / 3, 0.0])
    assert deep_supervision_weights(4) == pytest.approx([1 / 1.75, 0.5 / 1.75, 0.25 / 1.75, 0])
    with pytest.raises(InputError, match="outputs"):
        deep_supervision_weights(0)


def test_matches_hand_written_weighted_sum() -> None:
    torch.manual_seed(0)
    target = torch.randint(0, 3, (2, 8, 7, 5))
    outputs = [
        torch.randn(2, 3, 8, 7, 5, requires_grad=True),
        torch.randn(2, 3, 4, 4, 3, requires_grad=True),
        torch.randn(2, 3, 2, 2, 2, requires_grad=True),
        torch.randn(2, 3, 1, 1, 1, requires_grad=True),
    ]
    loss = DeepSupervisionLoss(F.cross_entropy)(outputs, target)
    expected = (
        1.0 * F.cross_entropy(outputs[0], target)
        + 0.5 * F.cross_entropy(outputs[1], target[:, ::2, ::2, ::2])
        + 0.25 * F.cross_entropy(outputs[2], target[:, ::4, ::4, ::4])
    ) / 1.75
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert outputs[3].grad is not None and not outputs[3].grad.any()  # weight 0, still in graph
    assert all(o.grad is not None and o.grad.any() for o in outputs[:3])


def test_custom_weights_and_scales_with_fastseg_loss() -> None:
    torch.manual_seed(1)
    target = torch.randint(0, 2, (1, 3, 9, 6))
    outputs = [torch.randn(1, 2, 3, 9, 6), torch.randn(1, 2, 3, 5, 3)]
    dice_ce = DiceCELoss()
    loss = DeepSupervisionLoss(dice_ce, weights=[0.7, 0.3], scales=[(1, 1, 1), (1, 2, 2)])
    expected = 0.7 * dice_ce(outputs[0], target) + 0.3 * dice_ce(outputs[1], target[:, :, ::2, ::2])
    torch.testing.assert_close(loss(outputs, target), expected)


def test_scale_inferred_as_power_of_two_for_odd_sizes() -> None:
    seen: list[torch.Tensor] = []

    def record(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        seen.append(target)
        return logits.sum() * 0

    target = torch.arange(9 * 5).reshape(1, 1, 9, 5)
    outputs = [torch.zeros(1, 2, 1, 9, 5), torch.zeros(1, 2, 1, 3, 2)]
    DeepSupervisionLoss(record, weights=[1, 1])(outputs, target)
    assert torch.equal(seen[1], target[:, :, ::4, ::4])  # ceil(9/4) = 3, ceil(5/4) = 2


def test_2d_model_scales_on_slices() -> None:
    torch.manual_seed(2)
    model = UNet(2, 1, 2, widths=(2, 4, 4), deep_supervision=True).train()
    x, target = torch.randn(2, 1, 3, 7, 9), torch.randint(0, 2, (2, 3, 7, 9))
    outputs = model(x)
    explicit = DeepSupervisionLoss(F.cross_entropy, scales=model.deep_supervision_scales)
    inferred = DeepSupervisionLoss(F.cross_entropy)
    expected = F.cross_entropy(outputs[0], target)  # weights [1, 0]
    torch.testing.assert_close(explicit(outputs, target), expected)
    torch.testing.assert_close(inferred(outputs, target), expected)


def test_single_tensor_passes_straight_through() -> None:
    logits, target = torch.randn(2, 3, 4, 4, 4), torch.randint(0, 3, (2, 4, 4, 4))
    loss = DeepSupervisionLoss(F.cross_entropy)
    torch.testing.assert_close(loss(logits, target), F.cross_entropy(logits, target))
    torch.testing.assert_close(loss([logits], target), F.cross_entropy(logits, target))


def test_bad_arguments() -> None:
    target = torch.randint(0, 2, (1, 6, 6, 6))
    outputs = [torch.randn(1, 2, 6, 6, 6), torch.randn(1, 2, 3, 3, 3)]
    with pytest.raises(InputError, match="weights"):
        DeepSupervisionLoss(F.cross_entropy, weights=[1, -1])
    with pytest.raises(InputError, match="weights"):
        DeepSupervisionLoss(F.cross_entropy, weights=[0, 0])
    with pytest.raises(InputError, match="loss"):
        DeepSupervisionLoss("ce")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="3 weights"):
        DeepSupervisionLoss(F.cross_entropy, weights=[1, 1, 1])(outputs, target)
    with pytest.raises(InputError, match="scales"):
        DeepSupervisionLoss(F.cross_entropy, scales=[(1, 1, 1)])(outputs, target)
    with pytest.raises(InputError, match="power of two"):
        DeepSupervisionLoss(F.cross_entropy, weights=[1, 1])(
            [outputs[0], torch.randn(1, 2, 7, 3, 3)], target
        )
    with pytest.raises(InputError, match="outputs"):
        DeepSupervisionLoss(F.cross_entropy)([], target)
