"""convert() never deletes what is not a fastseg store (the source above all), and never resumes
a store with another dataset or with source files that changed since they were converted."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from fastseg.cli import main
from fastseg.errors import InputError
from fastseg.io import Volume, write
from fastseg.store import Store, convert


def listing(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_overwrite_refuses_the_source_folder(
    make_msd: Callable[..., Path],
    ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = make_msd(ct_cases(1))
    before = listing(src)
    code = main(["convert", str(src), str(src), "--overwrite", "--workers", "1"])
    assert code == 2
    assert "the destination is the source folder" in capsys.readouterr().err
    assert listing(src) == before
    with pytest.raises(InputError, match="is the source folder"):
        convert(src, f"{src}/./", workers=1, progress=False, overwrite=True)
    assert listing(src) == before


def test_overwrite_refuses_a_destination_inside_or_around_the_source(
    make_msd: Callable[..., Path],
    ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]],
    tmp_path: Path,
) -> None:
    src = make_msd(ct_cases(1))
    inner = tmp_path / "elsewhere.zarr"
    assert convert(src, inner, workers=1, progress=False).ok
    shutil.move(inner, src / "store.zarr")  # a fastseg store, but inside the source folder
    before = listing(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(src, target_is_directory=True)
    for dst in (src / "store.zarr", tmp_path, link, src / "imagesTr"):
        with pytest.raises(InputError, match="inside it or contains it"):
            convert(src, dst, workers=1, progress=False, overwrite=True)
    assert listing(tmp_path) == before


def test_overwrite_refuses_a_remote_folder_that_is_not_a_store(
    make_msd: Callable[..., Path], ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]]
) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe_file("/fastseg-safety/notes.txt", b"keep me")
    src = make_msd(ct_cases(1))
    try:
        with pytest.raises(InputError, match="not a fastseg store and not empty"):
            convert(src, "memory://fastseg-safety", progress=False, overwrite=True)
        assert fs.cat_file("/fastseg-safety/notes.txt") == b"keep me"
    finally:
        fs.rm("/fastseg-safety", recursive=True)


@pytest.fixture
def ct_store(
    make_msd: Callable[..., Path],
    ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]],
    tmp_path: Path,
) -> tuple[Path, Path]:
    """A 2-case synthetic CT MSD folder and its store."""
    src = make_msd(ct_cases(2))
    dst = tmp_path / "ct.zarr"
    assert convert(src, dst, workers=1, progress=False).ok
    return src, dst


def test_resume_with_another_layout_is_refused(
    ct_store: tuple[Path, Path],
    ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]],
    tmp_path: Path,
) -> None:
    _, dst = ct_store
    before = listing(dst)
    folder = tmp_path / "images"
    folder.mkdir()
    write(ct_cases(1)["case_000"][0], folder / "chest.nii.gz")
    with pytest.raises(InputError, match=r"different source \(kind 'msd' \(store\) vs 'folder'"):
        convert(folder, dst, workers=1, progress=False)
    assert listing(dst) == before
    assert Store.open(dst).cases == ["case_000", "case_001"]


@pytest.mark.parametrize(
    ("channel", "labels", "differs"),
    [
        ("MR", None, "channel_names"),
        ("CT", {0: "background", 1: "liver", 2: "bone"}, "label_names"),
        ("CT", {0: "background", 1: "organ"}, "label_names"),
    ],
)
def test_resume_with_other_channels_or_labels_is_refused(
    ct_store: tuple[Path, Path],
    make_msd: Callable[..., Path],
    ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]],
    channel: str,
    labels: dict[int, str] | None,
    differs: str,
) -> None:
    _, dst = ct_store
    before = listing(dst)
    cases = ct_cases(3)
    other = make_msd({"case_002": cases["case_002"]}, channel=channel, labels=labels, name="o")
    with pytest.raises(InputError, match=f"different source.*{differs}"):
        convert(other, dst, workers=1, progress=False)
    assert listing(dst) == before


def test_resume_adds_new_cases_of_the_same_dataset(
    ct_store: tuple[Path, Path],
    make_msd: Callable[..., Path],
    ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]],
) -> None:
    _, dst = ct_store
    more = make_msd(ct_cases(3), name="more")  # the same two cases (same bytes) and a third
    report = convert(more, dst, workers=1, progress=False)
    assert report.ok and report.converted == ["case_002"]
    assert report.skipped == ["case_000", "case_001"]
    assert Store.open(dst).cases == ["case_000", "case_001", "case_002"]


def test_resume_refuses_a_case_whose_source_changed(
    ct_store: tuple[Path, Path], ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]]
) -> None:
    src, dst = ct_store
    before = listing(dst)
    image, _ = ct_cases(2)["case_001"]
    write(image.with_array(image.array + 1), src / "imagesTr" / "case_001_0000.nii.gz")
    with pytest.raises(InputError, match=r"case\(s\) \['case_001'\] changed"):
        convert(src, dst, workers=1, progress=False)
    assert listing(dst) == before
    # a case whose label is now another file is changed too
    write(image, src / "imagesTr" / "case_001_0000.nii.gz")
    assert convert(src, dst, workers=1, progress=False).skipped == ["case_000", "case_001"]
    os.rename(src / "labelsTr" / "case_000.nii.gz", src / "labelsTr" / "case_000.nii")
    with pytest.raises(InputError, match=r"\['case_000'\] changed"):
        convert(src, dst, workers=1, progress=False)


def test_source_record_has_no_paths(ct_store: tuple[Path, Path]) -> None:
    src, dst = ct_store
    doc = json.loads((dst / "zarr.json").read_text())
    source = doc["attributes"]["fastseg"]["source"]
    assert source == {
        "kind": "msd",
        "channel_names": ["CT"],
        "modalities": ["ct"],
        "label_names": {"0": "background", "1": "organ", "2": "bone"},
    }
    assert str(src.parent) not in (dst / "zarr.json").read_text()


@pytest.mark.realdata
def test_ct_folder_into_a_hippocampus_store_is_refused(
    shared_data: Path, hippo6_store: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "copy.zarr"
    shutil.copytree(hippo6_store, dst)
    before = listing(dst)
    lps = tmp_path / "lpsdir"
    lps.mkdir()
    (lps / "chest.nii.gz").symlink_to(shared_data / "ct" / "chest_ct_lps.nii.gz")
    with pytest.raises(InputError, match="different source"):
        convert(lps, dst, workers=1, progress=False)
    assert listing(dst) == before
    assert "chest" not in Store.open(dst).cases
