"""Whole-case validation sees the case as training does: windows padded with the normalised
minimum of each channel (not zero, which after z-scoring is mid-grey tissue)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fastseg.store import Store
from fastseg.train._validate import predict_case


def test_validation_pads_with_the_training_pad_value(tiny_store: Path) -> None:
    store = Store.open(tiny_store)
    case_id = store.cases[0]
    case = store[case_id]
    patch = tuple(s + 6 for s in case.shape)  # larger than the case: every window is padded
    seen: list[torch.Tensor] = []

    def model(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return torch.zeros(x.shape[0], 3, *x.shape[2:])

    predict_case(model, store, case_id, patch, 0.5, torch.device("cpu"), amp=False)  # type: ignore[arg-type]
    (window,) = seen
    pad = np.float32(case.normalized_pad_values[0])
    assert pad < -0.5  # z-scored MR: the minimum is well below the mean
    image = window[0, 0].numpy()
    inner = tuple(slice(3, 3 + s) for s in case.shape)
    np.testing.assert_array_equal(image[inner], case.image()[0])
    border = np.ones(image.shape, dtype=bool)
    border[inner] = False
    assert np.all(image[border] == pad)
