#!/usr/bin/env bash
# Staged verification on a GPU machine, sized to fit twice in a short lease.
#
#   bash scripts/device_check.sh              # on the GPU machine (prepare .device/ first)
#   bash scripts/device_check.sh --rehearse   # here: the same stages on the CPU emulator
#   bash scripts/device_check.sh --plan       # print the stages and limits as JSON
#
# Every stage runs in its own process under `timeout`, with its own limit, and
# writes its JSON or log into $OUT as soon as it ends; $OUT/summary.json is
# rewritten after each one (stage, status ok/failed/timeout/skipped, seconds,
# limit, file). A hang costs its own stage only, and a run killed from outside
# still returns everything before the kill. What $OUT holds (at most 8 files
# come back from a GPU machine): summary.json, facts.json, probe.jsonl,
# tests.log, bench-quick.json, bench.json, check.log (the console).
#
# Stages: facts (driver, loading mode, card) · probe (which driver calls wait
# behind a resident kernel: scripts/device_probe.ts, each call in its own
# process, in LAZY and EAGER loading mode) · tests (each GPU test file in its
# own process, GPU required) · bench-quick and bench (bench/gpu_table.ts).
# No CPU-only tests run there. Nothing is downloaded: deno comes from
# .device/ (unpacked when not on PATH), its cache is .device/deno_dir, and
# every deno command runs with --cached-only (scripts/device_prepare.sh makes
# .device/). The rehearsal runs here on the emulator (scripts/build_emulator.ts),
# with the local deno, the same cache, a dead proxy so that any download
# fails, and every limit multiplied by RINGKERNEL_CHECK_SCALE (default 4).
set -uo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD

mode=gpu
show_plan=0
for arg in "$@"; do
  case "$arg" in
    --rehearse) mode=rehearsal ;;
    --plan) show_plan=1 ;;
    -h | --help)
      sed -n '2,25p' "$0"
      exit 0
      ;;
    *)
      echo "device_check: unknown argument $arg (--rehearse, --plan, --help)" >&2
      exit 2
      ;;
  esac
done

# ---------------------------------------------------------------------------
# The plan. Limits in seconds on a GPU; each can be overridden by its variable.
# tests/device_check_test.ts reads the `plan` and `knob` lines: keep their form.
# ---------------------------------------------------------------------------
if [ "$mode" = rehearsal ]; then scale="${RINGKERNEL_CHECK_SCALE:-4}"; else scale="${RINGKERNEL_CHECK_SCALE:-1}"; fi
plan_names=()
plan_limits=()
plan() { # NAME VARIABLE DEFAULT_SECONDS
  plan_names+=("$1")
  plan_limits+=("${!2:-$(($3 * scale))}")
}
knob() { # VARIABLE DEFAULT [scaled]
  local value="${!1:-}"
  if [ -z "$value" ]; then value=$2 && [ "${3:-}" = scaled ] && value=$(($2 * scale)); fi
  printf -v "$1" '%s' "$value"
}
plan runtime RINGKERNEL_CHECK_RUNTIME_S 5
plan facts RINGKERNEL_CHECK_FACTS_S 15
plan probe RINGKERNEL_CHECK_PROBE_S 60
plan tests RINGKERNEL_CHECK_TESTS_S 105
plan bench-quick RINGKERNEL_CHECK_BENCH_QUICK_S 15
plan bench RINGKERNEL_CHECK_BENCH_S 40
knob RINGKERNEL_CHECK_BUDGET_S 240 scaled   # the whole check, every stage included
knob RINGKERNEL_PROBE_CALL_S 10 scaled      # one probe process
knob RINGKERNEL_PROBE_PATIENCE_MS 3000      # a call still pending then waits behind the kernel
knob RINGKERNEL_TEST_FILE_S 30 scaled       # one test file
# The GPU test files, one process each, most basic first; a missing one is
# skipped. Every tests/*_gpu_test.ts must be here (tests/device_check_test.ts).
GPU_TEST_FILES=(
  tests/driver_gpu_test.ts
  tests/bundle_gpu_test.ts
  tests/device_session_gpu_test.ts
  tests/cuda_backend_gpu_test.ts
  tests/faults_gpu_test.ts
  tests/backend_parity_gpu_test.ts
  tests/reduce_barrier_gpu_test.ts
  tests/device_api_gpu_test.ts
  tests/actor_group_gpu_test.ts
  tests/grid_reduce_gpu_test.ts
  tests/wavesim_gpu_test.ts
  tests/hlc_gpu_test.ts
  tests/placement_gpu_test.ts
  tests/readme_gpu_test.ts
  tests/send_refusals_gpu_test.ts
  tests/cross_backend_gpu_test.ts
  tests/device_parity_gpu_test.ts
  tests/gpu_checkpoint_gpu_test.ts
  tests/remote_import_test.ts
)
PROBE_MODES=(LAZY EAGER)

limit_of() { # NAME -> seconds
  local i
  for i in "${!plan_names[@]}"; do
    if [ "${plan_names[$i]}" = "$1" ]; then
      echo "${plan_limits[$i]}"
      return
    fi
  done
  echo 0
}

jstr() { # a JSON string
  local s=${1//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/}
  s=${s//$'\t'/ }
  printf '"%s"' "$s"
}

if [ "$show_plan" = 1 ]; then
  printf '{"mode":%s,"scale":%s,"budgetSeconds":%s,"stages":[' "$(jstr "$mode")" "$scale" "$RINGKERNEL_CHECK_BUDGET_S"
  for i in "${!plan_names[@]}"; do
    [ "$i" = 0 ] || printf ','
    printf '{"stage":%s,"limitSeconds":%s}' "$(jstr "${plan_names[$i]}")" "${plan_limits[$i]}"
  done
  printf '],"probeCallSeconds":%s,"probePatienceMs":%s,"probeModes":[' "$RINGKERNEL_PROBE_CALL_S" "$RINGKERNEL_PROBE_PATIENCE_MS"
  sep=""
  for m in "${PROBE_MODES[@]}"; do printf '%s%s' "$sep" "$(jstr "$m")" && sep=","; done
  printf '],"testFileSeconds":%s,"testFiles":[' "$RINGKERNEL_TEST_FILE_S"
  sep=""
  for f in "${GPU_TEST_FILES[@]}"; do printf '%s%s' "$sep" "$(jstr "$f")" && sep=","; done
  printf ']}\n'
  exit 0
fi

# ---------------------------------------------------------------------------
# Clock, summary, stage runner
# ---------------------------------------------------------------------------
now_ms() {
  if [ -n "${EPOCHREALTIME:-}" ]; then
    local t=${EPOCHREALTIME/[.,]/}
    echo $((10#$t / 1000))
  else
    date +%s%3N
  fi
}
seconds_of() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); } # ms -> "s.mmm"
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }

check_start=$(now_ms)
budget_ms=$((RINGKERNEL_CHECK_BUDGET_S * 1000))
budget_left_ms() { echo $((budget_ms - ($(now_ms) - check_start))); }

if [ "$mode" = rehearsal ]; then OUT="${OUT:-$ROOT/.device/out-rehearsal}"; else OUT="${OUT:-$ROOT/.device/out}"; fi
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
rm -f "$OUT"/summary.json "$OUT"/facts.json "$OUT"/probe.jsonl "$OUT"/tests.log \
  "$OUT"/bench-quick.json "$OUT"/bench.json "$OUT"/check.log
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
exec > >(tee -a "$OUT/check.log") 2>&1
tee_pid=$!
finish() { # EXIT_CODE: the last summary, then the console log flushed
  write_summary true
  exec >&- 2>&-
  wait "$tee_pid" 2>/dev/null
  exit "$1"
}

summary_entries=()
overall=0
write_summary() { # FINISHED
  local i
  {
    printf '{\n  "check": "ringkernel device check",\n  "mode": %s,\n' "$(jstr "$mode")"
    printf '  "budgetSeconds": %s,\n  "elapsedSeconds": %s,\n  "finished": %s,\n' \
      "$RINGKERNEL_CHECK_BUDGET_S" "$(seconds_of $(($(now_ms) - check_start)))" "$1"
    printf '  "stages": ['
    for i in "${!summary_entries[@]}"; do
      [ "$i" = 0 ] || printf ','
      printf '\n    %s' "${summary_entries[$i]}"
    done
    printf '\n  ]\n}\n'
  } >"$scratch/summary.json" && mv -f "$scratch/summary.json" "$OUT/summary.json"
}
record() { # STAGE STATUS ELAPSED_MS LIMIT_S FILE DETAIL
  summary_entries+=("$(printf '{"stage":%s,"status":%s,"seconds":%s,"limit":%s,"file":%s,"detail":%s}' \
    "$(jstr "$1")" "$(jstr "$2")" "$(seconds_of "$3")" "$4" "$(jstr "$5")" "$(jstr "$6")")")
  case "$2" in ok | skipped) ;; *) overall=1 ;; esac
  echo "== $1: $2 in $(seconds_of "$3") s (limit $4 s)${6:+: $6}"
  write_summary false
}
status_of() { # EXIT_CODE
  case "$1" in
    0) echo ok ;;
    124 | 137) echo timeout ;;
    *) echo failed ;;
  esac
}
# Runs a command under timeout: LIMIT_MS, then the command. Sets $took_ms and $rc.
limited() {
  local limit_ms=$1 start
  shift
  if [ "$limit_ms" -lt 1000 ]; then
    echo "device_check: no time left in the budget for $*"
    rc=124 took_ms=0
    return
  fi
  start=$(now_ms)
  timeout -k 2 "$(seconds_of "$limit_ms")" "$@"
  rc=$?
  took_ms=$(($(now_ms) - start))
}
# The limit a stage gets: its own, no more than what the whole budget has left.
stage_limit_ms() { min $(($(limit_of "$1") * 1000)) "$(budget_left_ms)"; }

echo "== device check ($mode): budget ${RINGKERNEL_CHECK_BUDGET_S} s, output in $OUT"

# ---------------------------------------------------------------------------
# Rehearsal only: the emulator stands in for the driver
# ---------------------------------------------------------------------------
deno_bin=""
if [ "$mode" = rehearsal ]; then
  deno_bin="$ROOT/tools/node_modules/.bin/deno"
  [ -x "$deno_bin" ] || deno_bin="$(command -v deno || true)"
  start=$(now_ms)
  emulator="$("$deno_bin" run -A scripts/build_emulator.ts)"
  rc=$?
  if [ "$rc" != 0 ] || [ ! -f "$emulator" ]; then
    record emulator failed $(($(now_ms) - start)) 0 "" "scripts/build_emulator.ts failed"
    finish 1
  fi
  record emulator ok $(($(now_ms) - start)) 0 "" "$emulator (not a GPU stage: outside the budget)"
  check_start=$(now_ms)
  export RINGKERNEL_LIBCUDA="$emulator" RINGKERNEL_LIBNVRTC="$emulator"
  # Any download would fail here as it would on the GPU machine; local servers still answer.
  export HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9
  export http_proxy=$HTTP_PROXY https_proxy=$HTTPS_PROXY
  export NO_PROXY=localhost,127.0.0.1,::1 no_proxy=localhost,127.0.0.1,::1
fi

# ---------------------------------------------------------------------------
# Stage runtime: deno and its cache, nothing downloaded
# ---------------------------------------------------------------------------
start=$(now_ms)
runtime_detail=""
runtime_status=ok
if [ -z "$deno_bin" ]; then
  if command -v deno >/dev/null 2>&1; then
    deno_bin="$(command -v deno)"
  else
    tarballs=(.device/deno-linux-x64-glibc-*.tgz)
    tarball=${tarballs[0]}
    if [ -f "$tarball" ] && mkdir -p "$scratch/deno" &&
      timeout "$(limit_of runtime)" tar xzf "$tarball" -C "$scratch/deno"; then
      deno_bin="$scratch/deno/package/deno"
      runtime_detail="unpacked $tarball; "
    else
      runtime_status=failed
      runtime_detail="no deno on PATH and no usable .device/deno-linux-x64-glibc-*.tgz (run scripts/device_prepare.sh)"
    fi
  fi
fi
if [ "$runtime_status" = ok ]; then
  if [ -d .device/deno_dir ]; then
    # A scratch copy: what the tests cache (local URL imports) stays out of .device/.
    cp -a .device/deno_dir "$scratch/deno_dir"
    export DENO_DIR="$scratch/deno_dir"
  else
    runtime_status=failed
    runtime_detail="no .device/deno_dir (run scripts/device_prepare.sh)"
  fi
fi
if [ "$runtime_status" = ok ]; then
  if version=$(timeout "$(limit_of runtime)" "$deno_bin" --version 2>&1); then
    runtime_detail+="$(echo "$version" | head -n 1)"
  else
    runtime_status=failed
    runtime_detail="$deno_bin --version failed: $version"
  fi
fi
record runtime "$runtime_status" $(($(now_ms) - start)) "$(limit_of runtime)" "" "$runtime_detail"
if [ "$runtime_status" != ok ]; then
  command -v nvidia-smi >/dev/null 2>&1 && timeout 10 nvidia-smi
  finish 1
fi
# Child processes (the URL-import test spawns deno) find the same deno.
PATH="$(dirname "$deno_bin"):$PATH"
export PATH
export CUDA_CACHE_PATH="${CUDA_CACHE_PATH:-$scratch/cuda_cache}"
mkdir -p "$CUDA_CACHE_PATH"
export NO_COLOR=1 DENO_NO_UPDATE_CHECK=1
flags=(-A --cached-only --node-modules-dir=none)

# ---------------------------------------------------------------------------
# Stage facts
# ---------------------------------------------------------------------------
limit_ms=$(stage_limit_ms facts)
limited "$limit_ms" "$deno_bin" run "${flags[@]}" scripts/device_facts.ts --out "$OUT/facts.json"
record facts "$(status_of "$rc")" "$took_ms" "$(limit_of facts)" facts.json ""

# ---------------------------------------------------------------------------
# Stage probe: which driver calls wait behind a resident kernel
# ---------------------------------------------------------------------------
probe_start=$(now_ms)
probe_budget_ms=$(stage_limit_ms probe)
probe_status=ok
counts_returned=0 counts_waited=0 counts_slow=0 counts_hung=0 counts_failed=0 counts_skipped=0
mapfile -t probe_calls < <(timeout 20 "$deno_bin" run "${flags[@]}" scripts/device_probe.ts --list)
[ "${#probe_calls[@]}" -gt 0 ] || probe_status=failed
: >"$OUT/probe.jsonl"
for call in "${probe_calls[@]}"; do
  for loading in "${PROBE_MODES[@]}"; do
    left_ms=$((probe_budget_ms - ($(now_ms) - probe_start)))
    call_ms=$(min $((RINGKERNEL_PROBE_CALL_S * 1000)) "$left_ms")
    if [ "$call_ms" -lt 3000 ]; then
      counts_skipped=$((counts_skipped + 1))
      printf '{"call":%s,"mode":%s,"exit":null,"seconds":0,"status":"skipped","record":null}\n' \
        "$(jstr "$call")" "$(jstr "$loading")" >>"$OUT/probe.jsonl"
      continue
    fi
    partial="$scratch/probe.json"
    rm -f "$partial"
    CUDA_MODULE_LOADING=$loading RINGKERNEL_EMULATOR_HAZARDS=warn limited "$call_ms" \
      "$deno_bin" run "${flags[@]}" scripts/device_probe.ts --call "$call" --out "$partial" \
      --patience-ms "$RINGKERNEL_PROBE_PATIENCE_MS" >/dev/null
    probe_record=null
    [ -s "$partial" ] && probe_record=$(head -n 1 "$partial")
    verdict=$(printf '%s' "$probe_record" | grep -o '"verdict":"[a-z-]*"' | cut -d'"' -f4)
    phase=$(printf '%s' "$probe_record" | grep -o '"phase":"[a-z-]*"' | cut -d'"' -f4)
    code=$(printf '%s' "$probe_record" | grep -o '"codeName":"[^"]*"' | tail -n 1 | cut -d'"' -f4)
    status=$(status_of "$rc")
    if [ "$verdict" = hung ]; then
      # The probe wrote its verdict, then killed itself (a thread is stuck in the driver).
      status=ok
    elif [ "$status" = timeout ]; then
      # Killed from outside: in the call, it is blocked behind the resident kernel.
      case "$phase" in
        calling | released | abandoned) verdict="blocked (killed at phase $phase)" ;;
        *) verdict="killed at phase ${phase:-start}" ;;
      esac
    fi
    case "$verdict" in
      returned) counts_returned=$((counts_returned + 1)) ;;
      waited) counts_waited=$((counts_waited + 1)) ;;
      slow) counts_slow=$((counts_slow + 1)) ;;
      hung | blocked*) counts_hung=$((counts_hung + 1)) ;;
      *) counts_failed=$((counts_failed + 1)) ;;
    esac
    printf '{"call":%s,"mode":%s,"exit":%s,"seconds":%s,"status":%s,"verdict":%s,"record":%s}\n' \
      "$(jstr "$call")" "$(jstr "$loading")" "$rc" "$(seconds_of "$took_ms")" "$(jstr "$status")" \
      "$(jstr "${verdict:-none}")" "$probe_record" >>"$OUT/probe.jsonl"
    echo "probe $call $loading: ${verdict:-no verdict}${code:+ ($code)} in $(seconds_of "$took_ms") s"
  done
done
[ "$counts_failed" = 0 ] || probe_status=failed
[ "$counts_skipped" = 0 ] || [ "$probe_status" = failed ] || probe_status=timeout
record probe "$probe_status" $(($(now_ms) - probe_start)) "$(limit_of probe)" probe.jsonl \
  "returned $counts_returned, waited $counts_waited, slow $counts_slow, blocked or hung $counts_hung, failed $counts_failed, skipped $counts_skipped"

# ---------------------------------------------------------------------------
# Stage tests: each GPU test file in its own process, GPU required
# ---------------------------------------------------------------------------
tests_start=$(now_ms)
tests_budget_ms=$(stage_limit_ms tests)
tests_ok=0 tests_bad=0 tests_skipped=0 tests_cut=0
: >"$OUT/tests.log"
for file in "${GPU_TEST_FILES[@]}"; do
  name="test $(basename "$file" .ts)"
  if [ ! -f "$file" ]; then
    tests_skipped=$((tests_skipped + 1))
    record "$name" skipped 0 0 tests.log "$file does not exist"
    continue
  fi
  left_ms=$((tests_budget_ms - ($(now_ms) - tests_start)))
  file_ms=$(min $((RINGKERNEL_TEST_FILE_S * 1000)) "$left_ms")
  if [ "$file_ms" -lt 5000 ]; then
    tests_cut=$((tests_cut + 1))
    record "$name" timeout 0 "$RINGKERNEL_TEST_FILE_S" tests.log "not run: no time left in the tests stage"
    continue
  fi
  echo "==== $file" >>"$OUT/tests.log"
  before=$(wc -l <"$OUT/tests.log")
  RINGKERNEL_REQUIRE_GPU=1 limited "$file_ms" "$deno_bin" test "${flags[@]}" --no-check "$file" >>"$OUT/tests.log" 2>&1
  status=$(status_of "$rc")
  echo "==== $file: $status (exit $rc) in $(seconds_of "$took_ms") s" >>"$OUT/tests.log"
  section=$(tail -n +$((before + 1)) "$OUT/tests.log")
  detail=$(echo "$section" | grep -E '^(ok|FAILED) +\|' | tail -n 1)
  if [ "$status" = ok ]; then tests_ok=$((tests_ok + 1)); else
    tests_bad=$((tests_bad + 1))
    echo "$section" | tail -n 15
  fi
  record "$name" "$status" "$took_ms" $((file_ms / 1000)) tests.log "$detail"
done
tests_status=ok
[ "$tests_cut" = 0 ] || tests_status=timeout
[ "$tests_bad" = 0 ] || tests_status=failed
record tests "$tests_status" $(($(now_ms) - tests_start)) "$(limit_of tests)" tests.log \
  "$tests_ok ok, $tests_bad not ok, $tests_cut not run for lack of time, $tests_skipped missing"

# ---------------------------------------------------------------------------
# Stages bench-quick and bench: bench/gpu_table.ts (emulated figures mean nothing)
# ---------------------------------------------------------------------------
bench_stage() { # NAME FILE ARGS...
  local name=$1 file=$2 detail=""
  shift 2
  limit_ms=$(stage_limit_ms "$name")
  if [ "$limit_ms" -lt 3000 ]; then
    record "$name" timeout 0 "$(limit_of "$name")" "$file" "no time left in the budget"
    return
  fi
  limited "$limit_ms" "$deno_bin" run "${flags[@]}" bench/gpu_table.ts "$@" --out "$OUT/$file" >/dev/null
  status=$(status_of "$rc")
  if [ "$status" = ok ] && [ ! -s "$OUT/$file" ]; then
    status=failed
    detail="no table written (no usable GPU?)"
  elif grep -q '"emulated": true' "$OUT/$file" 2>/dev/null; then
    detail="emulated: the figures mean nothing"
  fi
  record "$name" "$status" "$took_ms" "$(limit_of "$name")" "$file" "$detail${*:+ (args: $*)}"
}
bench_stage bench-quick bench-quick.json --quick
if [ "$mode" = rehearsal ]; then
  # The full table's message counts are for a GPU: the emulator takes the quick one.
  bench_stage bench bench.json --quick
else
  bench_stage bench bench.json
fi

echo "== device check ($mode) finished in $(seconds_of $(($(now_ms) - check_start))) s with status $overall; summary in $OUT/summary.json"
finish "$overall"
