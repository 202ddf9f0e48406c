#!/usr/bin/env bash
# `shardprop train` under mpirun, as a user runs it.
#   cli_mpi_test.sh equal   SHARDPROP MPIRUN WORK   -np 1, -np 2 and no launcher write the same file
#   cli_mpi_test.sh equal-stream ...                the same, streaming through a small shuffle buffer
#   cli_mpi_test.sh resume  SHARDPROP MPIRUN WORK   a 1-rank checkpoint resumed on 2 ranks continues
#                                                  bitwise as an uninterrupted 2-rank run
#   cli_mpi_test.sh bad-row SHARDPROP MPIRUN WORK   a malformed row in rank 1's part ends the job,
#                                                  non-zero, with rank 1's message printed once
#   cli_mpi_test.sh killed  SHARDPROP MPIRUN WORK   a rank killed mid-run ends the job, non-zero
# MPIRUN is the launcher with its flags (for example "mpirun --allow-run-as-root --oversubscribe").
# Every case must end within 60 seconds of the fault.
set -euo pipefail
mode=$1 shardprop=$2 mpirun=$3 work=$4
rm -rf "$work" && mkdir -p "$work" && cd "$work"

# A CSV of `rows` rows: 10 features, 3 classes named by text, ids in a quoted column.
make_csv() {
  python3 - "$1" "$2" <<'PY'
import random, sys
path, rows = sys.argv[1], int(sys.argv[2])
rng = random.Random(4)
with open(path, "w") as f:
    f.write("id," + ",".join(f"x{j}" for j in range(10)) + ",label\n")
    for i in range(rows):
        c = rng.randrange(3)
        xs = [rng.gauss(1.5 if j % 3 == c else 0.0, 1.0) for j in range(10)]
        f.write(f'"row, {i}",' + ",".join(f"{x:.5f}" for x in xs) + f",class-{'abc'[c]}\n")
PY
}

train=(train --ignore id --layers 32,16 --batch-norm --optimizer adam --lr 0.01
       --batch-size 64 --shards 4 --threads 1 --seed 3 --quiet)

case "$mode" in
  equal)
    make_csv data.csv 3001
    "$shardprop" "${train[@]}" --data data.csv --val-split 0.1 --epochs 3 --out alone.safetensors
    $mpirun -np 1 "$shardprop" "${train[@]}" --data data.csv --val-split 0.1 --epochs 3 \
      --out np1.safetensors
    $mpirun -np 2 "$shardprop" "${train[@]}" --data data.csv --val-split 0.1 --epochs 3 \
      --out np2.safetensors
    $mpirun -np 2 "$shardprop" "${train[@]}" --data data.csv --val-split 0.1 --epochs 3 \
      --out np2-again.safetensors
    cmp alone.safetensors np1.safetensors
    cmp np1.safetensors np2.safetensors
    cmp np2.safetensors np2-again.safetensors
    echo "no launcher, -np 1 and -np 2 (twice) wrote identical checkpoints"
    ;;
  equal-stream)
    make_csv data.csv 3001
    stream=(--stream --shuffle-buffer-mb 0.02 --val-split 0.1 --epochs 2)
    "$shardprop" "${train[@]}" "${stream[@]}" --data data.csv --out alone.safetensors
    $mpirun -np 1 "$shardprop" "${train[@]}" "${stream[@]}" --data data.csv --out np1.safetensors
    $mpirun -np 2 "$shardprop" "${train[@]}" "${stream[@]}" --data data.csv --out np2.safetensors
    $mpirun -np 3 "$shardprop" "${train[@]}" "${stream[@]}" --data data.csv --out np3.safetensors
    cmp alone.safetensors np1.safetensors
    # Weights and every other metadata entry bitwise; the recorded validation losses to 1e-8:
    # a streamed evaluation runs the forward pass on each rank's own blocks of rows, and some
    # BLAS kernels (OpenBLAS's Zen ones) round a row differently with the call's row count.
    python3 - np1.safetensors np2.safetensors np3.safetensors <<'PY'
import json, math, struct, sys
def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    metadata = header.pop("__metadata__", {})
    tensors = {k: body[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}
    return tensors, metadata
def close(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-8, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return a == b
base_tensors, base_meta = read(sys.argv[1])
for path in sys.argv[2:]:
    tensors, meta = read(path)
    if tensors != base_tensors:
        sys.exit(path + ": tensors differ from " + sys.argv[1])
    if meta.keys() != base_meta.keys():
        sys.exit(path + ": metadata keys differ from " + sys.argv[1])
    for key in meta:
        if meta[key] == base_meta[key]:
            continue
        if key != "shardprop.run" or not close(json.loads(meta[key]), json.loads(base_meta[key])):
            sys.exit(path + ": metadata " + key + " differs: " + meta[key] + " vs " + base_meta[key])
PY
    echo "streaming: no launcher, -np 1, 2 and 3 wrote the same weights and metadata"
    ;;
  resume)
    make_csv data.csv 2000
    $mpirun -np 1 "$shardprop" "${train[@]}" --data data.csv --epochs 2 --out first.safetensors
    $mpirun -np 2 "$shardprop" train --resume first.safetensors --epochs 4 --quiet \
      --out resumed.safetensors
    $mpirun -np 2 "$shardprop" "${train[@]}" --data data.csv --epochs 4 --out straight.safetensors
    # The files differ only where they record where they came from: compare the weights.
    python3 - <<'PY'
import json, struct, sys
def tensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    header.pop("__metadata__", None)
    return {k: body[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}
a, b = tensors("resumed.safetensors"), tensors("straight.safetensors")
if a != b:
    sys.exit("resumed and uninterrupted 2-rank runs differ in: " +
             ", ".join(k for k in a if a[k] != b.get(k)))
print(f"a 1-rank checkpoint resumed on 2 ranks equals the uninterrupted run ({len(a)} tensors)")
PY
    ;;
  bad-row)
    make_csv data.csv 4000
    # A row near the end, so in rank 1's half of the bytes: a field that is not a number.
    line=3900
    sed -i "${line}s/,[-0-9.]*,/,oops,/" data.csv
    start=$(date +%s)
    set +e
    $mpirun -np 2 "$shardprop" "${train[@]}" --data data.csv --epochs 2 --out never.safetensors \
      > out.txt 2> err.txt
    status=$?
    set -e
    elapsed=$(( $(date +%s) - start ))
    cat err.txt
    test "$status" -ne 0
    test "$elapsed" -lt 60
    test "$(grep -c '^shardprop: error:' err.txt)" -eq 1
    grep -q "^shardprop: error: rank 1: data.csv:${line}:[0-9]* (column 2 'x0')" err.txt
    test ! -e never.safetensors
    echo "a bad row in rank 1's part ended the job in ${elapsed}s with status $status"
    ;;
  killed)
    make_csv data.csv 20000
    $mpirun -np 2 "$shardprop" "${train[@]}" --data data.csv --epochs 100000 > out.txt 2>&1 &
    launcher=$!
    # Wait until both ranks train, then kill one.
    for _ in $(seq 100); do
      pids=$(pgrep -f "shardprop train .*--epochs 100000" | grep -v "^$launcher\$" || true)
      [ "$(echo "$pids" | grep -c .)" -ge 2 ] && break
      sleep 0.2
    done
    sleep 1
    victim=$(echo "$pids" | tail -1)
    start=$(date +%s)
    kill -9 "$victim"
    set +e
    timeout 60 tail --pid="$launcher" -f /dev/null
    wait "$launcher"
    status=$?
    set -e
    elapsed=$(( $(date +%s) - start ))
    test "$status" -ne 0
    test "$elapsed" -lt 60
    if pgrep -f "shardprop train .*--epochs 100000" > /dev/null; then
      echo "ranks left running" >&2
      exit 1
    fi
    echo "killing one rank ended the job in ${elapsed}s with status $status"
    ;;
  *)
    echo "cli_mpi_test.sh: unknown mode $mode" >&2
    exit 2
    ;;
esac
