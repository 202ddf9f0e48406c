#!/usr/bin/env bash
# Installs the Debian 12 packages shardprop needs, only those that are missing (idempotent).
#   scripts/install-deps.sh            build: compiler, CMake, Ninja, TBB, OpenBLAS, CLI11, ...
#   scripts/install-deps.sh --main     also the Fashion-MNIST package (the README's main job)
#   scripts/install-deps.sh --test     also Catch2, Google Benchmark, gfortran, clang-format,
#                                      Open MPI, matplotlib, clang and libFuzzer (the test
#                                      command: tests, benchmark smoke runs, the Fortran example,
#                                      the formatting check, the MPI tests, which find a job's
#                                      ranks with procps' pgrep, the report generator's test, and
#                                      the fuzz targets, which clang builds with libFuzzer)
#   scripts/install-deps.sh --mpi      also Open MPI (training across processes and nodes)
#   scripts/install-deps.sh --bench    also Google Benchmark (the benchmark binaries)
#   scripts/install-deps.sh --compare  also PyTorch, pandas and matplotlib, for the benchmark
#                                      report only (benchmarks/report.sh)
set -euo pipefail

packages=(g++ cmake ninja-build pkg-config python3 libtbb-dev libopenblas-dev libcli11-dev
          nlohmann-json3-dev libfast-float-dev zlib1g-dev libzstd-dev libisal-dev)
for arg in "$@"; do
  case "$arg" in
    --main) packages+=(dataset-fashion-mnist) ;;
    --test) packages+=(catch2 libbenchmark-dev gfortran clang-format libopenmpi-dev openmpi-bin
                       procps python3-matplotlib clang libclang-rt-14-dev) ;;
    --mpi) packages+=(libopenmpi-dev openmpi-bin) ;;
    --bench) packages+=(libbenchmark-dev) ;;
    --compare) packages+=(python3-torch python3-pandas python3-matplotlib time) ;;
    *) echo "install-deps.sh: unknown option '$arg' (expected --main, --test, --mpi, --bench or --compare)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps.sh: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps.sh: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: need root to install packages (run as root or with sudo)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
