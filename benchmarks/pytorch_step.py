#!/usr/bin/env python3
"""PyTorch's time for the steps shardprop_bench's BM_Step and BM_Evaluate measure, for reports.

One SGD step (zero_grad, forward, loss, backward, step) in float32 on a fixed random minibatch:
  medium           784-1024-1024-10 relu, CrossEntropyLoss, batch 256 (BM_Step/medium)
  medium_batch1024 the same at batch 1024 (BM_StepBatch/medium/batch:1024)
  medium_bn        medium with BatchNorm1d after each hidden Linear, before its ReLU, as
                   shardprop's ModelSpec::mlp(..., batch_norm=true) places it (BM_Step/medium_bn)
  small            64-128-128-10 relu, CrossEntropyLoss, batch 256 (BM_Step/small)
  tiny             2-3-2 sigmoid (output too), MSELoss, batch 4 (BM_Step/tiny)
SGD lr 0.01. Inference, as BM_Evaluate measures it (16 minibatches of rows in memory):
  medium_eval, small_eval  model.eval() and torch.no_grad(), the forward pass and the loss over
                   16 x 256 rows at once.
Reports the median step time after warm-up, per thread budget, for several configurations, and
the fastest. Needs only python3 and torch (Debian's python3-torch).

A thread budget of n means torch.set_num_threads(n) and OPENBLAS_NUM_THREADS=n (Debian's torch
calls the system BLAS, whose threads torch.set_num_threads does not control), except in the
"torch-1-thread" variant, which gives OpenMP one thread and only BLAS n. Settings read once at
start-up (OMP_WAIT_POLICY, OPENBLAS_NUM_THREADS) need a fresh process, so each environment variant
runs in a child process of this script; in-process settings (zero_grad(set_to_none), SGD foreach,
set_flush_denormal, torch.backends.mkldnn) are varied inside it. Not covered: torch.compile
(PyTorch 2), MKL builds, bf16.
"""

import argparse
import ctypes
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

LEARNING_RATE = 0.01

CASES = {
    # name: (layer widths, activation, loss, batch)
    "medium": ((784, 1024, 1024, 10), "relu", "xent", 256),
    "tiny": ((2, 3, 2), "sigmoid", "mse", 4),
    "small": ((64, 128, 128, 10), "relu", "xent", 256),
    "medium_bn": ((784, 1024, 1024, 10), "relu_bn", "xent", 256),
    "medium_batch1024": ((784, 1024, 1024, 10), "relu", "xent", 1024),
    # Inference: forward and loss of 16 minibatches' rows in one call, no autograd.
    "medium_eval": ((784, 1024, 1024, 10), "relu", "xent", 16 * 256),
    "small_eval": ((64, 128, 128, 10), "relu", "xent", 16 * 256),
}
DEFAULT_CASES = ("medium", "tiny", "small", "medium_bn", "medium_batch1024", "medium_eval",
                 "small_eval")


def is_inference(case):
    return case.endswith("_eval")


# In-process variants: defaults, each setting alone, and all the speed-ups together.
FLAG_VARIANTS = [
    ("defaults", {}),
    ("set_to_none", {"set_to_none": True}),
    ("foreach", {"foreach": True}),
    ("flush_denormal", {"flush_denormal": True}),
    ("mkldnn_off", {"mkldnn": False}),
    ("set_to_none+foreach+flush_denormal",
     {"set_to_none": True, "foreach": True, "flush_denormal": True}),
]
# Inference has no gradients and no optimizer: only the settings that change the forward pass.
INFERENCE_FLAG_VARIANTS = [v for v in FLAG_VARIANTS if v[0] in ("defaults", "flush_denormal",
                                                                   "mkldnn_off")]


def default_thread_budgets():
    """1, 2, 4, ... up to the core count, and the core count itself."""
    cores = os.cpu_count() or 1
    budgets = []
    t = 1
    while t < cores:
        budgets.append(t)
        t *= 2
    budgets.append(cores)
    return ",".join(str(b) for b in budgets)


def environment_variants(threads):
    """(label, torch intra-op threads, environment changes) for a thread budget."""
    base = {"OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    variants = [("omp-default", threads, dict(base))]
    if threads > 1:
        # libgomp's idle workers spin by default and then compete with OpenBLAS's threads for
        # the same cores; PASSIVE makes them sleep.
        variants.append(("omp-passive", threads, dict(base, OMP_WAIT_POLICY="PASSIVE")))
        variants.append(("torch-1-thread", 1, dict(base, OMP_NUM_THREADS="1")))
    return variants


# ---------------------------------------------------------------------------------------------
# Worker: runs in a child process with its environment already set.


def loaded_libraries(pattern):
    """Paths of shared libraries mapped into this process whose file name matches pattern."""
    paths = set()
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and re.search(pattern, os.path.basename(fields[5])):
                    paths.add(fields[5])
    except OSError:
        pass
    return sorted(paths)


def openblas_runtime():
    """Core name and thread count of the OpenBLAS torch actually loaded, if it is OpenBLAS."""
    for path in loaded_libraries(r"^libopenblas"):
        try:
            lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD)
        except OSError:
            continue
        info = {"library": path}
        if hasattr(lib, "openblas_get_corename"):
            lib.openblas_get_corename.restype = ctypes.c_char_p
            info["core"] = lib.openblas_get_corename().decode()
        if hasattr(lib, "openblas_get_num_threads"):
            info["threads"] = lib.openblas_get_num_threads()
        return info
    return {}


def blas_config(torch):
    shown = torch.__config__.show()
    lines = [line.strip() for line in shown.splitlines()
             if re.search(r"BLAS|LAPACK|MKL", line) and not line.strip().startswith("- Build")]
    settings = re.findall(r"\b((?:BLAS|LAPACK)_INFO=[^,\s]*|USE_MKLDNN=[^,\s]*|USE_OPENMP=[^,\s]*)",
                          shown)
    return {
        "torch_version": torch.__version__,
        "summary": "; ".join(lines + settings),
        "blas_libraries": loaded_libraries(r"^lib(open)?blas|^libmkl"),
        "openblas": openblas_runtime(),
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
    }


def build_model(torch, case):
    widths, activation, loss, batch = CASES[case]
    layers = []
    for k in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[k], widths[k + 1]))
        last = k == len(widths) - 2
        if activation == "sigmoid":
            layers.append(torch.nn.Sigmoid())  # the textbook network has it on the output too
        elif not last:
            if activation == "relu_bn":
                layers.append(torch.nn.BatchNorm1d(widths[k + 1]))
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(batch, widths[0], generator=generator) * 2 - 1
    if loss == "xent":
        loss_fn = torch.nn.CrossEntropyLoss()
        target = torch.randint(0, widths[-1], (batch,), generator=generator)
    else:
        loss_fn = torch.nn.MSELoss()
        target = torch.rand(batch, widths[-1], generator=generator)
    return model, loss_fn, x, target


def time_steps(torch, case, flags, min_time, min_reps):
    """Median seconds per step (or per inference pass) after warm-up."""
    torch.manual_seed(1)
    torch.set_flush_denormal(bool(flags.get("flush_denormal", False)))
    torch.backends.mkldnn.enabled = bool(flags.get("mkldnn", True))
    model, loss_fn, x, target = build_model(torch, case)

    if is_inference(case):
        model.eval()

        def step():
            with torch.no_grad():
                return loss_fn(model(x), target)
    else:
        sgd_options = {"lr": LEARNING_RATE}
        if flags.get("foreach"):
            sgd_options["foreach"] = True
        optimizer = torch.optim.SGD(model.parameters(), **sgd_options)
        set_to_none = bool(flags.get("set_to_none", False))

        def step():
            optimizer.zero_grad(set_to_none=set_to_none)
            loss = loss_fn(model(x), target)
            loss.backward()
            optimizer.step()
            return loss

    warm_until = time.perf_counter() + min(0.5, min_time / 2)
    warmed = 0
    while warmed < 5 or time.perf_counter() < warm_until:
        step()
        warmed += 1
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    if not torch.isfinite(loss).item():
        raise RuntimeError(f"{case}: loss is not finite")
    return statistics.median(times), len(times)


def worker(args):
    import torch  # imported here so the parent's environment choices apply before start-up

    torch.set_num_threads(args.torch_threads)
    results = []
    for case in args.cases:
        for label, flags in INFERENCE_FLAG_VARIANTS if is_inference(case) else FLAG_VARIANTS:
            try:
                seconds, reps = time_steps(torch, case, flags, args.min_time, args.min_reps)
            except TypeError as error:  # an option this torch version does not take
                print(f"skipped {case} {label}: {error}", file=sys.stderr)
                continue
            batch = CASES[case][3]
            results.append({
                "case": case, "threads": args.threads, "environment": args.environment,
                "torch_threads": torch.get_num_threads(), "flags": label,
                "us_per_step": seconds * 1e6, "samples_per_second": batch / seconds,
                "batch": batch, "inference": is_inference(case), "repetitions": reps,
            })
    json.dump({"blas": blas_config(torch), "results": results}, sys.stdout)


# ---------------------------------------------------------------------------------------------
# Parent: one child per (thread budget, environment variant), then the summary.


def run_child(args, threads, environment, torch_threads, changes):
    env = dict(os.environ)
    env.update(changes)
    command = [sys.executable, os.path.abspath(__file__), "--worker",
               "--threads", str(threads), "--torch-threads", str(torch_threads),
               "--environment", environment, "--cases", ",".join(args.cases),
               "--min-time", str(args.min_time), "--min-reps", str(args.min_reps)]
    done = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default=default_thread_budgets(),
                        help="thread budgets (default 1, 2, 4, ... up to the core count: "
                        f"{default_thread_budgets()})")
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES),
                        help=f"comma-separated, of {', '.join(CASES)} (default all)")
    parser.add_argument("--min-time", type=float, default=1.0,
                        help="seconds of timed steps per configuration (default 1.0)")
    parser.add_argument("--min-reps", type=int, default=20,
                        help="timed steps per configuration at least (default 20)")
    parser.add_argument("--json", help="also write all results and the best ones to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--torch-threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--environment", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.cases = [c for c in args.cases.split(",") if c]
    for case in args.cases:
        if case not in CASES:
            parser.error(f"unknown case {case!r} (expected {', '.join(CASES)})")
    if args.worker:
        args.threads = int(args.threads)
        worker(args)
        return

    budgets = [int(t) for t in args.threads.split(",") if t]
    blas = None
    results = []
    for threads in budgets:
        for environment, torch_threads, changes in environment_variants(threads):
            child = run_child(args, threads, environment, torch_threads, changes)
            blas = blas or child["blas"]
            results.extend(child["results"])

    print(f"torch {blas['torch_version']} on python {platform.python_version()}, "
          f"mkldnn available: {blas['mkldnn_available']}")
    print(f"torch BLAS config: {blas['summary']}")
    print(f"BLAS loaded: {', '.join(blas['blas_libraries']) or '(none found)'}")
    if blas["openblas"]:
        print(f"OpenBLAS core: {blas['openblas'].get('core', '?')}  "
              f"(OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')})")
    print()
    header = f"{'case':<16} {'thr':>3} {'environment':<15} {'flags':<35} {'us/step':>10} {'samples/s':>11}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['case']:<16} {r['threads']:>3} {r['environment']:<15} {r['flags']:<35} "
              f"{r['us_per_step']:>10.1f} {r['samples_per_second']:>11.0f}")

    best = []
    default = []  # what a plain script gets: no environment settings, no flags
    for case in args.cases:
        for threads in budgets:
            mine = [r for r in results if r["case"] == case and r["threads"] == threads]
            if mine:
                best.append(min(mine, key=lambda r: r["us_per_step"]))
            default.extend(r for r in mine
                           if r["environment"] == "omp-default" and r["flags"] == "defaults")
    print()
    print("default configuration (omp-default, defaults) per case and thread budget:")
    for r in default:
        print(f"  {r['case']:<16} threads={r['threads']}  {r['us_per_step']:10.1f} us/step  "
              f"{r['samples_per_second']:9.0f} samples/s")
    print()
    print("best per case and thread budget:")
    for r in best:
        print(f"  {r['case']:<16} threads={r['threads']}  {r['us_per_step']:10.1f} us/step  "
              f"{r['samples_per_second']:9.0f} samples/s  ({r['environment']}, {r['flags']})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"blas": blas, "python": platform.python_version(),
                       "min_time": args.min_time, "results": results, "default": default,
                       "best": best}, out, indent=1)


if __name__ == "__main__":
    main()
