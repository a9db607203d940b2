#!/usr/bin/env bash
# Runs `make test` RUNS times in a row with a CPU hog beside it (HOGS busy-looping processes,
# default 1: half of a 2-core machine), to show the suite does not flake on a loaded machine.
# Stops at the first failing run. Prints each run's wall time and pytest summary line; the
# full output of run N is in $LOG_DIR/run-N.log. The hogs are killed however this ends.
#
#   scripts/test-under-load.sh [RUNS] [HOGS]     (make test-under-load RUNS=3 HOGS=1)
set -euo pipefail

runs="${1:-3}"
hogs="${2:-1}"
log_dir="${LOG_DIR:-.cache/test-under-load}"
mkdir -p "$log_dir"

hog_pids=()
stop_hogs() {
  for pid in "${hog_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop_hogs EXIT

for _ in $(seq 1 "$hogs"); do
  # a pure CPU loop at normal priority: it competes with the suite for the cores
  python3 -c 'while True: pass' &
  hog_pids+=("$!")
done
echo "test-under-load: $hogs CPU hog(s) running (pids ${hog_pids[*]}); $runs run(s) of make test"

for run in $(seq 1 "$runs"); do
  log="$log_dir/run-$run.log"
  started=$(date +%s)
  if make --no-print-directory test >"$log" 2>&1; then status=passed; else status=FAILED; fi
  seconds=$(($(date +%s) - started))
  summary=$(grep -E '^=+ .*(passed|failed|error).* in ' "$log" | tail -n 1 || true)
  printf 'run %d: %s in %d min %02d s -- %s (log: %s)\n' \
    "$run" "$status" $((seconds / 60)) $((seconds % 60)) "$summary" "$log"
  if [ "$status" = FAILED ]; then
    grep -E '^(FAILED|ERROR) ' "$log" | head -n 20 || true
    exit 1
  fi
done
echo "test-under-load: $runs of $runs runs passed with $hogs CPU hog(s)"
