#!/usr/bin/env python3
"""pandas.read_csv throughput (MB/s, 10^6 bytes per second) on the CSV files given: median of
--repeats runs, each a plain `pandas.read_csv(path)` call.

The reference point for shardprop_csv_bench; report.sh runs both on the same files.
Needs pandas (Debian: python3-pandas, so run it with /usr/bin/python3 if your python3 is another
interpreter).

    /usr/bin/python3 benchmarks/csv_baselines.py FILE.csv [FILE.csv ...] [--repeats 3] [--json OUT]

Note on what is measured: pandas' default C engine runs on one thread whatever the machine has;
with default options it infers each column's type (int64 for the Fashion-MNIST-like pixels,
float64 for the HIGGS-like floats, so it stores twice the bytes shardprop's float32 features
take), detects NA tokens, and builds a DataFrame; that time is included, the Python start-up and
import are not. Each file is read once untimed first, so every run reads from the page cache as
shardprop_csv_bench does.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", help="CSV files with a header line")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per file (median)")
    parser.add_argument("--engine", default="c", help="pandas.read_csv engine (default: c)")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    try:
        import numpy
        import pandas
    except ImportError:
        print("csv_baselines: error: cannot import pandas (Debian: apt-get install python3-pandas; "
              "then run this with /usr/bin/python3)", file=sys.stderr)
        return 1

    print(f"pandas {pandas.__version__}, numpy {numpy.__version__}, Python {platform.python_version()}, engine {args.engine}")
    results = []
    for path in args.files:
        size = os.path.getsize(path)
        with open(path, "rb") as f:  # warm the page cache
            while f.read(1 << 24):
                pass
        seconds = []
        shape = None
        for _ in range(args.repeats):
            start = time.perf_counter()
            frame = pandas.read_csv(path, engine=args.engine)
            seconds.append(time.perf_counter() - start)
            shape = frame.shape
            del frame
        median = statistics.median(seconds)
        rate = size / 1e6 / median
        runs = ", ".join(f"{s:.2f}" for s in seconds)
        print(f"{path}: {size / 1e6:.1f} MB, {shape[0]} rows x {shape[1]} columns: "
              f"{rate:.1f} MB/s (median of {args.repeats}: {median:.2f} s; runs {runs} s)")
        results.append({"path": path, "bytes": size, "rows": shape[0], "columns": shape[1],
                        "seconds": seconds, "median_seconds": median, "mb_per_s": rate})
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"pandas_version": pandas.__version__, "engine": args.engine,
                       "repeats": args.repeats, "files": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
