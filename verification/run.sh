#!/usr/bin/env bash
# Model-checks the Promela models of verification/ with Spin.
#
# Every model and proposed fix must verify (no assertion violation, no invalid end state, no
# accepting cycle of its LTL properties, search depth sufficient); every
# deliberately broken twin and every documented finding must produce a
# counterexample, which proves that the check can fail. Exits 0 only when all
# of that holds, 1 otherwise, 2 when spin or a C compiler is missing.
#
# Usage: verification/run.sh [-j JOBS] [-k] [-v] [FILTER]
#   -j JOBS  checks run in parallel (default: number of CPUs)
#   -k       keep the work directories (pan.c, trails) and print where
#   -v       print the counterexample trail of every failing check
#   FILTER   only checks whose model name contains FILTER
# Environment: SPIN (default spin), CC (default gcc), SPIN_DEPTH (pan -m,
# default 1000000), CHECKS_FILE (a table like the one below, instead of it).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
spin_bin="${SPIN:-spin}"
cc_bin="${CC:-gcc}"
depth="${SPIN_DEPTH:-1000000}"
jobs="$(nproc 2>/dev/null || echo 2)"
keep=0
verbose=0

while getopts "j:kv" opt; do
  case "$opt" in
    j) jobs="$OPTARG" ;;
    k) keep=1 ;;
    v) verbose=1 ;;
    *) sed -n '2,16p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
filter="${1:-}"

if ! command -v "$spin_bin" >/dev/null 2>&1; then
  echo "verification: spin not found (install it: apt-get install -y spin)" >&2
  exit 2
fi
if ! command -v "$cc_bin" >/dev/null 2>&1; then
  echo "verification: C compiler '$cc_bin' not found" >&2
  exit 2
fi

# model | defines | check | expect
#   check:  safety (assertions and invalid end states) or ltl:NAME
#   expect: pass (must verify), twin (deliberately broken: must fail),
#           finding (a documented gap of the code: must fail, see README.md),
#           fix (a proposed change for a finding, not yet in the code: must verify)
default_checks="$(cat <<'EOF'
spsc_ring   | -                              | safety             | pass
spsc_ring   | -                              | ltl:bounded        | pass
spsc_ring   | -                              | ltl:delivered      | pass
spsc_ring   | BROKEN_PUBLISH_FIRST           | safety             | twin
spsc_ring   | BROKEN_CONSUMER_WRITES_TAIL    | safety             | twin
spsc_ring   | BROKEN_CONSUMER_WRITES_TAIL    | ltl:delivered      | twin
spsc_ring   | BROKEN_CAPACITY                | safety             | twin
mpsc_ring   | -                              | safety             | pass
mpsc_ring   | -                              | ltl:bounded        | pass
mpsc_ring   | -                              | ltl:delivered_all  | pass
mpsc_ring   | BROKEN_STAMP_FIRST             | safety             | twin
mpsc_ring   | BROKEN_UNBOUNDED_RESERVE       | safety             | twin
mpsc_ring   | BROKEN_UNBOUNDED_RESERVE       | ltl:bounded        | twin
mpsc_ring   | BROKEN_IGNORE_STAMP            | safety             | twin
mpsc_ring   | FINDING_TICKET_LAP             | safety             | finding
doorbell    | -                              | safety             | pass
doorbell    | -                              | ltl:wakes          | pass
doorbell    | BROKEN_NO_RECHECK              | safety             | twin
doorbell    | BROKEN_NO_RECHECK              | ltl:wakes          | twin
doorbell    | BROKEN_SLEEPING_FIRST          | safety             | twin
doorbell    | BROKEN_BELL_LATE               | safety             | twin
doorbell    | BROKEN_FLAG_AFTER_DRAIN        | safety             | twin
lifecycle   | -                              | safety             | pass
lifecycle   | -                              | ltl:terminated_final | pass
lifecycle   | -                              | ltl:never_lost     | pass
lifecycle   | -                              | ltl:terminate_completes | pass
lifecycle   | BROKEN_TERMINATED_NOT_FINAL    | ltl:terminated_final | twin
lifecycle   | BROKEN_NO_DEAD_LETTER          | safety             | twin
lifecycle   | BROKEN_RELEASE_BEFORE_COUNT    | ltl:never_lost     | twin
lifecycle   | BROKEN_DRAIN_BEFORE_EXIT       | safety             | twin
worker_kill | -                              | safety             | pass
worker_kill | -                              | ltl:done           | pass
worker_kill | INTERRUPT                      | safety             | pass
worker_kill | INTERRUPT                      | ltl:done           | pass
worker_kill | CODE_INTERRUPT                 | safety             | pass
worker_kill | BROKEN_NO_GENERATION           | safety             | twin
worker_kill | BROKEN_COMMIT_BEFORE_REPLY_WAIT | safety            | twin
worker_kill | BROKEN_PUBLISH_BEFORE_COMMIT   | safety             | twin
worker_kill | BROKEN_HOST_TAKES_COMMITTED    | safety             | twin
worker_kill | BROKEN_PLAIN_CLAIM             | safety             | twin
worker_kill | BROKEN_LEAVE_COMMITTED         | safety             | twin
worker_kill | BROKEN_LEAVE_DEAD_COMMITTED    | safety             | twin
worker_kill | BROKEN_TAKE_HEAD_ONLY          | safety             | twin
worker_kill | BROKEN_PLAIN_TAKEN             | safety             | twin
worker_kill | BROKEN_FINISH_HEAD_ONLY        | safety             | twin
worker_kill | FINDING_COMMIT_STALL           | safety             | finding
worker_kill | FINDING_INVALID_UNCOMMITTED    | safety             | twin
worker_kill | FINDING_STALE_REPLY_WRITE      | safety             | twin
worker_kill | FIX_SLOT_COMMIT                | safety             | fix
worker_kill | FIX_COMMIT_BEFORE_ENCODE       | safety             | fix
pause       | -                              | safety             | pass
pause       | -                              | ltl:completes      | pass
pause       | BROKEN_NO_WAIT                 | safety             | twin
pause       | BROKEN_ACK_WHILE_ACTIVE        | safety             | twin
pause       | BROKEN_NO_ACK                  | ltl:completes      | twin
hlc         | -                              | safety             | pass
hlc         | -                              | ltl:packable       | pass
hlc         | BROKEN_WRAP                    | safety             | twin
hlc         | BROKEN_NO_CARRY                | ltl:packable       | twin
hlc         | BROKEN_IGNORE_LOCAL            | safety             | twin
hlc         | BROKEN_NO_INCREMENT            | safety             | twin
device_outbox | -                            | safety             | pass
device_outbox | -                            | ltl:bounded        | pass
device_outbox | -                            | ltl:drained        | pass
device_outbox | BROKEN_STAMP_FIRST           | safety             | twin
device_outbox | BROKEN_HOST_NO_STAMP         | safety             | twin
device_outbox | BROKEN_NO_FULL_CHECK         | safety             | twin
device_outbox | BROKEN_NO_FULL_CHECK         | ltl:bounded        | twin
device_outbox | BROKEN_RESUME_AT_HEAD        | safety             | twin
EOF
)"
if [ -n "${CHECKS_FILE:-}" ]; then
  checks="$(cat "$CHECKS_FILE")"
else
  checks="$default_checks"
fi

work_root="$(mktemp -d "${TMPDIR:-/tmp}/ringkernel-spin.XXXXXX")"
cleanup() {
  if [ "$keep" -eq 0 ]; then rm -rf "$work_root"; fi
}
trap cleanup EXIT

trim() {
  local s="$1"
  s="${s#"${s%%[![:space:]]*}"}"
  printf '%s' "${s%"${s##*[![:space:]]}"}"
}

# Runs one check in its own directory; writes "outcome|states|depth|seconds|detail" to result.
run_check() {
  local dir="$1" model="$2" defines="$3" check="$4"
  local spin_args=() cc_args=(-O2 -w) pan_args=("-m$depth")
  mkdir -p "$dir"
  cp "$here/$model.pml" "$dir/"
  if [ "$defines" != "-" ]; then spin_args+=("-D$defines"); fi
  case "$check" in
    safety) cc_args+=(-DNOCLAIM) ;;
    ltl:*)
      # Only the formula may fail: the models turn assert() off under LTL_ONLY.
      spin_args+=(-DLTL_ONLY)
      # Weak fairness needs a bound on the processes pan tracks (default 2).
      cc_args+=(-DNFAIR=8)
      pan_args+=(-a -f -N "${check#ltl:}")
      ;;
  esac
  local started ended outcome states reached detail
  started="$(date +%s.%N)"
  if ! (cd "$dir" && "$spin_bin" "${spin_args[@]}" -a "$model.pml" >spin.log 2>&1); then
    echo "error|-|-|0|spin -a failed: $(grep -m1 -i error "$dir/spin.log" || true)" >"$dir/result"
    return
  fi
  if ! (cd "$dir" && "$cc_bin" "${cc_args[@]}" -o pan pan.c >cc.log 2>&1); then
    echo "error|-|-|0|cc failed: $(head -c 300 "$dir/cc.log" | tr '\n' ' ')" >"$dir/result"
    return
  fi
  (cd "$dir" && ./pan "${pan_args[@]}" >pan.log 2>&1) || true
  ended="$(date +%s.%N)"
  local errors
  errors="$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$dir/pan.log" | head -n1)"
  states="$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$dir/pan.log" | head -n1)"
  reached="$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$dir/pan.log" | head -n1)"
  detail="$(grep -m1 -E '^pan:1:|^pan: .*(violated|error)' "$dir/pan.log" || true)"
  if [ -z "$errors" ]; then
    outcome="error"
    detail="pan did not report: $(tail -n 3 "$dir/pan.log" | tr '\n' ' ')"
  elif [ "$errors" -gt 0 ]; then
    outcome="counterexample"
  elif grep -q "max search depth too small" "$dir/pan.log"; then
    outcome="incomplete"
    detail="search depth $depth too small (set SPIN_DEPTH)"
  else
    outcome="verified"
  fi
  printf '%s|%s|%s|%s|%s\n' "$outcome" "${states:--}" "${reached:--}" \
    "$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.1f", b - a }')" \
    "$detail" >"$dir/result"
  if [ "$outcome" = "counterexample" ] && [ -f "$dir/$model.pml.trail" ]; then
    (cd "$dir" && "$spin_bin" "${spin_args[@]}" -t -p -g "$model.pml" >trail.txt 2>&1) || true
  fi
}

declare -a names=() dirs=() expects=() models=()
index=0
while IFS='|' read -r model defines check expect; do
  model="$(trim "$model")"
  defines="$(trim "$defines")"
  check="$(trim "$check")"
  expect="$(trim "$expect")"
  [ -z "$model" ] && continue
  if [ -n "$filter" ] && [[ "$model" != *"$filter"* ]]; then continue; fi
  index=$((index + 1))
  dir="$work_root/$(printf '%02d' "$index")-$model"
  names+=("$(printf '%-12s %-32s %-24s' "$model" "$defines" "$check")")
  dirs+=("$dir")
  expects+=("$expect")
  models+=("$model")
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_check "$dir" "$model" "$defines" "$check" &
done <<<"$checks"
wait

if [ "${#dirs[@]}" -eq 0 ]; then
  echo "verification: no check matches '$filter'" >&2
  exit 1
fi

printf '%-6s %-12s %-32s %-24s %-8s %-15s %12s %6s %6s\n' \
  "result" "model" "variant" "check" "expect" "outcome" "states" "depth" "sec"
bad=0
total_states=0
for i in "${!dirs[@]}"; do
  IFS='|' read -r outcome states reached seconds detail <"${dirs[$i]}/result"
  expect="${expects[$i]}"
  want="counterexample"
  if [ "$expect" = "pass" ] || [ "$expect" = "fix" ]; then want="verified"; fi
  mark="ok"
  if [ "$outcome" != "$want" ]; then
    mark="FAIL"
    bad=$((bad + 1))
  fi
  if [ "$states" != "-" ]; then
    total_states="$(awk -v a="$total_states" -v b="$states" 'BEGIN { printf "%.0f", a + b }')"
  fi
  printf '%-6s %s %-8s %-15s %12s %6s %6s\n' "$mark" "${names[$i]}" "$expect" "$outcome" "$states" "$reached" "$seconds"
  if [ "$outcome" = "counterexample" ] || [ "$mark" = "FAIL" ]; then
    if [ -n "$detail" ]; then printf '       %s\n' "$detail"; fi
  fi
  if [ "$verbose" -eq 1 ] && [ -f "${dirs[$i]}/trail.txt" ]; then
    sed 's/^/       | /' "${dirs[$i]}/trail.txt"
  fi
done

echo "verification: ${#dirs[@]} checks, $((${#dirs[@]} - bad)) as expected, $bad not; $total_states states stored in all"
if [ "$keep" -eq 1 ]; then echo "verification: work directories kept in $work_root"; fi
if [ "$bad" -ne 0 ]; then exit 1; fi
