#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/CMakeLists.txt, with clang) and runs them.
#   tests/fuzz/run.sh SECONDS [TARGET...]     build in build/fuzz, then run each target (default:
#                                             all) for SECONDS, one after the other
#   tests/fuzz/run.sh build BUILD_DIR         configure and build the targets in BUILD_DIR
#   tests/fuzz/run.sh run BUILD_DIR TARGET SECONDS
#                                             run one target for SECONDS (what ctest does)
# A run starts from the seed corpus tests/fuzz/corpus/TARGET and keeps the inputs it finds in
# BUILD_DIR/corpus/TARGET. Any crash, sanitizer report, leak, timeout (10 s on one input) or
# memory blow-up (2 GB) fails it; the input is saved in BUILD_DIR/findings/TARGET and the
# command that reproduces it printed. Exits 77 (ctest: skipped) when clang or libFuzzer is
# missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

skip() {
  echo "SKIPPED: $1 (scripts/install-deps.sh --test installs clang and libclang-rt-14-dev)"
  exit 77
}

# clang++ that links a fuzzer with both sanitizers (libFuzzer is in Debian's libclang-rt-NN-dev).
check_clang() {
  command -v clang++ >/dev/null || skip "fuzz targets need clang++, which is not installed"
  local probe
  probe=$(mktemp -d)
  printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
    'extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }' \
    >"$probe/probe.cpp"
  if ! clang++ -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" \
    >"$probe/log" 2>&1; then
    rm -rf "$probe"
    skip "clang++ cannot link a libFuzzer target (libFuzzer or the sanitizer runtimes are missing)"
  fi
  rm -rf "$probe"
}

build() {
  local build_dir=$1
  check_clang
  CC=clang CXX=clang++ cmake -S "$here" -B "$build_dir" -G Ninja
  cmake --build "$build_dir"
}

run() {
  local build_dir=$1 target=$2 seconds=$3
  local binary=$build_dir/${target}_fuzz
  if [ ! -x "$binary" ]; then
    check_clang  # says why when that is the reason
    echo "$binary is missing: build it first (tests/fuzz/run.sh build $build_dir)" >&2
    exit 1
  fi
  local corpus=$build_dir/corpus/$target findings=$build_dir/findings/$target
  mkdir -p "$corpus" "$findings"
  local log=$build_dir/$target.log status=0
  # One process, single-threaded BLAS: the machine may be shared; coverage should depend on the
  # input alone.
  OPENBLAS_NUM_THREADS=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$corpus" "$here/corpus/$target" 2>&1 | tee "$log" ||
    status=$?  # the fuzzer's status (pipefail)
  local runs
  runs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  if [ "$status" -ne 0 ]; then
    echo "FAILED: $target, after ${runs:-?} executions; the input is in $findings/:"
    ls -t "$findings" | head -3 || true
    echo "Reproduce: $binary $findings/<file>; fix the bug, add the file to" \
      "tests/fuzz/corpus/$target and a regression test"
    exit 1
  fi
  echo "$target: ${runs:-?} executions in $seconds s, no finding;" \
    "corpus $(ls "$corpus" | wc -l) new + $(ls "$here/corpus/$target" | wc -l) seed inputs"
}

case "${1:-}" in
  build) build "$2" ;;
  run) run "$2" "$3" "$4" ;;
  '' | -h | --help) sed -n '2,13p' "$0"; exit 2 ;;
  *)
    seconds=$1
    shift
    build_dir=$here/../../build/fuzz
    targets=("$@")
    if [ ${#targets[@]} -eq 0 ]; then
      read -r -a targets <<<"$(sed -n 's/^set(shardprop_fuzz_targets \(.*\))$/\1/p' \
        "$here/targets.cmake")"
    fi
    build "$build_dir"
    for target in "${targets[@]}"; do run "$build_dir" "$target" "$seconds"; done
    ;;
esac
