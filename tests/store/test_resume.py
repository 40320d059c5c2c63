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


def _session_processes(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid`` (the CLI and the workers it started)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":  # state, ppid, pgrp, session
            out.append(int(entry.name))
    return out


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_ctrl_c_stops_workers_and_rerun_completes(
    hippocampus_msd: Callable[[Path, int], Path],
    store_files: Callable[[Path], dict[str, bytes]],
    tmp_path: Path,
) -> None:
    """Ctrl-C (SIGINT to the process group) during a 2-worker CLI conversion: the CLI exits with
    130 soon, queued cases are not converted, no worker is left, and a re-run completes the
    store exactly as an uninterrupted conversion."""
    n, spacing = 6, (0.5, 0.5, 0.5)  # upsampled, so a case takes long enough to interrupt
    src = hippocampus_msd(tmp_path / "h", n)
    dst = tmp_path / "interrupted.zarr"
    args = ["convert", str(src), str(dst), "--workers", "2", "--spacing", *map(str, spacing)]
    with open(tmp_path / "err.txt", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fastseg.cli", *args],
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            first: list[str] = []
            while time.monotonic() < deadline and proc.poll() is None and not first:
                first = complete_cases(dst) if dst.exists() else []
                time.sleep(0.005)
            os.killpg(proc.pid, signal.SIGINT)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert code == 130, (tmp_path / "err.txt").read_text()
    assert "interrupted" in (tmp_path / "err.txt").read_text()
    done = complete_cases(dst)
    # at most a case that finished while the signal was on its way: the queue was stopped
    assert 1 <= len(first) <= len(done) <= len(first) + 1 < n, (first, done)
    deadline = time.monotonic() + 10  # the resource tracker exits once the CLI is gone
    while _session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _session_processes(proc.pid) == []

    report = convert(src, dst, spacing=spacing, workers=1, progress=False)
    assert report.ok and report.skipped == done
    clean = tmp_path / "clean.zarr"
    assert convert(src, clean, spacing=spacing, workers=1, progress=False).ok
    assert store_files(dst) == store_files(clean)
