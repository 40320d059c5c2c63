"""Phantoms: deterministic by seed, labels in range, plausible Hounsfield units; MSD dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from fastseg.demo import DEFAULT_SHAPE, LABELS, make_phantom, write_dataset
from fastseg.errors import InputError

SMALL = {"shape": (24, 32, 40), "spacing": (5.0, 3.0, 3.0)}


@pytest.fixture(scope="module")
def phantoms() -> list[tuple[np.ndarray, np.ndarray]]:
    return [make_phantom(seed) for seed in range(3)]


def test_deterministic_by_seed(phantoms: list[tuple[np.ndarray, np.ndarray]]) -> None:
    image, label = make_phantom(1)
    np.testing.assert_array_equal(image, phantoms[1][0])
    np.testing.assert_array_equal(label, phantoms[1][1])
    assert not np.array_equal(phantoms[0][1], phantoms[1][1])


def test_types_shapes_and_labels(phantoms: list[tuple[np.ndarray, np.ndarray]]) -> None:
    assert LABELS == {0: "background", 1: "lung", 2: "bone", 3: "lesion"}
    for image, label in phantoms:
        assert image.shape == label.shape == DEFAULT_SHAPE
        assert image.dtype == np.int16 and label.dtype == np.uint8
        assert set(np.unique(label).tolist()) == {0, 1, 2, 3}
        counts = np.bincount(label.ravel(), minlength=4)
        assert counts[1] > 10000 and counts[2] > 3000 and 30 < counts[3] < 5000


def test_hounsfield_units_are_plausible(phantoms: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for image, label in phantoms:
        hu = image.astype(np.float64)

        def core_median(mask: np.ndarray, hu: np.ndarray = hu) -> float:
            core = ndimage.binary_erosion(mask)
            return float(np.median(hu[core if core.any() else mask]))

        assert -1010 < float(np.median(hu[:, :3, :3])) < -990  # air in the corners
        assert 8 < float(np.std(hu[:, :3, :3])) < 22  # noise 10-20 HU
        assert -880 < core_median(label == 1) < -780
        assert 550 < core_median(label == 2) < 800
        assert 60 < core_median(label == 3) < 140
        body = (hu > -300) & (label == 0)
        assert 0 < float(np.median(hu[body])) < 80  # soft tissue
        assert (hu < -150).any() and (hu > -150).any()
        assert hu.min() >= -1024 and hu.max() <= 3071


def test_lesions_lie_in_the_lungs(phantoms: list[tuple[np.ndarray, np.ndarray]]) -> None:
    for _, label in phantoms:
        around = ndimage.binary_dilation(label == 3, iterations=2) & (label != 3)
        assert np.mean(label[around] == 1) > 0.5


def test_partial_volume_blurs_edges(phantoms: list[tuple[np.ndarray, np.ndarray]]) -> None:
    image, label = phantoms[0]
    lung = label == 1
    edge = lung & ~ndimage.binary_erosion(lung)
    assert (
        np.median(image[edge]) > np.median(image[ndimage.binary_erosion(lung, iterations=2)]) + 50
    )


def test_bad_arguments() -> None:
    with pytest.raises(InputError, match="shape"):
        make_phantom(0, shape=(10, 10))
    with pytest.raises(InputError, match="spacing"):
        make_phantom(0, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="supersample"):
        make_phantom(0, supersample=0)


def test_write_dataset_msd_layout(tmp_path: Path) -> None:
    from fastseg.io import read

    path = write_dataset(tmp_path / "ds", n_train=2, n_test=1, seed=5, **SMALL)
    dataset = json.loads(path.read_text())
    assert path == tmp_path / "ds" / "dataset.json"
    assert dataset["labels"] == {"0": "background", "1": "lung", "2": "bone", "3": "lesion"}
    assert dataset["modality"] == {"0": "CT"}
    assert dataset["numTraining"] == 2 and dataset["numTest"] == 1
    assert [t["image"] for t in dataset["training"]] == [
        "./imagesTr/phantom_000.nii.gz",
        "./imagesTr/phantom_001.nii.gz",
    ]
    assert dataset["test"] == ["./imagesTs/phantom_002.nii.gz"]
    assert dataset["test_labels"] == ["./labelsTs/phantom_002.nii.gz"]
    for entry in [
        *dataset["training"],
        {"image": dataset["test"][0], "label": dataset["test_labels"][0]},
    ]:
        image, label = read(path.parent / entry["image"]), read(path.parent / entry["label"])
        assert image.shape == label.shape == SMALL["shape"]
        assert image.spacing == label.spacing == pytest.approx(SMALL["spacing"])
        assert image.orientation == "LAS"
        centre = image.affine @ np.array([*((np.array(SMALL["shape"]) - 1) / 2), 1.0])
        np.testing.assert_allclose(centre[:3], 0.0, atol=1e-6)
    seeds = np.random.SeedSequence(5).spawn(3)
    expected_image, expected_label = make_phantom(np.random.default_rng(seeds[2]), **SMALL)
    np.testing.assert_array_equal(read(path.parent / dataset["test"][0]).array, expected_image)
    np.testing.assert_array_equal(
        read(path.parent / dataset["test_labels"][0]).array, expected_label
    )
    assert not list((tmp_path / "ds").rglob(".*tmp*"))
    with pytest.raises(InputError, match="n_train"):
        write_dataset(tmp_path / "bad", n_train=0)
