"""Ctrl-C on ``fastseg train``: SIGINT to the process group saves last.pt, logs the
interruption, exits with 130 and leaves no process behind; the run then resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fastseg.train import _run


def _events(run: Path) -> list[str]:
    path = run / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["event"] for line in path.read_text().splitlines() if line]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_sigint_saves_last_and_exits_cleanly(tiny_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    sets = {
        "model.widths": "[4, 8]",
        "data.patch_size": "[8, 16, 16]",
        "data.augmentation": "none",
        "split.fold": "-1",
        "schedule.time_budget_s": "600",
        "training.log_every_s": "0",
        "training.device": "cpu",
    }
    command = [sys.executable, "-m", "fastseg", "train", str(tiny_store), "--out", str(out)]
    command += ["--quiet", "--workers", "1"]
    for key, value in sets.items():
        command += ["--set", f"{key}={value}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while "train" not in _events(out) and proc.poll() is None:
            assert time.monotonic() < deadline, "no training iteration within 120 s"
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "interrupted" in err.decode()
    deadline = time.monotonic() + 10
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _group_alive(proc.pid), "loader workers outlived the interrupted run"

    assert _events(out)[-1] == "interrupted"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    state = torch.load(_run.checkpoint_path(out, "last"), weights_only=True)
    assert state["iteration"] >= 1
    model, _ = _run.load_model(out, "last")
    for key, value in model.state_dict().items():
        assert torch.equal(value, state["model"][key]), key
