#!/usr/bin/env bash
# One prepared GPU check for a lent GPU machine (no network there): builds _core with CUDA, runs the
# CUDA tests, runs the GPU benchmarks, and prints a short table last.
# Usage (from the repo root, on the GPU machine): bash benchmarks/gpu_check.sh
# Before the device session, here: bash benchmarks/gpu_prepare.sh, then carry .gpu_data and .whl
# (gpu_train.py, the GPU busy time during training, needs that store; it is skipped without it).
# Writes logs under ${OUT:-gpu_check_out}/: machine.txt, build.log, cuda_tests.log and one log per
# benchmark, 8 files in all (no more than 8 files come back from a device run's $OUT).
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_check_out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
summary=()

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/machine.txt"
card=$(head -n1 "$out/machine.txt" | cut -d, -f1)

# CMake looks for nvcc only on PATH and in $CUDA_PATH/bin: fall back to the usual toolkit folders.
if ! command -v nvcc >/dev/null 2>&1; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin /opt/cuda/bin; do
    if [ -x "$d/nvcc" ]; then export PATH="$d:$PATH"; break; fi
  done
fi
nvcc --version 2>&1 | tail -n1 | tee -a "$out/machine.txt"

# Carried wheels (benchmarks/gpu_prepare.sh: numcodecs, to read the carried store) go to /tmp/site.
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

start=$(date +%s)
# sm_90 alone (H100/H200): half the CUDA compile time of the default sm_80 + sm_90
if FASTSEG_CUDA=ON CMAKE_ARGS="-DCMAKE_CUDA_ARCHITECTURES=${FASTSEG_GPU_ARCH:-90}" \
  python3 -m pip install -q --no-build-isolation --no-deps . >"$out/build.log" 2>&1; then
  summary+=("build (FASTSEG_CUDA=ON)|ok|$(( $(date +%s) - start )) s")
else
  tail -n 40 "$out/build.log"
  echo "build failed"; exit 1
fi
python3 -m fastseg.cli info | tee -a "$out/machine.txt"

# CUDA tests: files that need only numpy/torch (no nibabel/SimpleITK/zarr on that machine).
# Each step has its own time limit, so that one hang leaves the others their share of the lease.
if timeout "${FASTSEG_TEST_LIMIT_S:-200}" python3 -m pytest -q -m cuda tests/native tests/infer/test_tta.py tests/metrics/test_device.py tests/train/test_graph_step.py -p no:cacheprovider >"$out/cuda_tests.log" 2>&1; then
  summary+=("CUDA tests|ok|$(tail -n1 "$out/cuda_tests.log")")
else
  tail -n 40 "$out/cuda_tests.log"
  summary+=("CUDA tests|FAILED|$(tail -n1 "$out/cuda_tests.log")")
fi

# GPU benchmarks: each prints one line 'RESULT name|value|unit' that ends up in the table.
for bench in benchmarks/gpu_*.py; do
  [ -e "$bench" ] || continue
  limit="${FASTSEG_BENCH_LIMIT_S:-150}"
  [ "$(basename "$bench")" = gpu_train.py ] && limit=$((limit + 100))  # two training runs
  args=()
  [ "$(basename "$bench")" = gpu_metrics.py ] && args=(--profile)  # where its time goes, in the log
  if timeout "$limit" python3 "$bench" "${args[@]}" >"$out/$(basename "$bench" .py).log" 2>&1; then
    while IFS= read -r line; do summary+=("${line#RESULT }"); done \
      < <(grep '^RESULT ' "$out/$(basename "$bench" .py).log")
  else
    tail -n 20 "$out/$(basename "$bench" .py).log"
    summary+=("$(basename "$bench")|FAILED|see log")
  fi
done

echo
echo "== fastseg GPU check on ${card} =="
printf '%-40s %-12s %s\n' "check" "result" "detail"
for row in "${summary[@]}"; do
  IFS='|' read -r a b c <<<"$row"
  printf '%-40s %-12s %s\n' "$a" "$b" "$c"
done
