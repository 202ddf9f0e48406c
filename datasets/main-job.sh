#!/usr/bin/env bash
# The README's main job: train the default network on a shipped dataset and print per-epoch
# loss and accuracy. Usage: datasets/main-job.sh [BUILD_DIR]   (default: build/release)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build/release}
exe="$build/apps/shardprop"
[ -x "$exe" ] || { echo "main-job.sh: $exe not found; build first (see README)" >&2; exit 1; }
mkdir -p "$build/out"
# Two interleaved spirals: not linearly separable, learned to 100% by a 2-64-64-2 relu net.
"$exe" train --data "$here/two-spirals.csv" --target label --layers 64,64 --activation relu \
  --loss xent --epochs 300 --batch-size 16 --lr 0.1 --seed 1 --out "$build/out/two-spirals.safetensors"
