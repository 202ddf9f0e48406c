#!/usr/bin/env bash
# Peak memory of a streamed training run as the file grows: generates HIGGS-like CSVs of the
# given sizes (default 1 GB and 10 GB) into a scratch directory, trains one epoch on each with
# --stream and prints the peak resident set size from /usr/bin/time (Debian package "time").
# Usage: benchmarks/run_stream_memory.sh [BUILD_DIR] [SIZE_MB ...]
#   SCRATCH=DIR  where the CSVs go (default: /tmp/shardprop-stream-memory; removed afterwards)
set -euo pipefail
build=${1:-build/bench}
shift || true
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1024 10240)
exe="$build/apps/shardprop"
make_csv="$build/benchmarks/shardprop_make_csv"
for tool in "$exe" "$make_csv" /usr/bin/time; do
  [ -x "$tool" ] || { echo "run_stream_memory: $tool not found (build, or apt-get install time)" >&2; exit 1; }
done
scratch=${SCRATCH:-/tmp/shardprop-stream-memory}
mkdir -p "$scratch"
trap 'rm -rf "$scratch"' EXIT

"$make_csv" --like higgs --size-mb 64 --seed 2 --out "$scratch/validation.csv" >/dev/null
echo "date: $(date -Is); nproc: $(nproc); streamed epochs with 64 MB blocks and shuffle buffer"
printf '%10s %12s %14s %10s\n' "file MB" "rows" "peak RSS MB" "seconds"
for mb in "${sizes[@]}"; do
  csv="$scratch/higgs-$mb.csv"
  "$make_csv" --like higgs --size-mb "$mb" --seed 1 --out "$csv" >/dev/null
  rows=$(($(wc -l <"$csv") - 1))
  /usr/bin/time -f '%M %e' -o "$scratch/time" "$exe" train --data "$csv" --stream --loss bce \
    --layers 16 --epochs 1 --batch-size 1024 --lr 0.05 --val "$scratch/validation.csv" >/dev/null
  read -r peak_kb seconds <"$scratch/time"
  printf '%10s %12s %14s %10s\n' "$mb" "$rows" "$((peak_kb / 1024))" "$seconds"
  rm -f "$csv"
done
