"""fastseg.info() and `fastseg info`: what was built and which device runs."""

from __future__ import annotations

import json
import subprocess
import sys

import fastseg
from fastseg.cli import main


def test_info_reports_build_device_and_packages() -> None:
    data = fastseg.info()
    assert data["fastseg"] == fastseg.__version__
    native = data["native"]
    assert native["version"] == fastseg.__version__
    assert native["openmp_threads"] >= 1
    assert native["compiler"] and native["compiler"] != "unknown"
    assert data["device"] in {"cpu", "cuda"}
    assert data["gpu_visible"] == (data["device"] == "cuda")
    assert set(data["packages"]) >= {"torch", "zarr", "nibabel", "SimpleITK"}


def test_cli_info_text_and_json(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    for field in (
        "OpenMP threads",
        "CUDA kernels",
        "GPU visible",
        "torch",
        "zarr",
        "nibabel",
        "SimpleITK",
    ):
        assert field in text
    assert main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["native"]["openmp_threads"] >= 1


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fastseg", "info", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "cuda_compiled" in json.loads(result.stdout)["native"]
