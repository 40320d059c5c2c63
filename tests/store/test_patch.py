"""read_patch (direct chunk reads) against slicing the whole array with NumPy padding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import given
from hypothesis import strategies as st

from fastseg.errors import InputError
from fastseg.store import SCHEMA_VERSION, StorageOptions, Store
from fastseg.store._pipeline import _codebook, _write_case

SHAPE = (13, 21, 17)
NORMS = [
    {"lo": -50.0, "hi": 400.0, "mean": 60.0, "std": 80.0},
    {"lo": None, "hi": None, "mean": 3.0, "std": 2.0},
]


def _attrs(image: np.ndarray, label: np.ndarray | None, coded: bool = False) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "channels": image.shape[0],
        "has_label": label is not None,
        "stored": {
            "shape": list(image.shape[1:]),
            "spacing": [1.0, 1.0, 1.0],
            "coding": "codebook" if coded else "none",
        },
        "normalization": NORMS[: image.shape[0]],
        "pad_value": [float(image[c].min()) for c in range(image.shape[0])],
        "foreground": {"sampled": {}, "voxels": {}},
        "complete": True,
    }


def make_store(
    url: str, chunks: tuple[int, int, int], codec: bool = True, coded: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    image = rng.integers(-1000, 1500, size=(2, *SHAPE)).astype(np.int16)
    image[:, :4] = 0  # whole chunks of zeros are not stored (zarr fill value) and must read as 0
    label = rng.integers(0, 4, size=SHAPE).astype(np.uint8)
    zarr.create_group(
        zarr.storage.FsspecStore.from_url(url) if "://" in url else url,
        attributes={"fastseg": {"schema_version": SCHEMA_VERSION, "modality": "ct"}},
    )
    storage = StorageOptions(chunks=chunks, cname="lz4", clevel=1)
    fg = np.zeros((0, 4), np.int32)
    if coded:
        floats = (image % 300).astype(np.float32) * np.float32(0.37) + np.float32(5.5)
        codes, book = _codebook(floats)
        assert codes is not None and book is not None and codes.dtype == np.uint16
        attrs = _attrs(floats, label, coded=True)
        _write_case(url, "c0", codes, label, fg, attrs, storage.to_dict(), book[0])
        return floats, label
    _write_case(url, "c0", image, label, fg, _attrs(image, label), storage.to_dict())
    if not codec:
        # rewrite the arrays with a codec chain the direct reader does not take: zarr's path
        group = zarr.open_group(zarr.storage.LocalStore(url), path="cases/c0", mode="a")
        for name, data in (("image", image), ("label", label)):
            arr = group.create_array(
                name, shape=data.shape, chunks=data.shape, dtype=data.dtype, overwrite=True,
                compressors=zarr.codecs.ZstdCodec(level=1),
            )  # fmt: skip
            arr[...] = data
    return image, label


def reference(
    image: np.ndarray, label: np.ndarray, start: tuple[int, ...], size: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    pads = [(max(0, -s), max(0, s + n - d)) for s, n, d in zip(start, size, SHAPE, strict=True)]
    inner = tuple(
        slice(max(s, 0), min(s + n, d)) for s, n, d in zip(start, size, SHAPE, strict=True)
    )
    if any(sl.stop <= sl.start for sl in inner):
        img = np.stack([np.full(size, image[c].min()) for c in range(image.shape[0])])
        lab = np.zeros(size, dtype=label.dtype)
    else:
        img = np.stack([
            np.pad(image[c][inner], pads, constant_values=image[c].min()) for c in range(image.shape[0])
        ])  # fmt: skip
        lab = np.pad(label[inner], pads, constant_values=0)
    norm = np.empty(img.shape, dtype=np.float64)
    for c, p in enumerate(NORMS[: image.shape[0]]):
        lo = -np.inf if p["lo"] is None else p["lo"]
        hi = np.inf if p["hi"] is None else p["hi"]
        norm[c] = (np.clip(img[c].astype(np.float64), lo, hi) - p["mean"]) / p["std"]
    return norm, lab


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, np.ndarray, np.ndarray]:
    url = str(tmp_path_factory.mktemp("patch") / "s.zarr")
    image, label = make_store(url, (4, 8, 5))
    return Store.open(url), image, label


starts = st.tuples(st.integers(-20, 25), st.integers(-30, 30), st.integers(-25, 25))
sizes = st.tuples(st.integers(1, 20), st.integers(1, 30), st.integers(1, 24))


@given(starts, sizes)
def test_read_patch_matches_slicing_with_padding(
    local_store: tuple[Store, np.ndarray, np.ndarray],
    start: tuple[int, int, int],
    size: tuple[int, int, int],
) -> None:
    store, image, label = local_store
    img, lab = store["c0"].read_patch(start=start, size=size)
    ref_img, ref_lab = reference(image, label, start, size)
    assert img.shape == (2, *size) and img.dtype == np.float32
    assert lab is not None and lab.dtype == np.uint8
    np.testing.assert_allclose(img, ref_img, rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(lab, ref_lab)
    raw, _ = store["c0"].read_patch(start=start, size=size, normalized=False)
    assert raw.dtype == np.int16


def test_center_and_whole_array(local_store: tuple[Store, np.ndarray, np.ndarray]) -> None:
    store, image, label = local_store
    case = store["c0"]
    a = case.read_patch(center=(6, 10, 8), size=(4, 6, 3))
    b = case.read_patch(start=(4, 7, 7), size=(4, 6, 3))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(case.image(normalized=False), image)
    np.testing.assert_array_equal(case.label(), label)
    group = zarr.open_group(store.url, mode="r")
    np.testing.assert_array_equal(group["cases/c0/image"][...], image)


def test_bad_patch_arguments(local_store: tuple[Store, np.ndarray, np.ndarray]) -> None:
    case = local_store[0]["c0"]
    with pytest.raises(InputError, match="exactly one"):
        case.read_patch(size=(2, 2, 2))
    with pytest.raises(InputError, match="size"):
        case.read_patch((0, 0, 0), (0, 2, 2))
    with pytest.raises(InputError, match="start"):
        case.read_patch((0, 0.5, 0), (2, 2, 2))  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="nope"):
        local_store[0]["nope"]


@pytest.mark.parametrize("kind", ["memory", "zarr-path", "coded"])
def test_other_backends_read_the_same(kind: str, tmp_path: Path) -> None:
    if kind == "memory":
        url = f"memory://patch-{tmp_path.name}/s.zarr"
        image, label = make_store(url, (5, 6, 7))
    elif kind == "coded":
        url = str(tmp_path / "s.zarr")
        image, label = make_store(url, (5, 6, 7), coded=True)
    else:
        url = str(tmp_path / "s.zarr")
        image, label = make_store(url, (5, 6, 7), codec=False)
    store = Store.open(url)
    case = store["c0"]
    if kind == "zarr-path":
        assert not case._info("image").direct
    assert case.coded == (kind == "coded")
    for start, size in [((-2, 3, 4), (9, 30, 5)), ((0, 0, 0), SHAPE), ((12, 20, 16), (3, 3, 3))]:
        img, lab = case.read_patch(start=start, size=size)
        ref_img, ref_lab = reference(image, label, start, size)
        np.testing.assert_allclose(img, ref_img, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(lab, ref_lab)
        raw, _ = case.read_patch(start=start, size=size, normalized=False)
        assert raw.dtype == image.dtype
        inner = tuple(
            slice(max(s, 0), min(s + n, d)) for s, n, d in zip(start, size, SHAPE, strict=True)
        )
        dst = tuple(
            slice(max(s, 0) - s, min(s + n, d) - s)
            for s, n, d in zip(start, size, SHAPE, strict=True)
        )
        np.testing.assert_array_equal(raw[(slice(None), *dst)], image[(slice(None), *inner)])


def test_codebook_only_for_few_distinct_values() -> None:
    rng = np.random.default_rng(0)
    few = rng.integers(0, 200, size=(1, 9, 10, 11)).astype(np.float32) * np.float32(1.7)
    codes, book = _codebook(few)
    assert codes is not None and book is not None and codes.dtype == np.uint8
    np.testing.assert_array_equal(book[0][0][codes[0]], few[0])
    many = rng.normal(size=(1, 50, 50, 30)).astype(np.float32)
    assert _codebook(many) == (None, None)


def test_open_refuses_what_is_not_a_fastseg_store(tmp_path: Path) -> None:
    from fastseg.errors import ImageReadError

    with pytest.raises(ImageReadError, match=r"zarr\.json missing"):
        Store.open(tmp_path / "nothing")
    zarr.create_group(str(tmp_path / "plain.zarr"), attributes={"other": 1})
    with pytest.raises(ImageReadError, match="not a fastseg store"):
        Store.open(tmp_path / "plain.zarr")
    zarr.create_group(
        str(tmp_path / "future.zarr"),
        attributes={"fastseg": {"schema_version": SCHEMA_VERSION + 1}},
    )
    with pytest.raises(InputError, match="newer"):
        Store.open(tmp_path / "future.zarr")
