"""Crash safety: a conversion killed with SIGKILL and re-run gives the same store as an
uninterrupted one; half-written cases are invisible to readers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fastseg.io import Volume
from fastseg.store import Store, convert

SPACING = (1.0, 0.9, 0.9)


def complete_cases(dst: Path) -> list[str]:
    done = []
    for meta in sorted((dst / "cases").glob("*/zarr.json")):
        try:
            attrs = json.loads(meta.read_text())["attributes"].get("fastseg", {})
        except (ValueError, KeyError):
            continue
        if attrs.get("complete") is True:
            done.append(meta.parent.name)
    return done


@pytest.mark.slow
def test_sigkill_then_rerun_equals_clean_conversion(
    make_msd: Callable[..., Path],
    ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]],
    store_files: Callable[[Path], dict[str, bytes]],
    tmp_path: Path,
) -> None:
    n = 8
    src = make_msd(ct_cases(n, shape=(20, 72, 64)))
    clean = tmp_path / "clean.zarr"
    assert convert(src, clean, spacing=SPACING, workers=1, progress=False).ok

    killed = tmp_path / "killed.zarr"
    code = (
        "import sys; from fastseg.store import convert; "
        f"convert(sys.argv[1], sys.argv[2], spacing={SPACING!r}, workers=1, progress=False)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(src), str(killed)], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if killed.exists() and len(complete_cases(killed)) >= 2:
                break
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    done = complete_cases(killed)
    assert 2 <= len(done) < n, f"the kill should land mid-way, {len(done)} of {n} cases were done"
    assert Store.open(killed).cases == done

    report = convert(src, killed, spacing=SPACING, workers=1, progress=False)
    assert report.ok and sorted(report.skipped) == done
    assert sorted(report.converted + report.skipped) == sorted(Store.open(clean).cases)
    assert store_files(killed) == store_files(clean)


def test_half_written_case_is_invisible_and_rewritten(
    make_msd: Callable[..., Path],
    ct_cases: Callable[..., dict[str, tuple[Volume, Volume]]],
    store_files: Callable[[Path], dict[str, bytes]],
    tmp_path: Path,
) -> None:
    src = make_msd(ct_cases(3))
    dst = tmp_path / "s.zarr"
    assert convert(src, dst, workers=1, progress=False).ok
    reference = store_files(dst)
    # simulate a crash while case_001 was being written: its metadata lacks the completion flag
    # and one chunk is garbage; a stray chunk from an older attempt sits in another array
    meta = dst / "cases" / "case_001" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["fastseg"] = {"complete": False}
    meta.write_text(json.dumps(doc))
    chunk = next(
        p
        for p in (dst / "cases" / "case_001" / "image").rglob("*")
        if p.is_file() and p.name != "zarr.json"
    )
    chunk.write_bytes(b"garbage")
    (dst / "cases" / "case_001" / "label" / "c" / "9" / "9").mkdir(parents=True)
    (dst / "cases" / "case_001" / "label" / "c" / "9" / "9" / "9").write_bytes(b"stale")
    # and case_002 never got further than its first array
    (dst / "cases" / "case_002" / "zarr.json").unlink()
    store = Store.open(dst)
    assert store.cases == ["case_000"]
    report = convert(src, dst, workers=1, progress=False)
    assert report.converted == ["case_001", "case_002"] and report.skipped == ["case_000"]
    assert store_files(dst) == reference
    img, _ = Store.open(dst)["case_001"].read_patch((0, 0, 0), (4, 4, 4))
    assert np.isfinite(img).all()
