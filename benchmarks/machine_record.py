#!/usr/bin/env python3
"""Writes RAW_DIR/machine.json: what the benchmark report says about the machine and the
software, from /proc, the environment, the build's CMake cache and the benchmark JSON files
already in RAW_DIR (shardprop_bench.json's context, pytorch_step.json's BLAS). Standard library
only; no host name.

    python3 benchmarks/machine_record.py RAW_DIR [--build-dir build/bench]
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys

FLAGS_OF_INTEREST = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                     "avx512_vnni", "avx512_bf16", "amx_tile")


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cpu_record():
    cpuinfo = read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    flags = re.search(r"^flags\s*:\s*(.*)$", cpuinfo, re.M)
    present = set(flags.group(1).split()) if flags else set()
    # Physical cores: distinct (package, core id) pairs.
    cores = set()
    package = core = None
    for line in cpuinfo.splitlines():
        if line.startswith("physical id"):
            package = line.split(":")[1].strip()
        elif line.startswith("core id"):
            core = line.split(":")[1].strip()
        elif not line.strip():
            if core is not None:
                cores.add((package, core))
            package = core = None
    if core is not None:
        cores.add((package, core))
    memory = re.search(r"^MemTotal:\s*(\d+) kB", read("/proc/meminfo"), re.M)
    return {
        "cpu_model": model.group(1).strip() if model else platform.processor() or "?",
        "cpu_flags": {flag: flag in present for flag in FLAGS_OF_INTEREST},
        "nproc": os.cpu_count(),
        "physical_cores": len(cores) or None,
        "memory_gib": round(int(memory.group(1)) / 2**20, 1) if memory else None,
        "kernel": platform.release(),
        "os": (re.search(r'^PRETTY_NAME="?([^"\n]*)', read("/etc/os-release"), re.M) or
               re.search("(.*)", "?")).group(1),
        "load_average": read("/proc/loadavg").split()[:3],
    }


def compiler_record(build_dir):
    cache = read(os.path.join(build_dir, "CMakeCache.txt")) if build_dir else ""
    found = {}
    for key in ("CMAKE_CXX_COMPILER", "CMAKE_BUILD_TYPE", "CMAKE_CXX_FLAGS"):
        m = re.search(rf"^{key}:[A-Z]+=(.*)$", cache, re.M)
        if m:
            found[key] = m.group(1)
    compiler = found.get("CMAKE_CXX_COMPILER")
    version = None
    if compiler:
        try:
            done = subprocess.run([compiler, "--version"], capture_output=True, text=True,
                                  check=False, timeout=10)
            version = done.stdout.splitlines()[0] if done.stdout else None
        except (OSError, subprocess.TimeoutExpired):
            pass
    return {"compiler": compiler, "compiler_version": version,
            "build_type": found.get("CMAKE_BUILD_TYPE"), "cxx_flags": found.get("CMAKE_CXX_FLAGS")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir")
    parser.add_argument("--build-dir")
    args = parser.parse_args()

    record = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    record.update(cpu_record())
    record.update(compiler_record(args.build_dir))

    bench = load_json(os.path.join(args.raw_dir, "shardprop_bench.json")) or {}
    context = bench.get("context", {})
    shardprop = {key: context[key] for key in ("shardprop_version", "blas_kernel_note")
                 if key in context}
    for key, value in context.items():
        if key.lower().startswith("openblas"):
            shardprop[key] = value
    record["shardprop"] = shardprop
    record["environment"] = {k: v for k, v in sorted(os.environ.items())
                             if k.startswith("OPENBLAS_")}

    torch = load_json(os.path.join(args.raw_dir, "pytorch_step.json"))
    if torch:
        blas = torch.get("blas", {})
        record["pytorch"] = {"version": blas.get("torch_version"), "blas": blas.get("summary"),
                             "blas_libraries": blas.get("blas_libraries"),
                             "openblas_core": (blas.get("openblas") or {}).get("core")}
    else:
        record["pytorch"] = None
    with open(os.path.join(args.raw_dir, "machine.json"), "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
