#!/usr/bin/env bash
# The browser suite while a CPU hog keeps every core busy, RUNS times in a row; one line per
# run (result, pytest's summary, seconds, load average). Exits non-zero if any run failed.
#
#   RUNS=5 scripts/test_loaded.sh          (or: make test-loaded RUNS=5)
#
# HOGS busy-loop processes run beside the suite (default: one per core) and are always
# stopped at the end, also on Ctrl+C. Each run's output is in var/test-loaded/run-N.log.
set -uo pipefail
cd "$(dirname "$0")/.."

BIN="${BIN:-.venv/bin}"
RUNS="${RUNS:-1}"
HOGS="${HOGS:-$(getconf _NPROCESSORS_ONLN)}"
LOGS="${LOGS:-var/test-loaded}"
mkdir -p "$LOGS"

hogs=()
stop_hogs() {
  if ((${#hogs[@]})); then
    kill "${hogs[@]}" 2>/dev/null
    wait "${hogs[@]}" 2>/dev/null
  fi
  hogs=()
}
trap stop_hogs EXIT
trap 'stop_hogs; exit 130' INT TERM
for _ in $(seq "$HOGS"); do
  "$BIN/python" -c "while True: pass" &
  hogs+=("$!")
done
echo "CPU hog: ${#hogs[@]} busy processes on $(getconf _NPROCESSORS_ONLN) cores; $RUNS run(s) of the browser suite"

failed=0
for run in $(seq "$RUNS"); do
  log="$LOGS/run-$run.log"
  start=$(date +%s)
  if QUORUM_REQUIRE_BROWSER=1 "$BIN/pytest" -q -p no:xdist -m e2e tests/e2e ${PYTEST_ARGS:-} >"$log" 2>&1; then
    result=pass
  else
    result=FAIL
    failed=1
  fi
  summary=$(grep -E '[0-9]+ (passed|failed|error)' "$log" | tail -n 1 | sed 's/=//g; s/^ *//; s/ *$//')
  echo "run $run/$RUNS: $result; ${summary:-no summary, see $log}; $(($(date +%s) - start)) s;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
done
exit "$failed"
