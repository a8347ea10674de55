#!/usr/bin/env bash
# One-shot verification on a GPU machine: the GPU tests must run (not skip), then
# the benchmark table. Logs and JSON go to $OUT. Prepare .device/ first with
# scripts/device_prepare.sh on a machine with network.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/.device/out}"
mkdir -p "$OUT"
# Step limits keep the whole check under one 10-minute command (about 540 s at most).
gpu_tests_limit="${RINGKERNEL_GPU_TESTS_TIMEOUT:-150}"
suite_limit="${RINGKERNEL_SUITE_TIMEOUT:-180}"
bench_limit="${RINGKERNEL_BENCH_TIMEOUT:-120}"

if ! command -v deno >/dev/null 2>&1; then
  scratch="$(mktemp -d)"
  tar xzf .device/deno-linux-x64-glibc-*.tgz -C "$scratch"
  export PATH="$scratch/package:$PATH"
fi
export DENO_DIR="$PWD/.device/deno_dir"
deno --version | tee "$OUT/versions.txt"
nvidia-smi --query-gpu=name,driver_version --format=csv | tee "$OUT/gpu.csv"

status=0
flags=(-A --cached-only --node-modules-dir=none)

echo "== GPU tests first (RINGKERNEL_REQUIRE_GPU=1: they fail instead of skipping)"
RINGKERNEL_REQUIRE_GPU=1 timeout "$gpu_tests_limit" deno test "${flags[@]}" \
  tests/driver_test.ts tests/bundle_gpu_test.ts tests/cuda_backend_gpu_test.ts tests/faults_gpu_test.ts \
  tests/backend_parity_gpu_test.ts tests/remote_import_test.ts 2>&1 | tee "$OUT/gpu_tests.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

echo "== the whole suite, on the CUDA backend where \"auto\" picks it"
RINGKERNEL_REQUIRE_GPU=1 timeout "$suite_limit" deno test "${flags[@]}" tests/ 2>&1 | tee "$OUT/tests.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

# A short soak of resident GPU echo actors: end accounting and memory slopes
# (scripts/soak.ts; exit 1 when the accounting fails or the heap grows).
soak_seconds="${RINGKERNEL_SOAK_SECONDS:-30}"
echo "== GPU soak (${soak_seconds} s of echo actors on the CUDA backend)"
timeout "$((soak_seconds + 30))" deno run "${flags[@]}" --v8-flags=--expose-gc \
  scripts/soak.ts --backend cuda --seconds "$soak_seconds" --json "$OUT/soak.json" 2>&1 | tee "$OUT/soak.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

if [ -f bench/gpu_table.ts ]; then
  echo "== benchmark table"
  timeout "$bench_limit" deno run "${flags[@]}" bench/gpu_table.ts \
    --out "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi
echo "== device check finished with status $status"
exit $status
