"""DistributedDataParallel under torchrun: two CPU processes on gloo train to identical weights,
rank 0 alone writes the run directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from fastseg.train import _run

SCRIPT = """
import json, os, sys
import torch
from fastseg.train import train_run

store, out, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
result = train_run(store, out, overrides=overrides, progress=False, log=None)
rank = int(os.environ["RANK"])
torch.save(
    {"state": result.model.state_dict(), "iterations": result.iterations,
     "world_size": int(os.environ["WORLD_SIZE"]),
     "group_left": not torch.distributed.is_initialized()},
    os.path.join(os.path.dirname(out), f"rank{rank}.pt"),
)
"""


@pytest.mark.slow
def test_two_gloo_ranks_end_with_identical_weights(
    tiny_store: Path, tiny_overrides: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    overrides = tiny_overrides(  # with a time budget too, the ranks agree on when to stop
        schedule__max_iterations=4, schedule__validate_every=2, schedule__time_budget_s=600
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(script), str(tiny_store), str(out), json.dumps(overrides),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert all(r["iterations"] == 4 and r["world_size"] == 2 for r in ranks)
    assert all(r["group_left"] for r in ranks)  # the process group was destroyed
    assert ranks[0]["state"].keys() == ranks[1]["state"].keys()
    for key, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][key]), key
    last = torch.load(_run.checkpoint_path(out, "last"), weights_only=True)
    for key, value in last["model"].items():
        assert torch.equal(value, ranks[0]["state"][key]), key
    assert last["iteration"] == 4 and [h["iteration"] for h in last["history"]] == [2, 4]
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    starts = [x for x in lines if x["event"] == "start"]
    assert len(starts) == 1 and starts[0]["world_size"] == 2  # rank 0 alone logs
    assert (out / "validation.csv").is_file() and (out / "postprocessing.json").is_file()
