#!/usr/bin/env bash
# The GPU checks of rankseg's CUDA backend, for a machine with an NVIDIA GPU, CuPy,
# numba-cuda, pytest and hypothesis installed (nothing is fetched from the network):
# the CUDA tests on the card, then benchmarks/gpu.py.  Logs go to $OUT (default: .).
#
#   OUT=/tmp/gpu-logs bash benchmarks/gpu_checks.sh
set -u
out=${OUT:-.}
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.memory --format=csv \
    | tee "$out/gpu.txt"
$py -m pip list 2>/dev/null | grep -i -E "^(numba|numba-cuda|cupy.*|numpy|scipy|torch|pytest|hypothesis) " \
    | tee -a "$out/gpu.txt"
start=$(date +%s)
timeout "${TEST_TIMEOUT:-300}" $py -m pytest -q -p no:cacheprovider tests/cuda 2>&1 \
    | tee "$out/tests.log" | tail -40
echo "tests: $(( $(date +%s) - start )) s"
start=$(date +%s)
timeout "${BENCH_TIMEOUT:-240}" $py benchmarks/gpu.py --rounds "${ROUNDS:-20}" \
    --breakdown ${PROFILE:+--profile} ${SOLVERS:+--solvers} --out "$out/bench.txt" 2>&1 | tee "$out/bench.log"
echo "benchmark: $(( $(date +%s) - start )) s"
