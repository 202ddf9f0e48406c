#!/usr/bin/env bash
# Builds oneTBB with ThreadSanitizer from Debian's source package, for the `tsan` CMake preset.
#   scripts/build-tsan-tbb.sh [PREFIX]     PREFIX defaults to build/tsan-deps (inside the checkout)
#
# Why: Debian's libtbb is not built with -fsanitize=thread, so TSan cannot see the
# synchronisation inside it (its spin locks, task queues and atomics) and reports every handoff
# of data between TBB worker threads as a race. Suppressing libtbb frames would also hide races
# in shardprop's own task bodies, which always run under libtbb frames. An instrumented libtbb
# makes those reports unnecessary; the version built is the one libtbb-dev has installed, so
# headers and library agree.
#
# Needs (installed here when missing, as root): dpkg-dev (dpkg-source, to unpack the package
# with Debian's patches), cmake, ninja-build and g++. Adds a `deb-src` entry for bookworm in
# /etc/apt/sources.list.d/shardprop-deb-src.sources only if apt has no source entry for it.
# Idempotent: a finished build (stamp file PREFIX/.shardprop-tsan-tbb holding the version) is
# left alone; delete PREFIX to rebuild.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${1:-$root/build/tsan-deps}"
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
work="$prefix/src"
stamp="$prefix/.shardprop-tsan-tbb"

say() { echo "build-tsan-tbb.sh: $*"; }
fail() { echo "build-tsan-tbb.sh: error: $*" >&2; exit 1; }

version="$(dpkg-query -W -f='${Version}' libtbb-dev 2>/dev/null || true)"
[ -n "$version" ] || fail "libtbb-dev is not installed (run scripts/install-deps.sh first)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$version" ] \
   && [ -f "$prefix/lib/cmake/TBB/TBBConfig.cmake" ]; then
  say "ThreadSanitizer oneTBB $version already in $prefix"
  exit 0
fi

need_root() {
  [ "$(id -u)" -eq 0 ] || fail "need root to $1 (run as root or with sudo)"
}

missing=()
for p in dpkg-dev cmake ninja-build g++; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  need_root "install ${missing[*]}"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# `apt-get source` needs a deb-src entry; add one (in a file this script owns) only when apt has
# none for bookworm, so a machine's own source configuration is never changed.
has_deb_src() {
  grep -rhsE '^[[:space:]]*(deb-src[[:space:]].*bookworm|Types:.*deb-src)' \
    /etc/apt/sources.list /etc/apt/sources.list.d/ >/dev/null
}
if ! has_deb_src; then
  need_root "add a deb-src entry for bookworm"
  say "adding /etc/apt/sources.list.d/shardprop-deb-src.sources"
  cat > /etc/apt/sources.list.d/shardprop-deb-src.sources <<'SOURCES'
# Added by shardprop's scripts/build-tsan-tbb.sh: source packages, to build oneTBB with TSan.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  apt-get update -qq
fi

# Download the exact source version that matches the installed headers, and unpack it with
# Debian's patches applied.
upstream="${version%-*}"
srcdir="$work/onetbb-$upstream"
mkdir -p "$work"
if [ ! -f "$srcdir/CMakeLists.txt" ]; then
  say "downloading the source of onetbb $version"
  (cd "$work" && apt-get source --download-only -qq "onetbb=$version") \
    || fail "apt-get source onetbb=$version failed (is a deb-src entry for bookworm configured?)"
  dsc="$(ls "$work"/onetbb_*.dsc | head -n 1)"
  rm -rf "$srcdir"
  dpkg-source --no-check -x "$dsc" "$srcdir" >/dev/null
fi

# TBB_SANITIZE=thread adds -fsanitize=thread to oneTBB's own flags. Tests, tbbmalloc and
# tbbbind (hwloc) are not needed (shardprop links only TBB::tbb), which keeps the build short.
# -Wno-tsan: GCC warns, once per use, that TSan does not model std::atomic_thread_fence; oneTBB
# uses seq_cst fences in its sleep/wake-up protocol (concurrent_monitor), whose shared state is
# otherwise guarded by locks and atomics that TSan does see. docs/reliability.md says what this
# means for the runs.
say "building onetbb $version with -fsanitize=thread into $prefix"
cmake -S "$srcdir" -B "$work/build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-Wno-tsan" \
  -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DCMAKE_INSTALL_LIBDIR=lib \
  -DTBB_SANITIZE=thread \
  -DTBB_TEST=OFF -DTBB_EXAMPLES=OFF -DTBB_STRICT=OFF \
  -DTBBMALLOC_BUILD=OFF -DTBBMALLOC_PROXY_BUILD=OFF -DTBB4PY_BUILD=OFF \
  -DTBB_DISABLE_HWLOC_AUTOMATIC_SEARCH=ON \
  >/dev/null
cmake --build "$work/build" -j "${JOBS:-2}"
cmake --install "$work/build" >/dev/null
echo "$version" > "$stamp"
say "done: ThreadSanitizer oneTBB $version in $prefix (TBB_DIR=$prefix/lib/cmake/TBB)"
