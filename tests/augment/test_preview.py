"""save_preview writes a PNG grid: input plus n draws, three planes each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastseg.augment import Pipeline, default_config, save_preview
from fastseg.errors import InputError


def test_preview_png(tmp_path: Path) -> None:
    import matplotlib.image

    rng = np.random.default_rng(0)
    image = rng.normal(size=(20, 24, 28)).astype(np.float32)
    label = np.zeros((20, 24, 28), np.uint8)
    label[5:15, 8:16, 10:20] = 1
    label[8:12, 10:14, 12:16] = 2
    out = save_preview(
        image,
        label,
        Pipeline(default_config()),
        tmp_path / "sub" / "p.png",
        n=3,
        spacing=(2.0, 1.0, 1.0),
    )
    assert out == tmp_path / "sub" / "p.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(out)
    assert pixels.shape[1] > pixels.shape[0]  # 4 columns, 3 rows
    assert [p.name for p in out.parent.iterdir()] == ["p.png"]  # no temporary left behind


def test_preview_without_label_and_bad_n(tmp_path: Path) -> None:
    image = np.ones((1, 6, 6, 6), np.float32)
    assert save_preview(
        image, None, Pipeline([{"name": "flip"}]), tmp_path / "a.png", n=1
    ).is_file()
    with pytest.raises(InputError, match="n: expected a positive integer"):
        save_preview(image, None, Pipeline([]), tmp_path / "b.png", n=0)
    with pytest.raises(InputError, match="image: expected"):
        save_preview(np.ones((6, 6)), None, Pipeline([]), tmp_path / "c.png")
