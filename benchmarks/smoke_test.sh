#!/bin/sh
# Smoke run of a Google Benchmark binary (ctest's benchmarks.smoke.*): runs COMMAND with a
# minimal iteration count and JSON output, and fails if it exits non-zero, reports no
# benchmark, or any benchmark reports an error ("error_occurred": true in the JSON).
#
# Usage: benchmarks/smoke_test.sh COMMAND [ARGS...]
#   The output flags and --benchmark_min_time=$SMOKE_MIN_TIME (default 0.001: a plain number
#   of seconds, the syntax Google Benchmark 1.7 takes) are appended, so COMMAND may be
#   "mpirun -np 2 BINARY". SHARDPROP_BENCH_DATA defaults to a temporary directory, removed
#   afterwards.
set -eu

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "${SHARDPROP_BENCH_DATA:-}" ]; then
  SHARDPROP_BENCH_DATA="$tmp/data"
  mkdir "$SHARDPROP_BENCH_DATA"
  export SHARDPROP_BENCH_DATA
fi
out="$tmp/out.json"
"$@" --benchmark_min_time="${SMOKE_MIN_TIME:-0.001}" --benchmark_out="$out" \
  --benchmark_out_format=json >"$tmp/stdout" 2>"$tmp/stderr" || {
  status=$?
  cat "$tmp/stdout" "$tmp/stderr"
  echo "smoke_test: '$*' exited with $status" >&2
  exit 1
}
runs=$(grep -c '"run_name"' "$out" || true)
if [ "$runs" -eq 0 ]; then
  cat "$tmp/stdout" "$tmp/stderr"
  echo "smoke_test: '$*' ran no benchmark" >&2
  exit 1
fi
if grep -q '"error_occurred": *true' "$out"; then
  grep -B3 -A3 '"error_occurred": *true' "$out" >&2
  echo "smoke_test: a benchmark of '$*' reported an error" >&2
  exit 1
fi
echo "smoke_test: $runs runs, no error"
