#!/usr/bin/env python3
"""End to end, CSV file to trained model on disk: `shardprop train` against the PyTorch + pandas
script a data scientist writes, each timed as a whole process.

Cases (files made with BUILD_DIR/benchmarks/shardprop_make_csv when missing):
  medium  --like fashion-mnist --rows 60000 (784 pixel columns, `label` 0..9), 784-1024-1024-10
  small   --like higgs --rows 500000 (28 float columns, `label` 0..1),       28-128-128-2
Both: relu, softmax cross-entropy, plain SGD at the same learning rate (shardprop train's
default, 0.1), minibatches of --batch-size rows in a fresh random order each epoch, features
standardized per column (population mean and deviation, constant columns left at 0: what
shardprop does by default), --epochs passes.

shardprop side: `shardprop train --data F --target label --layers ... --out model.st`, wall time
of the process. PyTorch side, a child process of this script from interpreter start-up to
torch.save: pandas.read_csv, to float32 numpy, standardize, torch tensors, per-epoch
torch.randperm, the same layers, CrossEntropyLoss, torch.optim.SGD, in its best configuration:
the environment and flags pytorch_step.py found fastest for the same network and threads (its
JSON, --pytorch-step-json), else OMP_WAIT_POLICY=PASSIVE (with more than one thread),
zero_grad(set_to_none=True), SGD foreach and flush_denormal. Both get OPENBLAS_NUM_THREADS=T.

Reports the median of --runs runs per side, the ratio (PyTorch seconds / shardprop seconds: how
many times faster shardprop is) and each side's mean training loss over the last epoch, to show
both trained. Needs torch and pandas (Debian: /usr/bin/python3 with python3-torch and
python3-pandas).

    /usr/bin/python3 benchmarks/end_to_end.py --build-dir build/bench [--epochs 2] [--runs 3]
        [--threads N] [--cases medium,small] [--json OUT]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))

CASES = {
    # name: (shardprop_make_csv --like, default rows, hidden widths, pytorch_step.py case)
    "medium": ("fashion-mnist", 60000, (1024, 1024), "medium"),
    "small": ("higgs", 500000, (128, 128), "small"),
}
TARGET = "label"


# ---------------------------------------------------------------------------------------------
# The PyTorch process: everything from here to torch.save is timed by the parent.


def torch_worker(args):
    import numpy
    import pandas
    import torch

    flags = json.loads(args.flags)
    torch.set_num_threads(args.torch_threads)
    torch.set_flush_denormal(bool(flags.get("flush_denormal", False)))
    torch.backends.mkldnn.enabled = bool(flags.get("mkldnn", True))
    torch.manual_seed(args.seed)

    frame = pandas.read_csv(args.data)
    labels = frame.pop(TARGET).to_numpy(dtype=numpy.int64)
    features = frame.to_numpy(dtype=numpy.float32)
    del frame
    mean = features.mean(axis=0, dtype=numpy.float64)
    deviation = features.std(axis=0, dtype=numpy.float64)
    deviation[deviation == 0] = 1.0
    features -= mean.astype(numpy.float32)
    features /= deviation.astype(numpy.float32)
    x = torch.from_numpy(features)
    y = torch.from_numpy(labels)
    classes = int(labels.max()) + 1

    widths = [x.shape[1]] + [int(w) for w in args.layers.split(",")] + [classes]
    layers = []
    for k in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[k], widths[k + 1]))
        if k < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    loss_fn = torch.nn.CrossEntropyLoss()
    sgd_options = {"lr": args.lr}
    if flags.get("foreach"):
        sgd_options["foreach"] = True
    optimizer = torch.optim.SGD(model.parameters(), **sgd_options)
    set_to_none = bool(flags.get("set_to_none", False))

    rows = x.shape[0]
    epoch_loss = float("nan")
    for _ in range(args.epochs):
        order = torch.randperm(rows)
        total = 0.0
        for begin in range(0, rows, args.batch_size):
            index = order[begin:begin + args.batch_size]
            optimizer.zero_grad(set_to_none=set_to_none)
            loss = loss_fn(model(x[index]), y[index])
            loss.backward()
            optimizer.step()
            total += loss.item() * index.shape[0]
        epoch_loss = total / rows
    torch.save(model.state_dict(), args.out)
    with open(args.result, "w", encoding="utf-8") as f:
        json.dump({"final_loss": epoch_loss, "torch_version": torch.__version__,
                   "pandas_version": pandas.__version__}, f)


# ---------------------------------------------------------------------------------------------
# The parent: data files, the runs, the summary.


def timed_process(command, env, log_path):
    """Runs command to completion: (wall seconds, max RSS in MB). Raises on failure."""
    with open(log_path, "w", encoding="utf-8") as log:
        start = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            tail = log.read()[-2000:]
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n{tail}")
    return seconds, usage.ru_maxrss / 1024.0


def make_file(args, like, rows):
    path = os.path.join(args.data_dir, f"{like.replace('-', '_')}_like_{rows}.csv")
    if not os.path.exists(path):
        make_csv = os.path.join(args.build_dir, "benchmarks", "shardprop_make_csv")
        if not os.access(make_csv, os.X_OK):
            sys.exit(f"end_to_end: {make_csv} not found: build it (cmake --build --preset bench)")
        os.makedirs(args.data_dir, exist_ok=True)
        print(f"making {path}", flush=True)
        subprocess.run([make_csv, "--like", like, "--rows", str(rows), "--out", path], check=True)
    with open(path, "rb") as f:  # into the page cache, as for every later run
        while f.read(1 << 24):
            pass
    return path


def best_torch_config(args, step_case):
    """(environment label, torch threads, environment changes, flags label, flags)."""
    sys.path.insert(0, SCRIPT_DIR)
    import pytorch_step  # the same variants pytorch_step.py measures

    environments = {label: (torch_threads, changes)
                    for label, torch_threads, changes in pytorch_step.environment_variants(args.threads)}
    flag_sets = dict(pytorch_step.FLAG_VARIANTS)
    environment = "omp-passive" if args.threads > 1 else "omp-default"
    flags = "set_to_none+foreach+flush_denormal"
    if args.pytorch_step_json and os.path.exists(args.pytorch_step_json):
        with open(args.pytorch_step_json, encoding="utf-8") as f:
            measured = json.load(f)
        for r in measured.get("best", []):
            if r["case"] == step_case and r["threads"] == args.threads:
                if r["environment"] in environments and r["flags"] in flag_sets:
                    environment, flags = r["environment"], r["flags"]
    torch_threads, changes = environments[environment]
    return environment, torch_threads, changes, flags, flag_sets[flags]


def shardprop_metrics(metrics_path):
    """(final training loss, seconds of the epochs proper) from a --metrics file."""
    lines = []
    with open(metrics_path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                lines.append(json.loads(line))
    if not lines:
        return None, None
    return lines[-1].get("train_loss"), sum(line.get("epoch_seconds", 0.0) for line in lines)


def run_case(args, name, scratch):
    like, default_rows, hidden, step_case = CASES[name]
    rows = args.medium_rows if name == "medium" else args.small_rows
    rows = rows or default_rows
    data = make_file(args, like, rows)
    layers = ",".join(str(w) for w in hidden)
    shardprop = os.path.join(args.build_dir, "apps", "shardprop")
    if not os.access(shardprop, os.X_OK):
        sys.exit(f"end_to_end: {shardprop} not found: build it (cmake --build --preset bench)")

    base_env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads))
    ours = {"seconds": [], "max_rss_mb": [], "final_loss": None, "epoch_seconds": []}
    # The same command with --stream: the file read in blocks every epoch instead of held.
    streamed = {"seconds": [], "max_rss_mb": [], "final_loss": None, "epoch_seconds": []}
    metrics = os.path.join(scratch, f"{name}_metrics.jsonl")
    command = [shardprop, "train", "--data", data, "--target", TARGET, "--layers", layers,
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
               "--lr", str(args.lr), "--threads", str(args.threads), "--seed", str(args.seed),
               "--out", os.path.join(scratch, f"{name}.st"), "--metrics", metrics, "--quiet"]
    stream_command = command + ["--stream"]
    environment, torch_threads, changes, flags_label, flags = best_torch_config(args, step_case)
    theirs = {"seconds": [], "max_rss_mb": [], "final_loss": None,
              "environment": environment, "flags": flags_label, "torch_threads": torch_threads}
    torch_result = os.path.join(scratch, f"{name}_torch.json")
    torch_command = [sys.executable, os.path.abspath(__file__), "--torch-worker",
                     "--data", data, "--layers", layers, "--epochs", str(args.epochs),
                     "--batch-size", str(args.batch_size), "--lr", str(args.lr),
                     "--torch-threads", str(torch_threads), "--flags", json.dumps(flags),
                     "--seed", str(args.seed), "--out", os.path.join(scratch, f"{name}.pt"),
                     "--result", torch_result]
    torch_env = dict(base_env, **changes)
    info = {}
    for run in range(args.runs):  # alternate the sides, so that drift hits both alike
        for side, side_command, log in ((ours, command, "shardprop"),
                                        (streamed, stream_command, "shardprop_stream")):
            if os.path.exists(metrics):
                os.remove(metrics)
            seconds, rss = timed_process(side_command, base_env,
                                         os.path.join(scratch, f"{name}_{log}.log"))
            side["seconds"].append(seconds)
            side["max_rss_mb"].append(rss)
            side["final_loss"], epoch_seconds = shardprop_metrics(metrics)
            side["epoch_seconds"].append(epoch_seconds)
        seconds, rss = timed_process(torch_command, torch_env, os.path.join(scratch, f"{name}_torch.log"))
        theirs["seconds"].append(seconds)
        theirs["max_rss_mb"].append(rss)
        with open(torch_result, encoding="utf-8") as f:
            info = json.load(f)
        theirs["final_loss"] = info["final_loss"]
        print(f"  {name} run {run + 1}/{args.runs}: shardprop {ours['seconds'][-1]:.2f} s "
              f"(--stream {streamed['seconds'][-1]:.2f} s), PyTorch {theirs['seconds'][-1]:.2f} s",
              flush=True)
    for side in (ours, theirs, streamed):
        side["median_seconds"] = statistics.median(side["seconds"])
    for side in (ours, streamed):
        side["median_epoch_seconds"] = statistics.median(side["epoch_seconds"])
    return {
        "case": name, "file": data, "bytes": os.path.getsize(data), "rows": rows,
        "layers": layers, "shardprop_command": " ".join(command),
        "shardprop": ours, "pytorch": theirs, "shardprop_stream": streamed,
        "ratio": theirs["median_seconds"] / ours["median_seconds"],
        # Streamed over in-memory: the whole command, and the epochs alone (setup passes out).
        "stream_ratio": streamed["median_seconds"] / ours["median_seconds"],
        "stream_epoch_ratio": streamed["median_epoch_seconds"] / ours["median_epoch_seconds"],
        "torch_version": info.get("torch_version"), "pandas_version": info.get("pandas_version"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", default="build/bench",
                        help="where apps/shardprop and benchmarks/shardprop_make_csv are")
    parser.add_argument("--data-dir", help="where the CSV files are made and kept "
                        "(default BUILD_DIR/benchmarks/e2e_data)")
    parser.add_argument("--cases", default="medium,small", help="medium, small (default both)")
    parser.add_argument("--epochs", type=int, default=2, help="passes over the data (default 2)")
    parser.add_argument("--runs", type=int, default=3, help="runs per side, median (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="threads for both sides (default: the core count)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.1, help="default: shardprop train's, 0.1")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--medium-rows", type=int, help="rows of the medium file (default 60000)")
    parser.add_argument("--small-rows", type=int, help="rows of the small file (default 500000)")
    parser.add_argument("--pytorch-step-json",
                        help="pytorch_step.py's JSON: take PyTorch's fastest configuration from it")
    parser.add_argument("--json", help="also write the results here")
    # The PyTorch child process.
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--layers", help=argparse.SUPPRESS)
    parser.add_argument("--torch-threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--flags", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        torch_worker(args)
        return 0
    if args.epochs < 1 or args.runs < 1 or args.threads < 1:
        parser.error("--epochs, --runs and --threads must be at least 1")
    cases = [c for c in args.cases.split(",") if c]
    for case in cases:
        if case not in CASES:
            parser.error(f"unknown case {case!r} (expected {', '.join(CASES)})")
    try:  # checked here, used by the child
        __import__("pandas")
        __import__("torch")
    except ImportError as error:
        print(f"end_to_end: error: {error} (Debian: python3-torch and python3-pandas; run this "
              "with /usr/bin/python3)", file=sys.stderr)
        return 1
    args.data_dir = args.data_dir or os.path.join(args.build_dir, "benchmarks", "e2e_data")

    results = []
    with tempfile.TemporaryDirectory(prefix="shardprop_e2e_") as scratch:
        for case in cases:
            results.append(run_case(args, case, scratch))
    print()
    print(f"{'case':<7} {'MB':>7} {'shardprop s':>12} {'PyTorch s':>10} {'ratio':>7} "
          f"{'loss ours':>10} {'loss torch':>10}  PyTorch config")
    for r in results:
        print(f"{r['case']:<7} {r['bytes'] / 1e6:>7.1f} {r['shardprop']['median_seconds']:>12.2f} "
              f"{r['pytorch']['median_seconds']:>10.2f} {r['ratio']:>6.2f}x "
              f"{r['shardprop']['final_loss'] or float('nan'):>10.4f} "
              f"{r['pytorch']['final_loss']:>10.4f}  "
              f"{r['pytorch']['environment']}, {r['pytorch']['flags']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"threads": args.threads, "epochs": args.epochs, "runs": args.runs,
                       "batch_size": args.batch_size, "lr": args.lr,
                       "python": platform.python_version(), "cases": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
