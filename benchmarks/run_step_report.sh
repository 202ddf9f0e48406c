#!/usr/bin/env bash
# Step report: runs shardprop_bench (medians of 5 repetitions) and pytorch_step.py, then prints
# the machine and a small table (medium step: shardprop vs GEMM-only vs PyTorch; tiny step µs).
# Builds nothing.
#
# Usage: benchmarks/run_step_report.sh [BUILD_DIR] [extra shardprop_bench flags...]
#   BUILD_DIR defaults to build/bench; raw JSON goes to BUILD_DIR/step_report/.
#   PYTHON=...            interpreter that can import torch (default: the first of python3,
#                         /usr/bin/python3 that can)
#   PYTORCH_STEP_ARGS=... extra flags for pytorch_step.py (e.g. "--min-time 0.3")
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build_dir=${1:-build/bench}
shift || true
bench="$build_dir/benchmarks/shardprop_bench"
if [[ ! -x $bench ]]; then
  echo "run_step_report: $bench not found; build first, e.g." >&2
  echo "  cmake --preset bench && cmake --build --preset bench" >&2
  exit 1
fi

torch_python=""
for candidate in ${PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import torch' 2>/dev/null; then
    torch_python=$candidate
    break
  fi
done

out_dir="$build_dir/step_report"
mkdir -p "$out_dir"
bench_json="$out_dir/shardprop_bench.json"
torch_json="$out_dir/pytorch_step.json"
rm -f "$bench_json" "$torch_json"

echo "== shardprop_bench"
"$bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_out="$bench_json" --benchmark_out_format=json "$@"

echo
if [[ -n $torch_python ]]; then
  echo "== pytorch_step.py ($torch_python)"
  # shellcheck disable=SC2086  # PYTORCH_STEP_ARGS is a list of flags
  "$torch_python" "$script_dir/pytorch_step.py" --json "$torch_json" ${PYTORCH_STEP_ARGS:-}
else
  echo "== pytorch_step.py skipped: no python3 here can import torch (set PYTHON=...)"
fi

echo
echo "== step report"
echo "date:              $(date -Is)"
echo "nproc:             $(nproc)"
echo "CPU:               $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "OPENBLAS_CORETYPE: ${OPENBLAS_CORETYPE:-(unset)}"
python3 - "$bench_json" "$torch_json" <<'EOF'
import json
import os
import sys

bench_path, torch_path = sys.argv[1], sys.argv[2]
with open(bench_path, encoding="utf-8") as f:
    bench = json.load(f)
context = bench["context"]
print(f"OpenBLAS core:     {context.get('openblas_core', '?')} (shardprop "
      f"{context.get('shardprop_version', '?')}; OPENBLAS_NUM_THREADS="
      f"{context.get('OPENBLAS_NUM_THREADS', '?')})")

torch = None
if os.path.exists(torch_path):
    with open(torch_path, encoding="utf-8") as f:
        torch = json.load(f)
    blas = torch["blas"]
    print(f"PyTorch:           {blas['torch_version']}; {blas['summary']}")
    openblas = blas.get("openblas") or {}
    if openblas:
        print(f"PyTorch's BLAS:    {openblas.get('library', '?')} (core {openblas.get('core', '?')})")

SECONDS_PER_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def median_run(name, aggregate="median"):
    """An aggregate (or else the single run) of a benchmark, by run name."""
    runs = [b for b in bench["benchmarks"] if b.get("run_name", b["name"]) == name]
    for b in runs:
        if b.get("aggregate_name") == aggregate:
            return b
    plain = [b for b in runs if b.get("run_type", "iteration") == "iteration"]
    return plain[0] if plain and aggregate == "median" else None


def cv_percent(name):
    """Run-to-run coefficient of variation of the real time, in percent (None without repetitions)."""
    cv = median_run(name, "cv")
    return 100.0 * cv["real_time"] if cv else None


def step_seconds(run):
    return run["real_time"] * SECONDS_PER_UNIT[run["time_unit"]]


def torch_best(case, threads):
    if torch is None:
        return None
    for r in torch["best"]:
        if r["case"] == case and r["threads"] == threads:
            return r
    return None


def fmt(value, spec, suffix=""):
    return "n/a" if value is None else format(value, spec) + suffix


print()
print("medium 784-1024-1024-10 relu xent, batch 256, automatic shard count (samples/s, medians)")
header = (f"  {'threads':>7} {'shards':>6} {'shardprop':>10} {'GEMM-only':>10} {'step/GEMM':>9}"
          f" {'cv step/GEMM':>12} {'PyTorch':>10} {'vs PyTorch':>10}  PyTorch config")
print(header)
for threads in (2, 1):
    step_name = f"BM_Step/medium/threads:{threads}/shards:0/real_time"
    gemm_name = f"BM_GemmOnlyStep/medium/threads:{threads}/shards:0/real_time"
    step = median_run(step_name)
    gemm = median_run(gemm_name)
    noise = f"{fmt(cv_percent(step_name), '.1f')}/{fmt(cv_percent(gemm_name), '.1f')}%"
    best = torch_best("medium", threads)
    ours = step["samples"] if step else None
    gemm_rate = gemm["samples"] if gemm else None
    theirs = best["samples_per_second"] if best else None
    efficiency = 100.0 * ours / gemm_rate if ours and gemm_rate else None
    speedup = ours / theirs if ours and theirs else None
    shards = int(step["shards"]) if step else None
    config = f"{best['environment']}, {best['flags']}" if best else ""
    print(f"  {threads:>7} {fmt(shards, 'd'):>6} {fmt(ours, ',.0f'):>10} {fmt(gemm_rate, ',.0f'):>10}"
          f" {fmt(efficiency, '.1f', '%'):>9} {noise:>12} {fmt(theirs, ',.0f'):>10}"
          f" {fmt(speedup, '.2f', 'x'):>10}  {config}")
print("  step/GEMM = GEMM-only step time / step time (target >= 88% at 2 threads); cv = run-to-run"
      " variation of the 5 repetitions; vs PyTorch = shardprop / PyTorch samples/s")

print()
print("batch-norm overhead: medium with BN after each hidden dense layer / medium (step time, medians)")
print(f"  {'threads':>7} {'shards':>6} {'medium ms':>10} {'medium_bn ms':>12} {'BN/plain':>9}")
for threads in (2, 1):
    for shards in (0, 1, 2, 4):
        plain = median_run(f"BM_Step/medium/threads:{threads}/shards:{shards}/real_time")
        bn = median_run(f"BM_Step/medium_bn/threads:{threads}/shards:{shards}/real_time")
        if not plain or not bn:
            continue
        a, b = step_seconds(plain) * 1e3, step_seconds(bn) * 1e3
        print(f"  {threads:>7} {int(bn['shards']):>6} {a:>10.2f} {b:>12.2f} {b / a:>9.3f}")
print("  target: BN/plain < 1.10")

print()
print("tiny 2-3-2 sigmoid mse, batch 4 (us per step, medians)")
print(f"  {'threads':>7} {'shardprop':>10} {'PyTorch':>10} {'PyTorch/shardprop':>17}  PyTorch config")
for threads in (1, 2):
    step = median_run(f"BM_Step/tiny/threads:{threads}/shards:0/real_time")
    best = torch_best("tiny", threads)
    ours = step_seconds(step) * 1e6 if step else None
    theirs = best["us_per_step"] if best else None
    ratio = theirs / ours if ours and theirs else None
    config = f"{best['environment']}, {best['flags']}" if best else ""
    print(f"  {threads:>7} {fmt(ours, '.2f'):>10} {fmt(theirs, '.1f'):>10}"
          f" {fmt(ratio, ',.0f', 'x'):>17}  {config}")
EOF
