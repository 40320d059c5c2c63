"""Tri-planar figures and PNGs: centre, physical aspect, orientation, legend, atomic write."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.image import imread

from fastseg.errors import GeometryMismatchError, InputError
from fastseg.report import PALETTE, label_center, save_triplanar, triplanar_figure

LPS = np.array([[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])  # columns: z->S, y->P, x->L


def _scene(shape: tuple[int, int, int] = (20, 30, 26)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.normal(0.0, 100.0, shape)
    label = np.zeros(shape, dtype=np.uint8)
    label[4:12, 10:20, 6:14] = 1
    label[6:9, 12:15, 8:11] = 2
    return image, label


def _panels(fig: object) -> list[np.ndarray]:
    return [np.asarray(ax.images[0].get_array()) for ax in fig.axes]  # type: ignore[attr-defined]


def test_label_center_box_ring_empty() -> None:
    label = np.zeros((9, 11, 13), bool)
    label[2:7, 3:8, 4:11] = True
    assert label_center(label) == (4, 5, 7)
    ring = np.zeros((5, 21, 21), bool)
    yy, xx = np.mgrid[:21, :21]
    ring[2] = np.abs(np.hypot(yy - 10, xx - 10) - 7) < 1
    centre = label_center(ring)
    assert ring[centre] and centre[0] == 2
    assert label_center(np.zeros((4, 6, 9))) == (2, 3, 4)


def test_label_center_nearest_in_mm() -> None:
    label = np.zeros((11, 11, 11), bool)
    label[5, 5, 0] = label[5, 5, 10] = True  # two voxels 5 voxels from the centroid along x
    label[0, 5, 5] = True  # one 5 voxels away along z: nearer only when z spacing is small
    assert label_center(label, (0.5, 1.0, 1.0)) == (0, 5, 5)
    assert label_center(label, (3.0, 1.0, 1.0))[2] in (0, 10)


def test_default_centre_is_label_centre() -> None:
    image, label = _scene()
    fig = triplanar_figure(image, label)
    assert f"centre voxel (z, y, x) = {label_center(label)}" in fig.texts[0].get_text()
    axial = _panels(fig)[0]
    assert (axial[..., 0] != axial[..., 1]).any()  # the label shows in the axial view


def test_without_label_centre_is_volume_centre() -> None:
    image, _ = _scene()
    fig = triplanar_figure(image)
    assert "(10, 15, 13)" in fig.texts[0].get_text()
    assert not fig.legends


def test_explicit_centre_selects_slices() -> None:
    image, label = _scene()
    fig = triplanar_figure(image, label, center=(0, 0, 0), window=(400, 40), alpha=1.0)
    axial, coronal, sagittal = _panels(fig)
    assert not (axial[..., 0] != axial[..., 1]).any()
    grey = np.rint(np.clip((image[0] - (40 - 200)) / 400, 0, 1) * 255)
    np.testing.assert_array_equal(axial[..., 0], grey)
    assert coronal.shape[:2] == (20, 26) and sagittal.shape[:2] == (20, 30)


def test_anisotropic_spacing_sets_physical_extent() -> None:
    image, label = _scene()
    iso = triplanar_figure(image, label)
    aniso = triplanar_figure(image, label, spacing=(3.0, 0.8, 0.5))
    nz, ny, nx = image.shape
    assert [ax.images[0].get_extent() for ax in iso.axes] == [
        [0, nx, ny, 0],
        [0, nx, nz, 0],
        [0, ny, nz, 0],
    ]
    extents = np.array([ax.images[0].get_extent() for ax in aniso.axes])
    np.testing.assert_allclose(
        extents,
        [[0, nx * 0.5, ny * 0.8, 0], [0, nx * 0.5, nz * 3.0, 0], [0, ny * 0.8, nz * 3.0, 0]],
    )
    assert all(ax.get_aspect() == 1.0 for ax in aniso.axes)


def test_plain_array_is_displayed_radiologically() -> None:
    image = np.zeros((10, 12, 14))
    image[7, 2, 11] = 1000.0  # superior, anterior, patient left (LPS array)
    fig = triplanar_figure(image, center=(7, 2, 11), window=(10, 5))
    axial, coronal, sagittal = (p[..., 0] for p in _panels(fig))
    assert np.argwhere(axial == 255).tolist() == [[2, 11]]  # anterior at top, left on the right
    assert np.argwhere(coronal == 255).tolist() == [[2, 11]]  # superior at the top
    assert np.argwhere(sagittal == 255).tolist() == [[2, 2]]  # anterior on the left


def test_volume_orientation_is_undone() -> None:
    image, label = _scene()
    spacing = (2.0, 1.0, 0.7)
    reference = _panels(triplanar_figure(image, label, spacing=spacing, center=(5, 12, 9)))
    lps = SimpleNamespace(array=image, spacing=spacing, direction=LPS)
    ras_dir = LPS.copy()
    ras_dir[:, 1:] *= -1
    ras = SimpleNamespace(array=image[:, ::-1, ::-1], spacing=spacing, direction=ras_dir)
    ras_label = SimpleNamespace(array=label[:, ::-1, ::-1], spacing=spacing, direction=ras_dir)
    sag = SimpleNamespace(
        array=np.transpose(image, (2, 1, 0)), spacing=spacing[::-1], direction=LPS[:, ::-1]
    )
    cases = [
        (lps, label, (5, 12, 9)),
        (ras, ras_label, (5, 30 - 1 - 12, 26 - 1 - 9)),
        (sag, np.transpose(label, (2, 1, 0)), (9, 12, 5)),
    ]
    for vol, lab, centre in cases:
        panels = _panels(triplanar_figure(vol, lab, center=centre))
        for got, want in zip(panels, reference, strict=True):
            np.testing.assert_array_equal(got, want)


def test_legend_names_visible_labels() -> None:
    image, label = _scene()
    label[19, 0, 0] = 7  # not in any of the three default slices
    fig = triplanar_figure(image, label, label_names={"1": "liver", 2: "tumour"})
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["liver", "tumour"]
    plain = triplanar_figure(image, label, center=(19, 0, 0))
    assert "label 7" in [t.get_text() for t in plain.legends[0].get_texts()]


def test_save_png(tmp_path: Path) -> None:
    image, label = _scene()
    out = save_triplanar(
        tmp_path / "sub" / "view.png", image, label, title="case 1", crosshair=True, alpha=1.0
    )
    assert out == tmp_path / "sub" / "view.png"
    assert out.stat().st_size > 10_000
    pixels = (imread(out)[..., :3] * 255).round().astype(int)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 400
    red = np.all(np.abs(pixels - np.array(PALETTE[0])) <= 2, axis=-1)
    assert red.sum() > 100
    assert [p.name for p in out.parent.iterdir()] == ["view.png"]


def test_save_replaces_and_failure_leaves_nothing(tmp_path: Path) -> None:
    image, label = _scene()
    out = tmp_path / "v.png"
    out.write_bytes(b"old")
    save_triplanar(out, image, label, window="soft")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError):
        save_triplanar(tmp_path / "w.png", image, label, center=(99, 0, 0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.png"]


def test_empty_label_and_volume_input(tmp_path: Path) -> None:
    image, _ = _scene()
    vol = SimpleNamespace(array=image, spacing=(2.5, 1.0, 1.0))
    out = save_triplanar(tmp_path / "e.png", vol, np.zeros(image.shape, np.int16))
    assert out.stat().st_size > 5_000
    fig = triplanar_figure(vol, np.zeros(image.shape, np.int16))
    assert not fig.legends
    assert fig.axes[1].images[0].get_extent() == pytest.approx([0, 26, 50, 0])


@pytest.mark.parametrize(
    ("image", "label", "kwargs", "error", "match"),
    [
        (np.zeros((4, 5)), None, {}, InputError, "image must be a 3-d"),
        (np.zeros((2, 4, 5, 6)), None, {}, InputError, "one channel"),
        (np.zeros((0, 4, 5)), None, {}, InputError, "image is empty"),
        (np.zeros((4, 5, 6)), np.zeros((2, 4, 5, 6)), {}, InputError, "label must be a 3-d"),
        (np.zeros((4, 5, 6)), np.zeros((4, 5, 7)), {}, GeometryMismatchError, "label has shape"),
        (np.zeros((4, 5, 6)), np.full((4, 5, 6), -1), {}, InputError, "negative"),
        (np.zeros((4, 5, 6)), None, {"center": (4, 0, 0)}, InputError, "center"),
        (np.zeros((4, 5, 6)), None, {"center": (1, 2)}, InputError, "center"),
        (np.zeros((4, 5, 6)), None, {"spacing": (1, 0, 1)}, InputError, "spacing"),
        (np.zeros((4, 5, 6)), None, {"window": "brain"}, InputError, "window"),
        (np.zeros((4, 5, 6)), None, {"label_names": ["a"]}, InputError, "label_names"),
        (np.zeros((4, 5, 6)), None, {"alpha": -0.1}, InputError, "alpha"),
    ],
)
def test_bad_input(
    image: np.ndarray,
    label: np.ndarray | None,
    kwargs: dict[str, object],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        triplanar_figure(image, label, **kwargs)


def test_volume_spacing_conflicts(tmp_path: Path) -> None:
    vol = SimpleNamespace(array=np.zeros((4, 5, 6)), spacing=(2.0, 1.0, 1.0))
    with pytest.raises(InputError, match="contradicts"):
        triplanar_figure(vol, spacing=(1.0, 1.0, 1.0))
    lab = SimpleNamespace(array=np.zeros((4, 5, 6), int), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(GeometryMismatchError, match="label spacing"):
        triplanar_figure(vol, lab)
    with pytest.raises(InputError, match=r"\.png"):
        save_triplanar(tmp_path / "v.jpg", vol)
