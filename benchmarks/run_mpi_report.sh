#!/usr/bin/env bash
# MPI scaling report: runs shardprop_mpi_bench under mpirun with 1 and 2 ranks (each benchmark
# with 1 and 2 threads per rank), then prints a table: samples/s, speedup and efficiency against
# 1 rank × 1 thread, the fraction of the step spent waiting in the gradient exchange, and the
# bytes each rank sends per step. Builds nothing.
#
# Usage: benchmarks/run_mpi_report.sh [BUILD_DIR] [RANKS...]
#   BUILD_DIR defaults to build/bench; RANKS default to "1 2"; raw JSON goes to
#   BUILD_DIR/mpi_report/. MPIRUN overrides the launcher (default: mpirun --bind-to none, so
#   that a rank's threads are not confined to the one core Open MPI binds it to by default,
#   with --allow-run-as-root when run as root and --oversubscribe, since ranks × threads may
#   exceed the cores).
set -euo pipefail

build_dir=${1:-build/bench}
shift || true
ranks_list=${*:-1 2}
bench="$build_dir/benchmarks/shardprop_mpi_bench"
if [[ ! -x $bench ]]; then
  echo "run_mpi_report: $bench not found; build with MPI first, e.g." >&2
  echo "  scripts/install-deps.sh --bench --mpi && cmake --preset bench && cmake --build --preset bench" >&2
  exit 1
fi
launcher=${MPIRUN:-mpirun --bind-to none --oversubscribe $([ "$(id -u)" -eq 0 ] && echo --allow-run-as-root)}
out_dir="$build_dir/mpi_report"
mkdir -p "$out_dir"

for ranks in $ranks_list; do
  echo "== $ranks rank(s)"
  $launcher -np "$ranks" "$bench" --benchmark_out="$out_dir/ranks_$ranks.json" \
    --benchmark_out_format=json
done

python3 - "$out_dir" $ranks_list <<'PY'
import json, sys
out_dir, ranks_list = sys.argv[1], sys.argv[2:]
rows = []
context = None
for ranks in ranks_list:
    with open(f"{out_dir}/ranks_{ranks}.json") as f:
        data = json.load(f)
    context = context or data["context"]
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        rows.append({
            "kind": "strong" if "/strong" in b["run_name"] else "weak",
            "ranks": int(b["ranks"]), "threads": int(b["threads_per_rank"]),
            "batch": int(b["global_batch"]), "rate": b["samples_per_second"],
            "step_ms": b["real_time"], "wait": b["comm_wait_seconds_per_step"],
            "bytes": b["comm_bytes_per_step"], "overlap": int(b.get("overlap", 1)),
        })
print(f"\nmachine: {context['num_cpus']} CPUs at {context['mhz_per_cpu']} MHz, "
      f"OpenBLAS core {context.get('openblas_core')}, OPENBLAS_CORETYPE "
      f"{context.get('OPENBLAS_CORETYPE')}, date {context['date']}")
for kind in ("strong", "weak"):
    base = next((r for r in rows if r["kind"] == kind and r["ranks"] == 1 and r["threads"] == 1), None)
    # Efficiency counts ranks × threads cores: above the machine's cores it is oversubscribed.
    print(f"\n{kind} scaling ({'global batch 256' if kind == 'strong' else '256 rows per rank'}),"
          " medium network 784-1024-1024-10, medians of 5 x 20 steps\n")
    print("| ranks × threads | exchange | samples/s | step | speedup | efficiency | waiting in exchange | sent per step per rank |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in sorted((r for r in rows if r["kind"] == kind),
                    key=lambda r: (r["ranks"], r["threads"], -r["overlap"])):
        speedup = r["rate"] / base["rate"] if base else float("nan")
        cores = r["ranks"] * r["threads"]
        exchange = "—" if r["ranks"] == 1 else ("overlapped" if r["overlap"] else "after backward")
        print(f"| {r['ranks']} × {r['threads']} | {exchange} | {r['rate']:,.0f} | {r['step_ms']:.1f} ms | "
              f"{speedup:.2f}× | {speedup / cores:.0%} | "
              f"{r['wait'] * 1e3 / r['step_ms']:.0%} ({r['wait'] * 1e3:.2f} ms) | "
              f"{r['bytes'] / 1e6:.2f} MB |")
PY
