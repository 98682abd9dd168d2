#!/usr/bin/env bash
# run_one.sh BINARY SECONDS SEED_DIR WORK_DIR [libFuzzer flags...]
# Fuzzes BINARY for SECONDS starting from the seeds; inputs it finds go to
# WORK_DIR (the repository's seeds are only read). Exits non-zero on a crash,
# a leak, a timeout or an out-of-memory; the reproducer is left in WORK_DIR.
set -euo pipefail
bin=$1 secs=$2 seeds=$3 work=$4
shift 4
mkdir -p "$work/new"
cd "$work"
exec "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 -artifact_prefix="$work/" "$@" "$work/new" "$seeds"
