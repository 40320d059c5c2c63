#!/usr/bin/env bash
# Run HERE (not on the GPU machine) before a device session: puts what the GPU training check
# (benchmarks/gpu_train.py) needs into git-ignored folders that `run` can carry:
#   .gpu_data/hippocampus.zarr  the converted MSD hippocampus store (about 30 MB)
#   .whl/                       numcodecs for Python 3.12 (the GPU image has no zarr/numcodecs)
#                               and MONAI (pure Python; gpu_loss.py's MONAI ratio), about 2 MB
# Then: run(command="bash benchmarks/gpu_check.sh", carry=[".gpu_data", ".whl"]).
# Usage: bash benchmarks/gpu_prepare.sh [DATA (default ../shared/data/hippocampus)]
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/hippocampus}"
python="${PYTHON:-python3}"
if [ ! -f .gpu_data/hippocampus.zarr/zarr.json ]; then
  rm -rf .gpu_data/hippocampus.zarr
  mkdir -p .gpu_data
  "$python" -m fastseg convert "$data" .gpu_data/hippocampus.zarr
fi
rm -rf .whl && mkdir -p .whl
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "numcodecs==0.16.*"
# MONAI as installed here (its only needs, torch and numpy, are on the GPU machine)
monai_version=$("$python" -c "import importlib.metadata as m; print(m.version('monai'))")
"$python" -m pip download -q --no-deps --only-binary=:all: -d .whl "monai==$monai_version"
du -sh .gpu_data .whl
