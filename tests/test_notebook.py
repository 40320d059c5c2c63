"""examples/hippocampus.ipynb runs from top to bottom (10 real cases, a short training budget)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "hippocampus.ipynb"


@pytest.mark.slow
@pytest.mark.realdata
def test_hippocampus_notebook_executes(shared_data: Path, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    env = {
        "FASTSEG_DATA": str(shared_data / "hippocampus"),
        "FASTSEG_EXAMPLE_OUT": str(tmp_path / "out"),
        "FASTSEG_EXAMPLE_CASES": "10",
        "FASTSEG_EXAMPLE_MINUTES": "0.25",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # figures as PNG outputs
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = nbclient.NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
        )
        client.execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "validation cases:" in text and "label" in text
    assert sum(1 for o in outputs if "image/png" in o.get("data", {})) >= 2  # data + worst case
    assert (tmp_path / "out" / "metrics.csv").is_file()
    assert (tmp_path / "out" / "run3d" / "checkpoints" / "best.pt").is_file()
