"""Tri-planar PNGs of the real hippocampus MR and chest CT (read with nibabel)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from fastseg.report import label_center, save_triplanar, triplanar_figure

pytestmark = pytest.mark.realdata


def _volume(path: Path) -> SimpleNamespace:
    import nibabel as nib

    img: Any = nib.load(path)
    cols = img.affine[:3, :3][:, [2, 1, 0]]  # (z, y, x) array axes
    spacing = np.linalg.norm(cols, axis=0)
    array = np.asarray(img.dataobj).transpose(2, 1, 0)
    return SimpleNamespace(array=array, spacing=tuple(spacing), direction=cols / spacing)


def test_hippocampus_overlay(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "hippocampus"
    names = json.loads((root / "dataset.json").read_text())["labels"]
    case = sorted((root / "labelsTr").glob("*.nii.gz"))[0]
    image, label = _volume(root / "imagesTr" / case.name), _volume(case)
    out = save_triplanar(tmp_path / "hippo.png", image, label, label_names=names)
    assert imread(out).shape[1] > 400
    fig = triplanar_figure(image, label, label_names=names)
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert legend == {str(names["1"]), str(names["2"])}
    assert label.array[label_center(label.array, label.spacing)] > 0


def test_chest_ct_lung_window(shared_data: Path, tmp_path: Path) -> None:
    ct = _volume(shared_data / "ct" / "chest_ct_lps.nii.gz")
    out = save_triplanar(tmp_path / "ct.png", ct, window="lung", title="chest CT")
    pixels = imread(out)[..., :3]
    assert pixels.std() > 0.1
