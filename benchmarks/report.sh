#!/usr/bin/env bash
# Benchmark report: runs every benchmark suite, saves the raw JSON, records the machine and
# writes OUT_DIR/report.md with plots (benchmarks/make_report.py). Builds nothing.
#
# Usage: benchmarks/report.sh [--publish] [BUILD_DIR] [OUT_DIR]
#   BUILD_DIR  default build/bench (cmake --preset bench && cmake --build --preset bench)
#   OUT_DIR    default BUILD_DIR/report; gets raw/ (JSON, command.txt), report.md and plots/
#   --publish  then move benchmarks/results/latest/ to benchmarks/results/history/<its date>/,
#              copy the new report there and refresh README.md's summary (between its
#              <!-- report:begin --> and <!-- report:end --> markers)
#
# Parts, in order (raw/ file names): shardprop_bench.json, shardprop_csv_bench.json,
# csv_baselines.json (pandas), pytorch_step.json, end_to_end.json, machine.json; timings.json
# holds each part's wall time.
#
# Knobs (environment variables; the defaults make the published report, roughly 15-25 minutes
# on 2 cores):
#   REPETITIONS=5            Google Benchmark repetitions (medians are reported)
#   BENCH_MIN_TIME=          --benchmark_min_time in seconds, a plain number (default: Google
#                            Benchmark's 0.5)
#   BENCH_ARGS=              extra flags for shardprop_bench (e.g. --benchmark_filter=...)
#   SHARDPROP_BENCH_CSV_MB=256  size of each of the two CSV files shardprop_csv_bench parses
#   SHARDPROP_BENCH_DATA=    where those files live (default BUILD_DIR/benchmarks/csv_data)
#   CSV_ARGS=                extra flags for shardprop_csv_bench
#   PANDAS_REPEATS=3         pandas.read_csv runs per file (median)
#   PYTORCH_STEP_ARGS=       extra flags for pytorch_step.py (e.g. "--min-time 0.05")
#   E2E_EPOCHS=2 E2E_RUNS=3  end_to_end.py epochs and runs per side (median)
#   E2E_ARGS=                extra flags for end_to_end.py (e.g. "--medium-rows 6000
#                            --small-rows 50000" for smaller files)
#   SKIP=                    comma-separated parts to leave out: bench, csv, pandas, torch, e2e
#   PYTHON=                  interpreter with torch, pandas and matplotlib (default: the first
#                            of python3, /usr/bin/python3 that can import each)
#   NOTES=                   a Markdown file explaining the slower rows (make_report.py --notes)
# A quick check of the whole pipeline (about 3 minutes on 2 cores):
#   REPETITIONS=1 BENCH_MIN_TIME=0.01 SHARDPROP_BENCH_CSV_MB=8 PANDAS_REPEATS=1 \
#   PYTORCH_STEP_ARGS="--min-time 0.02 --min-reps 3" E2E_EPOCHS=1 E2E_RUNS=1 \
#   E2E_ARGS="--medium-rows 3000 --small-rows 20000" benchmarks/report.sh build/bench /tmp/report
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
original_command="benchmarks/report.sh $*"

publish=0
positional=()
for arg in "$@"; do
  case "$arg" in
    --publish) publish=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "report.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    *) positional+=("$arg") ;;
  esac
done
build_dir=${positional[0]:-build/bench}
out_dir=${positional[1]:-$build_dir/report}

bench="$build_dir/benchmarks/shardprop_bench"
csv_bench="$build_dir/benchmarks/shardprop_csv_bench"
make_csv="$build_dir/benchmarks/shardprop_make_csv"
shardprop="$build_dir/apps/shardprop"
for binary in "$bench" "$csv_bench" "$make_csv" "$shardprop"; do
  if [[ ! -x $binary ]]; then
    echo "report.sh: $binary not found; build first, e.g." >&2
    echo "  scripts/install-deps.sh --bench --compare" >&2
    echo "  cmake --preset bench && cmake --build --preset bench" >&2
    exit 1
  fi
done

skip=",${SKIP:-},"
skipped() { [[ $skip == *",$1,"* ]]; }

# The first interpreter that imports every module given.
python_with() {
  local candidate
  for candidate in ${PYTHON:-} python3 /usr/bin/python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c "import $1" 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}
stdlib_python=$(python_with json) || { echo "report.sh: no python3 found" >&2; exit 1; }
plot_python=$(python_with matplotlib) || {
  echo "report.sh: no python3 here can import matplotlib (scripts/install-deps.sh --compare," \
    "or set PYTHON=...)" >&2
  exit 1
}
torch_python=$(python_with torch) || torch_python=""
pandas_python=$(python_with pandas) || pandas_python=""
e2e_python=$(python_with "torch, pandas") || e2e_python=""

raw="$out_dir/raw"
rm -rf "$raw" "$out_dir/plots" "$out_dir/report.md"
mkdir -p "$raw"

# The exact command, with the knobs that were set.
{
  knobs=""
  for knob in REPETITIONS BENCH_MIN_TIME BENCH_ARGS SHARDPROP_BENCH_CSV_MB SHARDPROP_BENCH_DATA \
    CSV_ARGS PANDAS_REPEATS PYTORCH_STEP_ARGS E2E_EPOCHS E2E_RUNS E2E_ARGS SKIP PYTHON NOTES \
    OPENBLAS_CORETYPE OPENBLAS_NUM_THREADS; do
    value=${!knob:-}
    [[ -z $value ]] && continue
    if [[ $value =~ ^[A-Za-z0-9_.,/:=+-]+$ ]]; then
      knobs+="$knob=$value "
    else
      knobs+="$knob=\"$value\" "
    fi
  done
  echo "${knobs}${original_command% }"
} >"$raw/command.txt"
echo "report.sh: $(cat "$raw/command.txt")"

timings="$raw/timings.tsv"
: >"$timings"
# run_part NAME COMMAND...: runs it, records its wall time; a failing part is reported and the
# report goes on without it.
run_part() {
  local name=$1
  shift
  local start end
  echo
  echo "== $name"
  start=$(date +%s%N)
  if "$@"; then
    end=$(date +%s%N)
    printf '%s\t%s\n' "$name" "$(((end - start) / 1000000))" >>"$timings"
  else
    echo "report.sh: $name failed (exit $?); its section will say not measured" >&2
    printf '%s\tfailed\n' "$name" >>"$timings"
  fi
}

repetitions=${REPETITIONS:-5}
min_time=()
[[ -n ${BENCH_MIN_TIME:-} ]] && min_time=(--benchmark_min_time="$BENCH_MIN_TIME")
# Repetitions of every benchmark in a suite run in a shuffled order, so a step and its GEMM-only
# roof (or a parse and its read() limit) are sampled across the same minutes: on a shared
# machine whose speed drifts, their ratio then moves far less than either time.
interleave=(--benchmark_enable_random_interleaving=true)

if ! skipped bench; then
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
  run_part shardprop_bench "$bench" --benchmark_repetitions="$repetitions" \
    "${interleave[@]}" --benchmark_report_aggregates_only=true "${min_time[@]}" \
    --benchmark_out="$raw/shardprop_bench.json" --benchmark_out_format=json ${BENCH_ARGS:-}
fi

if ! skipped csv; then
  export SHARDPROP_BENCH_DATA="${SHARDPROP_BENCH_DATA:-$build_dir/benchmarks/csv_data}"
  export SHARDPROP_BENCH_CSV_MB="${SHARDPROP_BENCH_CSV_MB:-256}"
  # shellcheck disable=SC2086  # CSV_ARGS is a list of flags
  run_part shardprop_csv_bench "$csv_bench" --benchmark_repetitions="$repetitions" \
    "${interleave[@]}" --benchmark_report_aggregates_only=true "${min_time[@]}" \
    --benchmark_out="$raw/shardprop_csv_bench.json" --benchmark_out_format=json ${CSV_ARGS:-}
  if ! skipped pandas && [[ -n $pandas_python && -f $raw/shardprop_csv_bench.json ]]; then
    # The files the benchmark parsed, from its context.
    mapfile -t csv_files < <("$stdlib_python" - "$raw/shardprop_csv_bench.json" <<'EOF'
import json, sys
context = json.load(open(sys.argv[1], encoding="utf-8"))["context"]
for name in ("fashion_mnist_like", "higgs_like"):
    if f"csv_{name}" in context:
        print(context[f"csv_{name}"])
EOF
    )
    run_part csv_baselines "$pandas_python" "$script_dir/csv_baselines.py" \
      --repeats "${PANDAS_REPEATS:-3}" --json "$raw/csv_baselines.json" "${csv_files[@]}"
  elif ! skipped pandas; then
    echo "== csv_baselines.py skipped: no python3 here can import pandas (set PYTHON=...)"
  fi
fi

if ! skipped torch; then
  if [[ -n $torch_python ]]; then
    # shellcheck disable=SC2086  # PYTORCH_STEP_ARGS is a list of flags
    run_part pytorch_step "$torch_python" "$script_dir/pytorch_step.py" \
      --json "$raw/pytorch_step.json" ${PYTORCH_STEP_ARGS:-}
  else
    echo "== pytorch_step.py skipped: no python3 here can import torch (set PYTHON=...)"
  fi
fi

if ! skipped e2e; then
  if [[ -n $e2e_python ]]; then
    # shellcheck disable=SC2086  # E2E_ARGS is a list of flags
    run_part end_to_end "$e2e_python" "$script_dir/end_to_end.py" --build-dir "$build_dir" \
      --epochs "${E2E_EPOCHS:-2}" --runs "${E2E_RUNS:-3}" \
      --pytorch-step-json "$raw/pytorch_step.json" --json "$raw/end_to_end.json" ${E2E_ARGS:-}
  else
    echo "== end_to_end.py skipped: no python3 here can import torch and pandas (set PYTHON=...)"
  fi
fi

# The host name Google Benchmark records stays out of the published files.
for json in "$raw"/shardprop_bench.json "$raw"/shardprop_csv_bench.json; do
  [[ -f $json ]] || continue
  "$stdlib_python" - "$json" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1], encoding="utf-8"))
data.get("context", {}).pop("host_name", None)
json.dump(data, open(sys.argv[1], "w", encoding="utf-8"), indent=2)
EOF
done
"$stdlib_python" "$script_dir/machine_record.py" "$raw" --build-dir "$build_dir"
"$stdlib_python" - "$timings" "$raw/timings.json" <<'EOF'
import json, sys
parts = {}
for line in open(sys.argv[1], encoding="utf-8"):
    name, milliseconds = line.rstrip("\n").split("\t")
    parts[name] = None if milliseconds == "failed" else round(int(milliseconds) / 1000, 1)
json.dump({"seconds": parts}, open(sys.argv[2], "w", encoding="utf-8"), indent=1)
EOF
rm -f "$timings"

notes=()
[[ -n ${NOTES:-} ]] && notes=(--notes "$NOTES")
echo
echo "== make_report.py"
"$plot_python" "$script_dir/make_report.py" "$raw" "$out_dir" "${notes[@]}"

if ((publish)); then
  results="$script_dir/results"
  latest="$results/latest"
  if [[ -d $latest ]]; then
    date=$("$stdlib_python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["date"][:10])' \
      "$latest/raw/machine.json" 2>/dev/null || date -u +%F)
    target="$results/history/$date"
    suffix=1
    while [[ -e $target ]]; do
      suffix=$((suffix + 1))
      target="$results/history/$date-$suffix"
    done
    mkdir -p "$results/history"
    mv "$latest" "$target"
    echo "report.sh: moved the previous report to $target"
  fi
  mkdir -p "$latest/raw"
  cp "$raw"/*.json "$raw/command.txt" "$latest/raw/"
  "$plot_python" "$script_dir/make_report.py" "$latest/raw" "$latest" "${notes[@]}" \
    --readme "$repo_dir/README.md"
  echo "report.sh: published to $latest and README.md; commit both"
fi
