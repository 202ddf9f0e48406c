#!/usr/bin/env bash
# Builds and runs a program against an installed shardprop the way a user would.
#   consumer_test.sh install  BUILD_DIR PREFIX            cmake --install into PREFIX (fresh)
#   consumer_test.sh cmake    SOURCE_DIR WORK_DIR PREFIX PROGRAM [LAUNCHER...]
#                                     configure SOURCE_DIR with find_package(shardprop), build, run
#                                     (through LAUNCHER, e.g. mpirun -np 2, when given)
#   consumer_test.sh pkgconfig SOURCE.c WORK_DIR PREFIX   cc + `pkg-config --cflags --libs` only
#   consumer_test.sh headers  SOURCE_DIR WORK_DIR PREFIX  every public header compiles alone, and
#                                     a program links the static library and runs
#   consumer_test.sh subproject SOURCE_DIR WORK_DIR       add_subdirectory(shardprop) adds only
#                                     the library and keeps the consumer's build type
#   consumer_test.sh main-job SOURCE_DIR WORK_DIR         the release preset without Catch2 and
#                                     Google Benchmark builds the executable (the README's first command)
# Exits 77 (ctest: skipped) when the program needs a compiler this machine lacks.
#
# SHARDPROP_CONSUMER_FLAGS (set by ctest when the library is built with sanitizers): flags every
# consumer compiles and links with too, as a sanitized library needs its runtime first.
set -euo pipefail
mode=$1
shift
extra=${SHARDPROP_CONSUMER_FLAGS:-}

case "$mode" in
  install)
    build=$1 prefix=$2
    rm -rf "$prefix"
    cmake --install "$build" --prefix "$prefix"
    test -f "$prefix/lib/cmake/shardprop/shardprop-config.cmake"
    test -f "$prefix/lib/pkgconfig/shardprop.pc"
    test -f "$prefix/include/shardprop.h"
    test -x "$prefix/bin/shardprop"
    # The SONAME names the ABI; the executable and the library report the same version.
    soname=$(objdump -p "$prefix"/lib/libshardprop.so | awk '/SONAME/ {print $2}')
    test -n "$soname" && test -e "$prefix/lib/$soname"
    echo "installed $soname, shardprop $("$prefix/bin/shardprop" --version)"
    ;;
  cmake)
    source=$1 work=$2 prefix=$3 program=$4
    shift 4
    if [[ "$(basename "$source")" == fortran ]] && ! command -v gfortran >/dev/null; then
      echo "SKIPPED: gfortran is not installed (scripts/install-deps.sh --test installs it)"
      exit 77
    fi
    rm -rf "$work"
    cmake -S "$source" -B "$work" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_C_FLAGS="-Wall -Wextra -Werror $extra" -DCMAKE_CXX_FLAGS="-Wall -Wextra -Werror $extra" \
      ${extra:+-DCMAKE_Fortran_FLAGS="$extra"}
    cmake --build "$work"
    cd "$work" && "$@" "./$program"
    ;;
  pkgconfig)
    source=$1 work=$2 prefix=$3
    rm -rf "$work" && mkdir -p "$work" && cd "$work"
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
    test "$(pkg-config --modversion shardprop)" = "$("$prefix/bin/shardprop" --version)"
    # shellcheck disable=SC2046  # word splitting of pkg-config's flags is the point
    # shellcheck disable=SC2086  # $extra is a list of flags
    cc -std=c11 -Wall -Wextra -Werror -pedantic $extra -o program "$source" \
      $(pkg-config --cflags --libs shardprop) -lm
    LD_LIBRARY_PATH="$prefix/lib" ./program
    ;;
  headers)
    source=$1 work=$2 prefix=$3
    rm -rf "$work"
    cmake -S "$source" -B "$work" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
      ${extra:+-DCMAKE_CXX_FLAGS="$extra" -DCMAKE_C_FLAGS="$extra"}
    cmake --build "$work"
    ;;
  subproject)
    source=$1 work=$2
    rm -rf "$work"
    cmake -S "$source/tests/package/subproject" -B "$work" -G Ninja -DSHARDPROP_SOURCE_DIR="$source"
    ;;
  main-job)
    source=$1 work=$2
    rm -rf "$work"
    cmake -S "$source" --preset release -B "$work" \
      -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=TRUE -DCMAKE_DISABLE_FIND_PACKAGE_benchmark=TRUE
    cmake --build "$work"
    test -x "$work/apps/shardprop"
    # Only the library and the executable: no test or benchmark binary.
    if [ -e "$work/tests/shardprop_tests" ] || [ -d "$work/benchmarks" ]; then
      echo "the release preset built tests or benchmarks" >&2
      exit 1
    fi
    "$work/apps/shardprop" --version
    ;;
  *)
    echo "consumer_test.sh: unknown mode '$mode'" >&2
    exit 2
    ;;
esac
