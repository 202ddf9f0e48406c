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

With --shardprop-lib (the built libshardprop.so), each case but tiny is then timed once more
side by side with shardprop's step (or evaluation) on the same shapes, called through the C API
in the same process: blocks of steps of each in turn, the first of the two alternating, a pause
before each block so that neither side's idle threads are still spinning when the other starts.
The ratio of the two medians in each round, and its median over the rounds, is what a shared
machine's drift in speed cannot move, as the survey's separate runs minutes apart can. Each
environment variant's fastest flags are paired, and the variant where PyTorch fares best side
by side is kept ("paired"; all of them in "every_pair"). tiny is left out: a ctypes call costs
more than its step.

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


def make_step(torch, case, flags):
    """(step function, features, targets) of the case with the in-process flags."""
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

    return step, x, target


def time_steps(torch, case, flags, min_time, min_reps):
    """Median seconds per step (or per inference pass) after warm-up."""
    torch.manual_seed(1)
    torch.set_flush_denormal(bool(flags.get("flush_denormal", False)))
    torch.backends.mkldnn.enabled = bool(flags.get("mkldnn", True))
    step, _, _ = make_step(torch, case, flags)
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


# ---------------------------------------------------------------------------------------------
# shardprop through its C API (lib/include/shardprop.h), for the paired measurement.

# The layer text (docs/model-spec.md) of each case, as BM_Step builds it.
SHARDPROP_LAYERS = {
    "medium": "dense(1024) relu dense(1024) relu dense(10)",
    "medium_bn": "dense(1024) bn relu dense(1024) bn relu dense(10)",
    "small": "dense(128) relu dense(128) relu dense(10)",
}
PAIRED_CASES = ("medium", "small", "medium_bn", "medium_batch1024", "medium_eval", "small_eval")
# Seconds of steps per side in one round, the pause before each block (OpenBLAS's idle threads
# spin for about 0.1 s before they sleep), and the fewest rounds.
PAIR_BLOCK_SECONDS = 0.1
PAIR_PAUSE_SECONDS = 0.15
PAIR_MIN_ROUNDS = 10


def shardprop_layers(case):
    return SHARDPROP_LAYERS[case.removesuffix("_eval").removesuffix("_batch1024")]


class TrainerSettings(ctypes.Structure):
    _fields_ = [("threads", ctypes.c_int), ("shards", ctypes.c_int),
                ("batch_size", ctypes.c_int), ("learning_rate", ctypes.c_float),
                ("weight_decay", ctypes.c_float), ("seed", ctypes.c_uint64),
                ("shuffle", ctypes.c_int), ("optimizer", ctypes.c_int),
                ("momentum", ctypes.c_float), ("nesterov", ctypes.c_int),
                ("adam_beta1", ctypes.c_float), ("adam_beta2", ctypes.c_float),
                ("adam_epsilon", ctypes.c_float), ("clip_grad_norm", ctypes.c_float),
                ("schedule", ctypes.c_int), ("schedule_step_epochs", ctypes.c_int),
                ("schedule_gamma", ctypes.c_float), ("cosine_epochs", ctypes.c_int)]


class Metrics(ctypes.Structure):
    _fields_ = [("loss", ctypes.c_double), ("accuracy", ctypes.c_double),
                ("rmse", ctypes.c_double), ("rows", ctypes.c_int64)]


class Shardprop:
    """The case's step (or evaluation) in shardprop, on the same features and targets."""

    def __init__(self, library, case, threads, x, target):
        lib = ctypes.CDLL(library)
        lib.shardprop_last_error.restype = ctypes.c_char_p
        self.lib = lib
        widths, _, _, batch = CASES[case]
        self.rows, self.inputs = batch, widths[0]
        self.threads = threads
        # The tensors stay alive with self: ctypes gets their data pointers.
        self.x = x.contiguous()
        self.t = target.to(dtype=x.dtype).reshape(batch, 1).contiguous()
        self.model = ctypes.c_void_p()
        self.check(lib.shardprop_model_create(shardprop_layers(case).encode(), self.inputs,
                                              b"xent", ctypes.c_uint64(1),
                                              ctypes.byref(self.model)))
        self.trainer = None
        if not is_inference(case):
            settings = TrainerSettings()
            self.check(lib.shardprop_trainer_settings_init(ctypes.byref(settings)))
            if settings.batch_size != 32 or settings.shuffle != 1:
                raise RuntimeError("shardprop_trainer_settings does not match this script's copy")
            settings.threads, settings.batch_size = threads, batch
            settings.learning_rate = LEARNING_RATE
            self.trainer = ctypes.c_void_p()
            self.check(lib.shardprop_trainer_create(self.model, ctypes.byref(settings),
                                                    ctypes.byref(self.trainer)))

    def check(self, status):
        if status != 0:
            raise RuntimeError(f"shardprop: {self.lib.shardprop_last_error().decode()}")

    def step(self):
        features = ctypes.c_void_p(self.x.data_ptr())
        targets = ctypes.c_void_p(self.t.data_ptr())
        if self.trainer is None:
            metrics = Metrics()
            self.check(self.lib.shardprop_model_evaluate(
                self.model, features, targets, ctypes.c_int64(self.rows), self.inputs, 1,
                self.threads, ctypes.byref(metrics)))
            return metrics.loss
        loss = ctypes.c_double()
        self.check(self.lib.shardprop_trainer_step(self.trainer, features, targets,
                                                   ctypes.c_int64(self.rows), self.inputs, 1,
                                                   ctypes.byref(loss)))
        return loss.value

    def close(self):
        if self.trainer is not None:
            self.lib.shardprop_trainer_free(self.trainer)
        self.lib.shardprop_model_free(self.model)


def timed_block(step, count):
    """Median seconds of `count` calls of step, the first (waking threads up) left out."""
    times = []
    for _ in range(count + 1):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def paired_steps(torch, case, flags, library, threads, min_time, min_reps):
    """PyTorch's and shardprop's step on the same shapes, timed in turn (see the docstring)."""
    torch.manual_seed(1)
    torch.set_flush_denormal(bool(flags.get("flush_denormal", False)))
    torch.backends.mkldnn.enabled = bool(flags.get("mkldnn", True))
    torch_step, x, target = make_step(torch, case, flags)
    ours = Shardprop(library, case, threads, x, target)
    try:
        sides = [torch_step, ours.step]
        counts = []
        for step in sides:  # warm-up, and how many steps fill a block
            t0 = time.perf_counter()
            done = 0
            while done < 3 or time.perf_counter() - t0 < PAIR_BLOCK_SECONDS:
                step()
                done += 1
            counts.append(max(2, round(done * PAIR_BLOCK_SECONDS / (time.perf_counter() - t0))))
        rounds = []
        start = time.perf_counter()
        while len(rounds) < PAIR_MIN_ROUNDS or time.perf_counter() - start < 2 * min_time:
            first = len(rounds) % 2
            seconds = [0.0, 0.0]
            for side in (first, 1 - first):
                time.sleep(PAIR_PAUSE_SECONDS)
                seconds[side] = timed_block(sides[side], counts[side])
            rounds.append(seconds)
        torch_seconds = statistics.median(r[0] for r in rounds)
        shardprop_seconds = statistics.median(r[1] for r in rounds)
        return {
            "torch_us": torch_seconds * 1e6, "shardprop_us": shardprop_seconds * 1e6,
            # shardprop's speed over PyTorch's in each round, then the median.
            "ratio": statistics.median(r[0] / r[1] for r in rounds), "rounds": len(rounds),
        }
    finally:
        ours.close()


def pair_worker(args):
    import torch

    torch.set_num_threads(args.torch_threads)
    flag_sets = dict(FLAG_VARIANTS)
    results = []
    for case, flags in zip(args.cases, args.pair_flags.split(",")):
        measured = paired_steps(torch, case, flag_sets[flags], args.shardprop_lib, args.threads,
                                args.min_time, args.min_reps)
        results.append(dict(measured, case=case, threads=args.threads,
                            environment=args.environment, flags=flags))
    json.dump({"paired": results}, sys.stdout)


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


def run_child(args, threads, environment, torch_threads, changes, cases=None, pair_flags=None):
    env = dict(os.environ)
    env.update(changes)
    command = [sys.executable, os.path.abspath(__file__), "--worker",
               "--threads", str(threads), "--torch-threads", str(torch_threads),
               "--environment", environment, "--cases", ",".join(cases or args.cases),
               "--min-time", str(args.min_time), "--min-reps", str(args.min_reps)]
    if pair_flags:
        command += ["--pair-flags", ",".join(pair_flags), "--shardprop-lib", args.shardprop_lib]
    done = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout)


def run_pairs(args, results):
    """The paired measurement of each case: in every environment variant, its fastest flags
    there; then, per case and thread budget, the variant where PyTorch fared best side by side
    (a configuration that only won the survey by luck does not decide it). Returns (those, all
    pairs)."""
    every = []
    for threads in sorted({r["threads"] for r in results}):
        for environment, torch_threads, changes in environment_variants(threads):
            picks = []
            for case in args.cases:
                mine = [r for r in results if r["case"] == case and r["threads"] == threads
                        and r["environment"] == environment]
                if case in PAIRED_CASES and mine:
                    picks.append(min(mine, key=lambda r: r["us_per_step"]))
            if picks:
                child = run_child(args, threads, environment, torch_threads, changes,
                                  cases=[r["case"] for r in picks],
                                  pair_flags=[r["flags"] for r in picks])
                every.extend(child["paired"])
    chosen = {}
    for r in every:
        key = (r["case"], r["threads"])
        if key not in chosen or r["ratio"] < chosen[key]["ratio"]:
            chosen[key] = r
    return list(chosen.values()), every


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
    parser.add_argument("--shardprop-lib",
                        help="libshardprop.so: time shardprop's step beside each case's fastest "
                        "PyTorch configuration in one process (see above)")
    parser.add_argument("--pair-flags", help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--torch-threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--environment", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.cases = [c for c in args.cases.split(",") if c]
    for case in args.cases:
        if case not in CASES:
            parser.error(f"unknown case {case!r} (expected {', '.join(CASES)})")
    if args.shardprop_lib and not os.path.exists(args.shardprop_lib):
        parser.error(f"--shardprop-lib {args.shardprop_lib}: no such file")
    if args.worker:
        args.threads = int(args.threads)
        if args.pair_flags:
            pair_worker(args)
        else:
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
    paired, every_pair = run_pairs(args, results) if args.shardprop_lib else ([], [])
    if paired:
        print()
        print("side by side in one process (PyTorch's best configuration side by side, "
              "medians of rounds):")
        for r in paired:
            print(f"  {r['case']:<16} threads={r['threads']}  PyTorch {r['torch_us']:10.1f} us  "
                  f"shardprop {r['shardprop_us']:10.1f} us  shardprop {r['ratio']:.2f}x  "
                  f"({r['rounds']} rounds; {r['environment']}, {r['flags']})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"blas": blas, "python": platform.python_version(),
                       "min_time": args.min_time, "results": results, "default": default,
                       "best": best, "paired": paired, "every_pair": every_pair}, out, indent=1)


if __name__ == "__main__":
    main()
