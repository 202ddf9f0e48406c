#!/usr/bin/env bash
# The README's main job: prepare Fashion-MNIST as CSV (from the Debian package
# dataset-fashion-mnist) if needed, train the default network on the 60,000 training images and
# report the accuracy on the 10,000 test images after every epoch, then evaluate the written
# model on them (per-class precision and recall, confusion matrix).
# Usage: datasets/main-job.sh [BUILD_DIR]   (default: build/release)
#   MAIN_JOB_DATA=spirals  trains on the shipped two-spirals CSV instead (no package needed).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-build/release}
exe="$build/apps/shardprop"
[ -x "$exe" ] || { echo "main-job.sh: $exe not found; build first (see README)" >&2; exit 1; }
mkdir -p "$build/out"

if [ "${MAIN_JOB_DATA:-fashion-mnist}" = spirals ]; then
  # Two interleaved spirals: not linearly separable, learned to 100% by a 2-64-64-2 relu net.
  exec "$exe" train --data "$here/two-spirals.csv" --target label --layers 64,64 \
    --activation relu --loss xent --epochs 300 --batch-size 16 --lr 0.1 --seed 1 \
    --out "$build/out/two-spirals.safetensors"
fi

data="$here/generated"
python3 "$here/prepare_fashion_mnist.py" --out-dir "$data"
# 784-256-128-10 relu, softmax cross-entropy, z-scored pixels; the test set is the validation
# set, so "val accuracy" is the test accuracy.
"$exe" train --data "$data/fashion-mnist-train.csv" --val "$data/fashion-mnist-test.csv" \
  --target label --layers 256,128 --activation relu --loss xent --epochs 10 --batch-size 256 \
  --lr 0.1 --seed 1 --out "$build/out/fashion-mnist.safetensors"
exec "$exe" evaluate --model "$build/out/fashion-mnist.safetensors" \
  --data "$data/fashion-mnist-test.csv"
