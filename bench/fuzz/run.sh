#!/usr/bin/env bash
# Long fuzzing runs of every harness in fuzz/ (the CI runs each for 5 s only).
#
#   bench/fuzz/run.sh                      # each harness to 10 million executions
#   RUNS=0 SECONDS_EACH=3600 bench/fuzz/run.sh   # or for a time each
#   HARNESSES="lb_request lb_response" bench/fuzz/run.sh
#
# Builds the clang tree build-fuzz (-DFUZZ=ON) if needed. New inputs go to
# $OUT/<harness>/new (default /tmp/sky-fuzz); a crash, leak or timeout stops
# that harness and leaves its reproducer next to it. Prints one line per
# harness: executions, exec/s, seconds, and the exact command.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-10000000}
SECONDS_EACH=${SECONDS_EACH:-0}
OUT=${OUT:-/tmp/sky-fuzz}
BUILD=${BUILD:-build-fuzz}
cmake -S . -B "$BUILD" -DFUZZ=ON -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"${JOBS:-2}" >/dev/null
if [ -z "${HARNESSES:-}" ]; then
  HARNESSES=$(ls fuzz/fuzz_*.c | sed 's|fuzz/fuzz_||; s|\.c$||')
fi
status=0
for h in $HARNESSES; do
  args=()
  [ "$RUNS" != 0 ] && args+=(-runs="$RUNS")
  cmd=(fuzz/run_one.sh "$PWD/$BUILD/fuzz/fuzz_$h" "$SECONDS_EACH" "$PWD/fuzz/corpus/$h" "$OUT/$h" "${args[@]}")
  start=$(date +%s.%N)
  set +e
  "${cmd[@]}" >"$OUT.$h.log" 2>&1
  rc=$?
  set -e
  end=$(date +%s.%N)
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$OUT.$h.log" | tail -1 | awk '{print $2}')
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b - a}')
  rate=$(awk -v n="${execs:-0}" -v s="$secs" 'BEGIN{printf "%d", n / s}')
  cov=$(grep -o 'cov: [0-9]*' "$OUT.$h.log" | tail -1 | awk '{print $2}')
  printf '%-14s rc=%d execs=%s exec/s=%s seconds=%s cov=%s  cmd: %s\n' "$h" "$rc" "${execs:-?}" \
    "$rate" "$secs" "${cov:-?}" "${cmd[*]}"
  [ $rc -eq 0 ] || { status=1; grep -E 'ERROR|FUZZ_CHECK|SUMMARY' "$OUT.$h.log" | head -5; }
done
exit $status
