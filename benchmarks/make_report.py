#!/usr/bin/env python3
"""Writes a benchmark report (OUT_DIR/report.md and OUT_DIR/plots/*.png) from the raw JSON files
benchmarks/report.sh saved in RAW_DIR. Runs no benchmark: the report is a pure function of the
files, so it can be regenerated, and tested on a fixture.

    python3 benchmarks/make_report.py RAW_DIR OUT_DIR [--readme README.md] [--notes NOTES.md]

RAW_DIR files, each optional (a missing one makes its sections say "not measured"):
  shardprop_bench.json      Google Benchmark JSON of shardprop_bench: BM_Step, BM_GemmOnlyStep,
                            BM_StepAndRoof, BM_StepBatch, BM_GemmOnlyStepBatch, BM_StepPhases,
                            BM_FmaPeak,
                            BM_Evaluate, BM_Sgemm (medians: the `_median` aggregates, or the
                            single run without repetitions)
  shardprop_csv_bench.json  the same for shardprop_csv_bench (BM_ReadCsv and its baselines)
  csv_baselines.json        csv_baselines.py (pandas.read_csv)
  pytorch_step.json         pytorch_step.py (PyTorch's step and inference, default and best)
  end_to_end.json           end_to_end.py (CSV to trained model, shardprop vs PyTorch + pandas)
  machine.json              machine_record.py; command.txt: the command; timings.json
--readme replaces the text between <!-- report:begin --> and <!-- report:end --> in that file
with a summary linking to OUT_DIR/report.md; --notes appends a file's text (the human
explanation of the slower rows) after the "Where shardprop is slower" list.
"""

import argparse
import json
import os
import re
import statistics
import sys

SECONDS_PER_UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
STEP_NETWORKS = [
    # (label, BM_Step network, batch, PyTorch case, target of step / GEMM-only roof)
    ("tiny 2-3-2", "tiny", 4, "tiny", None),
    ("small 64-128-128-10", "small", 256, "small", 0.85),
    ("medium 784-1024-1024-10", "medium", 256, "medium", 0.95),
    ("medium_bn (batch norm)", "medium_bn", 256, "medium_bn", None),
    ("medium, batch 1024", "medium@1024", 1024, "medium_batch1024", 0.95),
]
# Step samples/s over PyTorch's best at the same threads, per BM_Step network; elsewhere 1.
STEP_TORCH_TARGETS = {"tiny": 150.0, "small": 3.0, "medium": 1.0}
PHASES = ["forward_gemm_us", "forward_elementwise_us", "backward_gemm_us",
          "backward_elementwise_us", "batch_norm_sync_us", "reduction_update_us", "exchange_us",
          "idle_us", "other_us"]
CSV_FILES = ["fashion_mnist_like", "higgs_like"]
CSV_COLUMNS = [("read()", "BM_ReadSyscall/{}"), ("mmap touch", "BM_MmapTouch/{}"),
               ("bare fast_float 1t", "BM_BareFromChars/{}"),
               ("shardprop 1t", "BM_ReadCsv/{}/threads:1"),
               ("shardprop 2t", "BM_ReadCsv/{}/threads:2")]
TINY_TARGET_US = 1.0
CSV_TARGET_MB_S = 1000.0
E2E_TARGETS = {"medium": 2.5, "small": 8.0}
STREAM_EPOCH_TARGET = 1.1  # streamed epochs over in-memory ones
INFERENCE_TARGET = 3.0
# Two benchmarks of one report timing the same step this far apart: the machine's speed drifted.
# Only for steps of at least DRIFT_MIN_US: BM_StepAndRoof runs in an arena it enters once, where
# BM_Step enters the trainer's at every step, a constant that weighs on a step of a microsecond.
DRIFT_WARNING = 0.10
DRIFT_MIN_US = 50.0
PLOTS = {"throughput": "throughput.png", "batch": "gflops_vs_batch.png",
         "phases": "phases.png", "csv": "csv.png", "e2e": "end_to_end.png"}


# ---------------------------------------------------------------------------------------------
# Reading the files.


def load_json(raw_dir, name):
    path = os.path.join(raw_dir, name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        print(f"make_report: warning: {path}: {error}", file=sys.stderr)
        return None


def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


class Bench:
    """A Google Benchmark JSON file, its runs indexed by name with the /real_time suffix and
    argument order dropped: ("BM_Step", ("medium",), {"threads": 2, "shards": 0})."""

    def __init__(self, data):
        self.data = data or {"benchmarks": [], "context": {}}
        self.context = self.data.get("context", {})
        self.runs = {}  # run name -> {"median": entry, ...} or {"single": entry}
        for b in self.data.get("benchmarks", []):
            if b.get("error_occurred"):
                continue
            name = b.get("run_name", b["name"])
            slot = self.runs.setdefault(name, {})
            if b.get("run_type") == "aggregate":
                slot[b.get("aggregate_name", "?")] = b
            else:
                slot.setdefault("iterations", []).append(b)

    @staticmethod
    def parse(name):
        parts = [p for p in name.split("/") if p not in ("real_time", "process_time")]
        positional, args = [], {}
        for p in parts[1:]:
            key, sep, value = p.partition(":")
            if sep:
                try:
                    args[key] = int(value)
                except ValueError:
                    args[key] = value
            else:
                positional.append(p)
        return parts[0], tuple(positional), args

    def median(self, name):
        slot = self.runs.get(name)
        if not slot:
            return None
        if "median" in slot:
            return slot["median"]
        runs = slot.get("iterations", [])
        return runs[len(runs) // 2] if runs else None

    def cv(self, name):
        slot = self.runs.get(name) or {}
        return slot["cv"]["real_time"] if "cv" in slot else None

    def find(self, family, positional=None, **wanted):
        """[(positional, args, median entry)] of one family whose positional parts start with
        `positional` and whose arguments include `wanted`, sorted."""
        found = []
        for name in self.runs:
            fam, pos, args = self.parse(name)
            if fam != family or (positional is not None and
                                 pos[:len(positional)] != tuple(positional)):
                continue
            if any(args.get(k) != v for k, v in wanted.items()):
                continue
            entry = self.median(name)
            if entry:
                found.append((pos, args, dict(entry, _name=name)))
        found.sort(key=lambda f: (f[0], sorted(f[1].items())))
        return found

    def one(self, family, positional=None, **wanted):
        found = self.find(family, positional, **wanted)
        return found[0][2] if found else None

    def has(self, family):
        return any(self.parse(name)[0] == family for name in self.runs)


def seconds_of(entry):
    return entry["real_time"] * SECONDS_PER_UNIT[entry.get("time_unit", "ns")]


# ---------------------------------------------------------------------------------------------
# Formatting.


def fmt(value, spec=",.0f", suffix=""):
    return "n/a" if value is None else format(value, spec) + suffix


def pct(value):
    return fmt(None if value is None else 100.0 * value, ".1f", "%")


def ratio(value):
    return fmt(value, ".2f", "×")


def div(a, b):
    return a / b if a is not None and b else None


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def not_measured(what):
    return f"_Not measured: {what}._"


# ---------------------------------------------------------------------------------------------
# The report.


class Report:
    def __init__(self, raw_dir, out_dir):
        self.raw_dir = raw_dir
        self.out_dir = out_dir
        self.bench_data = load_json(raw_dir, "shardprop_bench.json")
        self.bench = Bench(self.bench_data)
        self.csv_data = load_json(raw_dir, "shardprop_csv_bench.json")
        self.csv = Bench(self.csv_data)
        self.pandas = load_json(raw_dir, "csv_baselines.json")
        self.torch = load_json(raw_dir, "pytorch_step.json")
        self.e2e = load_json(raw_dir, "end_to_end.json")
        self.machine = load_json(raw_dir, "machine.json") or {}
        self.timings = (load_json(raw_dir, "timings.json") or {}).get("seconds", {})
        self.command = (read_text(os.path.join(raw_dir, "command.txt")) or "").strip()
        self.slower = []  # "where shardprop is slower" bullets
        self.plots = {}  # key -> file name, for the plots made
        self.summary = {}  # numbers the README summary shows

    # --- PyTorch lookups ---
    def torch_entry(self, kind, case, threads):
        if not self.torch:
            return None
        for r in self.torch.get(kind, []):
            if r["case"] == case and r["threads"] == threads:
                return r
        return None

    # --- step numbers ---
    def step_runs(self, net):
        """{threads: (step entry, roof entry or None)} for a STEP_NETWORKS network."""
        result = {}
        if net == "medium@1024":
            for _, args, entry in self.bench.find("BM_StepBatch", ("medium",), batch=1024):
                roof = self.bench.one("BM_GemmOnlyStepBatch", ("medium",), batch=1024,
                                      threads=args["threads"])
                result[args["threads"]] = (entry, roof)
            return result
        roof_net = "medium" if net == "medium_bn" else net
        for _, args, entry in self.bench.find("BM_Step", (net,), shards=0):
            roof = self.bench.one("BM_GemmOnlyStep", (roof_net,), shards=0,
                                  threads=args["threads"])
            result[args["threads"]] = (entry, roof)
        return result

    def of_roof(self, net, threads, batch, step, roof):
        """The step's fraction of its GEMM-only roof: BM_StepAndRoof's of_roof (the two timed
        alternately in one loop) when measured, else the ratio of the separate benchmarks'
        rates."""
        pair = self.bench.one("BM_StepAndRoof", (net,), threads=threads, batch=batch)
        if pair and pair.get("of_roof"):
            return pair["of_roof"]
        return div(step.get("samples"), roof.get("samples") if roof else None)

    def fma_peak(self, threads):
        entry = self.bench.one("BM_FmaPeak", threads=threads)
        return entry.get("FLOP") if entry else None

    def drift_cases(self):
        """[(relative gap, text)] where a separate benchmark's median time of a step (or its
        roof) differs from BM_StepAndRoof's by more than DRIFT_WARNING, worst first."""
        default_batch = {net: batch for _, net, batch, _, _ in STEP_NETWORKS}
        cases = []
        for (net,), args, pair in self.bench.find("BM_StepAndRoof"):
            threads, batch = args.get("threads"), args.get("batch")
            if batch == default_batch.get(net):
                step = self.bench.one("BM_Step", (net,), shards=0, threads=threads)
                roof = self.bench.one("BM_GemmOnlyStep", ("medium" if net == "medium_bn" else net,),
                                      shards=0, threads=threads)
            else:
                step = self.bench.one("BM_StepBatch", (net,), batch=batch, threads=threads)
                roof = self.bench.one("BM_GemmOnlyStepBatch", (net,), batch=batch,
                                      threads=threads)
            for entry, key in ((step, "step_us"), (roof, "roof_us")):
                paired = pair.get(key)
                if not entry or not paired or paired < DRIFT_MIN_US:
                    continue
                separate = seconds_of(entry) * 1e6
                gap = abs(separate / paired - 1.0)
                if gap > DRIFT_WARNING:
                    name = entry["_name"].replace("/real_time", "")
                    cases.append((gap, f"{name} {fmt(separate, ',.1f')} µs against "
                                       f"{fmt(paired, ',.1f')} µs in BM_StepAndRoof"))
        return sorted(cases, reverse=True)

    def drift_warning(self):
        drift = self.drift_cases()
        if not drift:
            return None
        return (f"the machine's speed changed during this report: the same step, timed by two "
                f"of its benchmarks, differs by up to {100 * drift[0][0]:.0f}% "
                f"({'; '.join(t for _, t in drift[:3])}). The fractions of the roof, timed "
                "within one loop, hold; absolute rates and the comparisons with PyTorch, "
                "measured minutes apart, carry the drift.")

    def core_threads(self):
        threads = [args["threads"] for _, args, _ in self.bench.find("BM_Step", ("medium",))]
        return max(threads) if threads else None

    # --- sections ---
    def header(self):
        m = self.machine
        date = (m.get("date") or self.bench.context.get("date") or "unknown date")[:10]
        cpu = m.get("cpu_model") or "unknown CPU"
        lines = [f"# shardprop benchmark report, {date}, {cpu}", ""]
        note = (m.get("shardprop") or {}).get("blas_kernel_note") or \
            self.bench.context.get("blas_kernel_note")
        if note:
            lines += [f"> **BLAS kernel warning:** {note}", ""]
        drift = self.drift_warning()
        if drift:
            lines += [f"> **Drift warning:** {drift}", ""]
        lines += ["Medians of the repetitions throughout; ratios compare runs of the same report "
                  "(same machine, same hour, same OpenBLAS settings for both sides). Generated "
                  "by `benchmarks/make_report.py` from the JSON files in [raw/](raw/).", ""]
        return lines

    def machine_section(self):
        m = self.machine
        lines = ["## Machine", ""]
        if not m:
            return lines + [not_measured("no raw/machine.json"), ""]
        flags = m.get("cpu_flags") or {}
        shown_flags = " ".join(f for f, present in flags.items() if present) or "none"
        absent = " ".join(f for f, present in flags.items() if not present)
        sp = m.get("shardprop") or {}
        openblas = ", ".join(f"{k}={v}" for k, v in sp.items()
                             if k.lower().startswith("openblas")) or "n/a"
        env = ", ".join(f"{k}={v}" for k, v in (m.get("environment") or {}).items()) or "none set"
        torch = m.get("pytorch") or {}
        rows = [
            ("date (UTC)", m.get("date")),
            ("CPU", m.get("cpu_model")),
            ("CPU flags", shown_flags + (f" (absent: {absent})" if absent else "")),
            ("cores", f"{m.get('nproc')} logical, {m.get('physical_cores') or '?'} physical"),
            ("memory", fmt(m.get("memory_gib"), ".1f", " GiB")),
            ("OS, kernel", f"{m.get('os', '?')}, {m.get('kernel', '?')}"),
            ("load average at the end", " ".join(m.get("load_average") or []) or "?"),
            ("compiler", f"{m.get('compiler_version') or m.get('compiler') or '?'} "
                         f"({m.get('build_type') or '?'} build)"),
            ("shardprop", sp.get("shardprop_version", "?")),
            ("shardprop's OpenBLAS", openblas),
            ("OPENBLAS_* environment", env),
            ("PyTorch", f"{torch.get('version')}; {torch.get('blas')}; OpenBLAS core "
                        f"{torch.get('openblas_core')}" if torch else "not measured"),
        ]
        lines.append(table(["", ""], [(k, v if v is not None else "?") for k, v in rows]))
        lines += ["", "Command:", "", "```sh", self.command or "(not recorded)", "```", ""]
        if self.timings:
            lines += ["Wall time of each part: " + ", ".join(
                f"{k} {fmt(v, '.0f', ' s') if v is not None else 'failed'}"
                for k, v in self.timings.items()) + ".", ""]
        return lines

    def step_section(self):
        lines = ["## (a) Training step", "",
                 "One SGD step on a fixed minibatch in memory (`BM_Step`, automatic shard count; "
                 "`BM_StepBatch` for batch 1024). Roof: the same sharded step doing only its "
                 "`sgemm` calls (`BM_GemmOnlyStep`); % of roof: " + (
                     "the median over iterations of the roof's time over the step's, the two "
                     "timed alternately in one loop (`BM_StepAndRoof`), so that a shared "
                     "machine's drift in speed falls on both alike"
                     if self.bench.has("BM_StepAndRoof") else
                     "the step's samples/s over the roof's, each a median of its own "
                     "repetitions") + "; FMA peak: `BM_FmaPeak` at the same threads. "
                 "GFLOP/s count the products' FLOPs as they run (2 per weight per row forward, 2 for "
                 "dW, 2 for dx except in the first layer; element-wise work not counted). PyTorch: `pytorch_step.py`, "
                 "default configuration and fastest one found.", ""]
        if not self.bench.has("BM_Step"):
            return lines + [not_measured("no BM_Step in raw/shardprop_bench.json"), ""] + \
                self.batch_subsection()
        rows = []
        for label, net, batch, case, target in STEP_NETWORKS:
            runs = self.step_runs(net)
            if not runs and net == "medium@1024":
                rows.append((label, batch, "–", "not measured (no BM_StepBatch)", "", "", "", "",
                             "", "", ""))
                continue
            for threads, (step, roof) in sorted(runs.items()):
                samples = step.get("samples")
                us = seconds_of(step) * 1e6
                flop = step.get("FLOP")
                of_roof = self.of_roof("medium" if net == "medium@1024" else net, threads,
                                       batch, step, roof)
                of_peak = div(flop, self.fma_peak(threads))
                default = self.torch_entry("default", case, threads)
                best = self.torch_entry("best", case, threads)
                best_rate = best["samples_per_second"] if best else None
                versus = div(samples, best_rate)
                rows.append((label, batch, threads, fmt(samples), fmt(us, ",.2f" if us < 100
                                                                       else ",.0f"),
                             fmt(flop / 1e9 if flop else None, ",.1f"), pct(of_roof),
                             pct(of_peak),
                             fmt(default["samples_per_second"] if default else None),
                             fmt(best_rate) + (f" ({best['environment']}, {best['flags']})"
                                               if best else ""), ratio(versus)))
                where = f"{label}, {threads} thread{'s' if threads > 1 else ''}"
                torch_target = STEP_TORCH_TARGETS.get(net, 1.0)
                if versus is not None and versus < torch_target:
                    target_text = f", target {torch_target:g}×" if torch_target != 1.0 else ""
                    self.slower.append(f"Step, {where}: {ratio(versus)} PyTorch's best "
                                       f"({fmt(samples)} against {fmt(best_rate)} samples/s"
                                       f"{target_text}).")
                if target and of_roof is not None and of_roof < target:
                    self.slower.append(f"Step, {where}: {pct(of_roof)} of the GEMM-only roof "
                                       f"(target {pct(target)}).")
                if net == "tiny" and us >= TINY_TARGET_US:
                    self.slower.append(f"Step, {where}: {us:.2f} µs per step (target < "
                                       f"{TINY_TARGET_US:g} µs).")
                self.summary.setdefault("step", {})[(net, threads)] = {
                    "label": label, "samples": samples, "us": us, "of_roof": of_roof,
                    "of_peak": of_peak, "best": best_rate, "versus": versus, "target": target}
        lines.append(table(["network", "batch", "threads", "samples/s", "µs/step", "GFLOP/s",
                            "% of roof", "% of FMA peak", "PyTorch default", "PyTorch best",
                            "shardprop / PyTorch best"], rows))
        if not self.bench.has("BM_FmaPeak"):
            lines += ["", not_measured("the FMA peak (no BM_FmaPeak in this binary)")]
        if not self.torch:
            lines += ["", not_measured("PyTorch (no raw/pytorch_step.json)")]
        lines.append("")
        if self.plot_throughput():
            lines += [f"![Throughput against threads](plots/{PLOTS['throughput']})", ""]
        lines += self.batch_subsection()
        return lines

    def batch_subsection(self):
        lines = ["### Step against batch size (medium)", ""]
        found = self.bench.find("BM_StepBatch", ("medium",))
        if not found:
            return lines + [not_measured("no BM_StepBatch in this binary"), ""]
        rows = []
        for _, args, step in found:
            roof = self.bench.one("BM_GemmOnlyStepBatch", ("medium",), batch=args["batch"],
                                  threads=args["threads"])
            peak = self.fma_peak(args["threads"])
            flop = step.get("FLOP")
            rows.append((args["batch"], args["threads"], fmt(step.get("samples")),
                         fmt(flop / 1e9 if flop else None, ",.1f"),
                         fmt(roof["FLOP"] / 1e9 if roof and roof.get("FLOP") else None, ",.1f"),
                         pct(self.of_roof("medium", args["threads"], args["batch"], step, roof)),
                         pct(div(flop, peak))))
        rows.sort(key=lambda r: (r[1], r[0]))
        lines.append(table(["batch", "threads", "samples/s", "GFLOP/s", "roof GFLOP/s",
                            "% of roof", "% of FMA peak"], rows))
        lines.append("")
        if self.plot_batch():
            lines += [f"![GFLOP/s against batch size](plots/{PLOTS['batch']})", ""]
        return lines

    def inference_section(self):
        lines = ["## (b) Inference", "",
                 "`BM_Evaluate`: `Trainer::evaluate` over 16 minibatches of 256 rows in memory "
                 "(forward pass in inference mode and the metrics); PyTorch: `model.eval()`, "
                 "`torch.no_grad()`, forward and loss over the same 4096 rows. Forward GFLOP/s "
                 "count 2 FLOPs per weight per row; the step's column is `BM_Step`'s rate at the "
                 f"same threads. Target: at least {INFERENCE_TARGET:g}× PyTorch's forward.", ""]
        found = self.bench.find("BM_Evaluate")
        if not found:
            return lines + [not_measured("no BM_Evaluate in raw/shardprop_bench.json"), ""]
        rows = []
        for pos, args, entry in found:
            net, threads = pos[0], args["threads"]
            samples = entry.get("samples")
            flop = entry.get("FLOP")
            step = self.bench.one("BM_Step", (net,), shards=0, threads=threads)
            step_flop = step.get("FLOP") if step else None
            best = self.torch_entry("best", f"{net}_eval", threads)
            best_rate = best["samples_per_second"] if best else None
            versus = div(samples, best_rate)
            rows.append((net, threads, fmt(samples), fmt(best_rate), ratio(versus),
                         fmt(flop / 1e9 if flop else None, ",.1f"),
                         fmt(step_flop / 1e9 if step_flop else None, ",.1f"),
                         pct(div(flop, step_flop))))
            if versus is not None and versus < INFERENCE_TARGET:
                self.slower.append(f"Inference, {net}, {threads} thread{'s' if threads > 1 else ''}"
                                   f": {ratio(versus)} PyTorch's forward (target "
                                   f"{INFERENCE_TARGET:g}×).")
            self.summary.setdefault("inference", {})[(net, threads)] = (samples, best_rate, versus)
        lines.append(table(["network", "threads", "shardprop rows/s", "PyTorch rows/s",
                            "shardprop / PyTorch", "forward GFLOP/s", "step GFLOP/s",
                            "forward / step"], rows))
        if not self.torch:
            lines += ["", not_measured("PyTorch (no raw/pytorch_step.json)")]
        return lines + [""]

    def sgemm_section(self):
        lines = ["## (c) sgemm per shape of the medium step", "",
                 "`BM_Sgemm`: each product of one unsharded medium step (batch 256), OpenBLAS on "
                 "one thread, against the 1-thread FMA peak.", ""]
        found = self.bench.find("BM_Sgemm")
        if not found:
            return lines + [not_measured("no BM_Sgemm in raw/shardprop_bench.json"), ""]
        peak = self.fma_peak(1)
        rows = []
        for pos, args, entry in found:
            flop = entry.get("FLOP")
            rows.append(("/".join(pos), args.get("m"), args.get("n"), args.get("k"),
                         fmt(seconds_of(entry) * 1e6, ",.1f"),
                         fmt(flop / 1e9 if flop else None, ",.1f"), pct(div(flop, peak))))
        lines.append(table(["shape", "m", "n", "k", "µs", "GFLOP/s", "% of FMA peak (1 thread)"],
                           rows))
        if peak is None:
            lines += ["", not_measured("the FMA peak (no BM_FmaPeak in this binary)")]
        return lines + [""]

    def phases_section(self):
        lines = ["## (d) Where the step's time goes", "",
                 "`BM_StepPhases`: microseconds per step in each phase (share of the step).", ""]
        order = ["tiny", "small", "medium", "medium_bn"]
        found = sorted(self.bench.find("BM_StepPhases"),
                       key=lambda f: (order.index(f[0][0]) if f[0] and f[0][0] in order else 99,
                                      f[0], f[1].get("threads", 0)))
        if not found:
            return lines + [not_measured("no BM_StepPhases in this binary"), ""]
        present = [p for p in PHASES if any(p in e for _, _, e in found)]
        rows = []
        for pos, args, entry in found:
            step_us = entry.get("step_us")
            cells = [f"{fmt(entry.get(p), ',.0f')} ({pct(div(entry.get(p), step_us))})"
                     for p in present]
            rows.append(["/".join(pos), args.get("threads")] + cells + [fmt(step_us, ",.0f")])
        lines.append(table(["network", "threads"] + [p.removesuffix("_us").replace("_", " ")
                                                     for p in present] + ["step µs"], rows))
        lines.append("")
        if self.plot_phases(found, present):
            lines += [f"![Phase breakdown](plots/{PLOTS['phases']})", ""]
        return lines

    def csv_section(self):
        lines = ["## (e) CSV parsing", "",
                 "MB/s (10⁶ bytes/s) on the synthetic files `shardprop_csv_bench` makes, in the "
                 "page cache. read() and mmap touch are the I/O limits; bare fast_float is a "
                 "loop without validation. pandas: `pandas.read_csv(path)`, one thread, median "
                 f"of its runs. Target: {CSV_TARGET_MB_S:,.0f} MB/s at 2 threads.", ""]
        if not self.csv_data:
            return lines + [not_measured("no raw/shardprop_csv_bench.json"), ""]
        ctx = self.csv.context
        rows = []
        bars = []
        for name in CSV_FILES:
            if f"csv_{name}_bytes" not in ctx:
                continue
            size = int(ctx[f"csv_{name}_bytes"]) / 1e6
            rates = []
            for _, pattern in CSV_COLUMNS:
                entry = self.csv.median(pattern.format(name) + "/real_time") or \
                    self.csv.median(pattern.format(name))
                rates.append(entry.get("MB") if entry else None)
            theirs = None
            for r in (self.pandas or {}).get("files", []):
                if os.path.basename(r["path"]) == os.path.basename(ctx.get(f"csv_{name}", "")):
                    theirs = r["mb_per_s"]
            two = rates[4]
            rows.append([name, fmt(size, ",.0f"), ctx.get(f"csv_{name}_rows", "?")] +
                        [fmt(r) for r in rates] + [fmt(theirs), ratio(div(two, theirs))])
            bars.append((name, rates, theirs))
            if two is not None and two < CSV_TARGET_MB_S:
                self.slower.append(f"CSV parsing, {name}: {fmt(two)} MB/s at 2 threads (target "
                                   f"{CSV_TARGET_MB_S:,.0f}).")
            self.summary.setdefault("csv", []).append((name, size, two, theirs))
        if not rows:
            return lines + [not_measured("no CSV file in the benchmark's context"), ""]
        lines.append(table(["file", "MB", "rows"] + [t for t, _ in CSV_COLUMNS] +
                           ["pandas", "shardprop 2t / pandas"], rows))
        small = [r[0] for r in rows if float(r[1].replace(",", "")) < 200]
        if small:
            lines += ["", f"Files under 200 MB ({', '.join(small)}): a quick run, not the "
                      "published setting (SHARDPROP_BENCH_CSV_MB=256)."]
        if not self.pandas:
            lines += ["", not_measured("pandas (no raw/csv_baselines.json)")]
        lines.append("")
        if self.plot_csv(bars):
            lines += [f"![CSV MB/s](plots/{PLOTS['csv']})", ""]
        return lines

    def e2e_section(self):
        lines = ["## (f) End to end: CSV file to trained model", "",
                 "`end_to_end.py`: `shardprop train` against a PyTorch + pandas script "
                 "(read_csv, standardize, per-epoch randperm, SGD, torch.save) in PyTorch's "
                 "fastest configuration, each timed as a whole process; median of the runs. "
                 "Ratio: PyTorch's seconds / shardprop's. Targets: "
                 + ", ".join(f"{c} ≥ {t:g}×" for c, t in E2E_TARGETS.items()) + ".", ""]
        if not self.e2e:
            return lines + [not_measured("no raw/end_to_end.json"), ""]
        e = self.e2e
        lines += [f"{e.get('epochs')} epoch(s), batch {e.get('batch_size')}, lr {e.get('lr')}, "
                  f"{e.get('threads')} threads, median of {e.get('runs')} run(s).", ""]
        rows = []
        for c in e.get("cases", []):
            ours, theirs = c["shardprop"], c["pytorch"]
            rows.append((c["case"], c.get("layers"), f"{c['bytes'] / 1e6:,.1f}", f"{c['rows']:,}",
                         fmt(ours["median_seconds"], ",.2f"), fmt(theirs["median_seconds"], ",.2f"),
                         ratio(c["ratio"]), fmt(ours.get("final_loss"), ".4f"),
                         fmt(theirs.get("final_loss"), ".4f"),
                         f"{theirs.get('environment')}, {theirs.get('flags')}"))
            target = E2E_TARGETS.get(c["case"], 1.0)
            if c["ratio"] < target:
                self.slower.append(f"End to end, {c['case']}: {ratio(c['ratio'])} faster than "
                                   f"PyTorch + pandas (target {target:g}×).")
            self.summary.setdefault("e2e", []).append(c)
        lines.append(table(["case", "hidden", "MB", "rows", "shardprop s", "PyTorch s",
                            "PyTorch / shardprop", "final loss shardprop", "final loss PyTorch",
                            "PyTorch config"], rows))
        lines.append("")
        lines += self.stream_subsection(e.get("cases", []))
        if self.plot_e2e():
            lines += [f"![End-to-end seconds](plots/{PLOTS['e2e']})", ""]
        return lines

    def stream_subsection(self, cases):
        """The same shardprop command with --stream against in memory (older JSON: absent)."""
        streamed = [c for c in cases if c.get("shardprop_stream")]
        lines = ["### Streamed against in memory", "",
                 f"The same `shardprop train` with `--stream` (the file read in blocks every "
                 f"epoch, memory flat) over the command without it. Target: the epochs within "
                 f"{STREAM_EPOCH_TARGET:g}× of in memory.", ""]
        if not streamed:
            return lines + [not_measured("no --stream runs in raw/end_to_end.json"), ""]
        rows = []
        for c in streamed:
            ours, stream = c["shardprop"], c["shardprop_stream"]
            rows.append((c["case"], fmt(ours["median_seconds"], ",.2f"),
                         fmt(stream["median_seconds"], ",.2f"), ratio(c["stream_ratio"]),
                         fmt(ours.get("median_epoch_seconds"), ",.2f"),
                         fmt(stream.get("median_epoch_seconds"), ",.2f"),
                         ratio(c["stream_epoch_ratio"]),
                         f"{statistics.median(ours['max_rss_mb']):,.0f} / "
                         f"{statistics.median(stream['max_rss_mb']):,.0f}"))
            if c["stream_epoch_ratio"] > STREAM_EPOCH_TARGET:
                self.slower.append(
                    f"Streaming, {c['case']}: the streamed epochs take "
                    f"{ratio(c['stream_epoch_ratio'])} the in-memory ones "
                    f"(target {STREAM_EPOCH_TARGET:g}×).")
        lines.append(table(["case", "in memory s", "--stream s", "command ratio",
                            "epochs in memory s", "epochs streamed s", "epoch ratio",
                            "peak RSS MB (memory / stream)"], rows))
        lines.append("")
        return lines

    def slower_section(self, notes):
        lines = ["## Where shardprop is slower", "",
                 "Every row above below PyTorch or below its target (medium step ≥ 95% of the "
                 "roof, small ≥ 85%, tiny < 1 µs; the step against PyTorch's best ≥ 1× on "
                 "medium, ≥ 3× on small, ≥ 150× on tiny; CSV ≥ 1 GB/s at 2 threads, end to end "
                 "≥ 2.5× medium and ≥ 8× small, inference ≥ 3× PyTorch's forward):", ""]
        lines += [f"- {s}" for s in self.slower] or ["- Nowhere in the measured rows."]
        lines.append("")
        if notes:
            lines += [notes.strip(), ""]
        return lines

    # --- plots ---
    def pyplot(self):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        os.makedirs(os.path.join(self.out_dir, "plots"), exist_ok=True)
        return plt

    def save(self, plt, fig, key):
        fig.tight_layout()
        fig.savefig(os.path.join(self.out_dir, "plots", PLOTS[key]), dpi=100)
        plt.close(fig)
        self.plots[key] = PLOTS[key]
        return True

    def plot_throughput(self):
        networks = [(label, net, case) for label, net, _, case, _ in STEP_NETWORKS
                    if self.step_runs(net)]
        if not networks:
            return False
        plt = self.pyplot()
        fig, axes = plt.subplots(1, len(networks), figsize=(3.6 * len(networks), 3.4),
                                 squeeze=False)
        for ax, (label, net, case) in zip(axes[0], networks):
            runs = sorted(self.step_runs(net).items())
            threads = [t for t, _ in runs]
            ax.plot(threads, [s.get("samples") for _, (s, _) in runs], "o-", label="shardprop")
            roof = [(t, r.get("samples")) for t, (_, r) in runs if r]
            if roof:
                ax.plot(*zip(*roof), "s--", label="GEMM-only roof")
            torch = [(t, b["samples_per_second"]) for t in threads
                     if (b := self.torch_entry("best", case, t))]
            if torch:
                ax.plot(*zip(*torch), "^:", label="PyTorch best")
            ax.set_title(label, fontsize=9)
            ax.set_xlabel("threads")
            ax.set_xticks(threads)
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("samples/s")
        axes[0][0].legend(fontsize=8)
        return self.save(plt, fig, "throughput")

    def plot_batch(self):
        found = self.bench.find("BM_StepBatch", ("medium",))
        if not found:
            return False
        plt = self.pyplot()
        fig, ax = plt.subplots(figsize=(6.4, 4))
        for threads in sorted({a["threads"] for _, a, _ in found}):
            mine = sorted((a["batch"], e.get("FLOP", 0) / 1e9) for _, a, e in found
                          if a["threads"] == threads)
            line, = ax.plot(*zip(*mine), "o-", label=f"step, {threads} thr")
            roof = sorted((a["batch"], e.get("FLOP", 0) / 1e9) for _, a, e in
                          self.bench.find("BM_GemmOnlyStepBatch", ("medium",), threads=threads))
            if roof:
                ax.plot(*zip(*roof), "s--", color=line.get_color(), alpha=0.7,
                        label=f"GEMM-only roof, {threads} thr")
            peak = self.fma_peak(threads)
            if peak:
                ax.axhline(peak / 1e9, color=line.get_color(), linestyle=":",
                           label=f"FMA peak, {threads} thr")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("GFLOP/s")
        ax.set_ylim(bottom=0)
        ax.set_title("medium 784-1024-1024-10", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        return self.save(plt, fig, "batch")

    def plot_phases(self, found, present):
        plt = self.pyplot()
        labels = [f"{'/'.join(pos)}\n{args.get('threads')} thr" for pos, args, _ in found]
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(found) + 2), 4))
        bottom = [0.0] * len(found)
        for phase in present:  # shares of the step: the small network's bars stay visible
            values = [100.0 * (e.get(phase) or 0.0) / e["step_us"] if e.get("step_us") else 0.0
                      for _, _, e in found]
            ax.bar(labels, values, bottom=bottom, label=phase.removesuffix("_us"))
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_ylabel("% of the step")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        ax.tick_params(axis="x", labelsize=8)
        return self.save(plt, fig, "phases")

    def plot_csv(self, bars):
        if not bars:
            return False
        plt = self.pyplot()
        series = [t for t, _ in CSV_COLUMNS] + ["pandas"]
        fig, ax = plt.subplots(figsize=(7, 4))
        width = 0.8 / len(series)
        for k, title in enumerate(series):
            values = [(rates[k] if k < len(rates) else theirs) or 0.0 for _, rates, theirs in bars]
            ax.bar([i + k * width for i in range(len(bars))], values, width, label=title)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(bars))])
        ax.set_xticklabels([name for name, _, _ in bars])
        ax.set_ylabel("MB/s")
        ax.legend(fontsize=7)
        return self.save(plt, fig, "csv")

    def plot_e2e(self):
        cases = (self.e2e or {}).get("cases", [])
        if not cases:
            return False
        plt = self.pyplot()
        fig, ax = plt.subplots(figsize=(5, 3.6))
        xs = range(len(cases))
        ax.bar([x - 0.2 for x in xs], [c["shardprop"]["median_seconds"] for c in cases], 0.4,
               label="shardprop train")
        ax.bar([x + 0.2 for x in xs], [c["pytorch"]["median_seconds"] for c in cases], 0.4,
               label="PyTorch + pandas")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([c["case"] for c in cases])
        ax.set_ylabel("seconds, CSV to saved model")
        ax.legend(fontsize=8)
        return self.save(plt, fig, "e2e")

    # --- output ---
    def markdown(self, notes):
        lines = self.header()
        for section in (self.machine_section, self.step_section, self.inference_section,
                        self.sgemm_section, self.phases_section, self.csv_section,
                        self.e2e_section):
            lines += section()
        lines += self.slower_section(notes)
        return "\n".join(lines).rstrip() + "\n"

    def readme_summary(self, readme_path):
        base = os.path.dirname(os.path.abspath(readme_path))
        rel = os.path.relpath(os.path.abspath(self.out_dir), base)
        m = self.machine
        torch = m.get("pytorch") or {}
        lines = [f"Measured {(m.get('date') or '?')[:10]} on {m.get('cpu_model', '?')} "
                 f"({m.get('nproc', '?')} cores, {fmt(m.get('memory_gib'), '.0f', ' GiB')}), "
                 f"shardprop {(m.get('shardprop') or {}).get('shardprop_version', '?')}, OpenBLAS "
                 f"core {(m.get('shardprop') or {}).get('openblas_core', '?')}, PyTorch "
                 f"{torch.get('version', 'n/a')}:", "", "```sh", self.command or "?", "```", ""]
        drift = self.drift_warning()
        if drift:
            lines += [f"> **Drift warning:** {drift}", ""]
        rows = []
        threads = self.core_threads()
        for net in ("medium", "small"):
            s = (self.summary.get("step") or {}).get((net, threads))
            if s:
                rows.append((f"{s['label']} step, {threads} threads", f"{fmt(s['samples'])} samples/s",
                             f"{pct(s['of_roof'])} of the GEMM-only roof (target "
                             f"{pct(s['target'])}), {pct(s.get('of_peak'))} of the FMA peak",
                             f"{ratio(s['versus'])} PyTorch's best ({fmt(s['best'])})"))
        for c in self.summary.get("e2e", []):
            rows.append((f"end to end {c['case']} ({c['rows']:,} rows, {self.e2e.get('epochs')} "
                         "epochs)", f"{c['shardprop']['median_seconds']:,.1f} s",
                         f"PyTorch + pandas {c['pytorch']['median_seconds']:,.1f} s",
                         f"{ratio(c['ratio'])} faster (target {E2E_TARGETS.get(c['case'], 1):g}×)"))
        for (net, t), (samples, theirs, versus) in sorted(
                (self.summary.get("inference") or {}).items()):
            if t == threads:
                rows.append((f"inference {net}, {t} threads", f"{fmt(samples)} rows/s",
                             f"PyTorch eval {fmt(theirs)} rows/s",
                             f"{ratio(versus)} (target {INFERENCE_TARGET:g}×)"))
        for name, size, two, theirs in self.summary.get("csv", []):
            rows.append((f"CSV parse {name} ({size:,.0f} MB)", f"{fmt(two)} MB/s at 2 threads",
                         f"pandas {fmt(theirs)} MB/s", ratio(div(two, theirs))))
        if rows:
            lines += [table(["", "shardprop", "reference", "ratio"], rows), ""]
        if "throughput" in self.plots:
            lines += [f"![Throughput against threads]({rel}/plots/{PLOTS['throughput']})", ""]
        lines += ["Where shardprop is slower:", ""]
        lines += [f"- {s}" for s in self.slower] or ["- nowhere in the measured rows"]
        lines += ["", f"Full report, every table and the explanations: [{rel}/report.md]"
                      f"({rel}/report.md)."]
        return "\n".join(lines)


def replace_between_markers(path, text):
    with open(path, encoding="utf-8") as f:
        content = f.read()
    pattern = re.compile(r"(<!-- report:begin -->\n).*?(<!-- report:end -->)", re.S)
    if not pattern.search(content):
        raise SystemExit(f"make_report: {path} has no <!-- report:begin --> ... "
                         "<!-- report:end --> markers")
    content = pattern.sub(lambda m: m.group(1) + text.rstrip() + "\n" + m.group(2), content, 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(content)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir", help="the raw/ directory report.sh wrote")
    parser.add_argument("out_dir", help="where report.md and plots/ go")
    parser.add_argument("--readme", help="replace the summary between this file's markers")
    parser.add_argument("--notes", help="Markdown explaining the slower rows, appended")
    args = parser.parse_args()
    if not os.path.isdir(args.raw_dir):
        parser.error(f"{args.raw_dir}: not a directory")
    notes = read_text(args.notes) if args.notes else None
    if args.notes and notes is None:
        parser.error(f"--notes {args.notes}: cannot read")
    os.makedirs(args.out_dir, exist_ok=True)
    report = Report(args.raw_dir, args.out_dir)
    text = report.markdown(notes)
    with open(os.path.join(args.out_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(f"make_report: wrote {os.path.join(args.out_dir, 'report.md')} and "
          f"{len(report.plots)} plot(s)")
    if args.readme:
        replace_between_markers(args.readme, report.readme_summary(args.readme))
        print(f"make_report: updated the summary in {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
