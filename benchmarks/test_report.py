#!/usr/bin/env python3
"""Test of make_report.py (ctest benchmarks.report_from_fixture): runs it on a saved fixture
into a temporary directory and checks every section heading, every plot and the README
summary; then on an empty raw directory, where every section must say "not measured".

    python3 benchmarks/test_report.py benchmarks/fixtures/report
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
HEADINGS = ["# shardprop benchmark report", "## Machine", "## (a) Training step",
            "### Step against batch size (medium)", "## (b) Inference",
            "## (c) sgemm per shape of the medium step", "## (d) Where the step's time goes",
            "## (e) CSV parsing", "## (f) End to end: CSV file to trained model",
            "## Where shardprop is slower"]
PLOTS = ["throughput.png", "gflops_vs_batch.png", "phases.png", "csv.png", "end_to_end.png"]
README = "# Project\n\n## Performance\n\n<!-- report:begin -->\nplaceholder\n<!-- report:end -->\n\nafter\n"


def run(raw_dir, out_dir, *extra):
    subprocess.run([sys.executable, os.path.join(SCRIPT_DIR, "make_report.py"), raw_dir, out_dir,
                    *extra], check=True)
    with open(os.path.join(out_dir, "report.md"), encoding="utf-8") as f:
        return f.read()


def main():
    fixture = sys.argv[1]
    failures = []
    with tempfile.TemporaryDirectory(prefix="shardprop_report_test_") as tmp:
        readme = os.path.join(tmp, "README.md")
        notes = os.path.join(tmp, "notes.md")
        with open(readme, "w", encoding="utf-8") as f:
            f.write(README)
        with open(notes, "w", encoding="utf-8") as f:
            f.write("Why: the notes text.\n")
        out = os.path.join(tmp, "out")
        text = run(fixture, out, "--readme", readme, "--notes", notes)
        if "BLAS kernel warning" in text:
            failures.append("a BLAS kernel warning, although the fixture's machine has none")
        # The same inputs as if OpenBLAS had been held to narrower kernels: the report warns.
        forced = os.path.join(tmp, "forced")
        shutil.copytree(fixture, forced)
        bench_path = os.path.join(forced, "shardprop_bench.json")
        with open(bench_path, encoding="utf-8") as f:
            bench = json.load(f)
        bench["context"]["blas_kernel_note"] = (
            "OpenBLAS runs its Haswell kernels (AVX2) on a CPU with AVX-512, because "
            "OPENBLAS_CORETYPE=Haswell is set; unset it to let OpenBLAS choose")
        with open(bench_path, "w", encoding="utf-8") as f:
            json.dump(bench, f)
        if "BLAS kernel warning:** OpenBLAS runs its Haswell" not in run(forced, out):
            failures.append("no BLAS kernel warning for a kernel note in the context")
        text = run(fixture, out, "--readme", readme, "--notes", notes)
        for heading in HEADINGS:
            if f"\n{heading}" not in "\n" + text:
                failures.append(f"report.md lacks the heading {heading!r}")
        for needle in ("Why: the notes text.", "medium, batch 1024",
                       "forward gemm", "shardprop 2t / pandas", "PyTorch / shardprop"):
            if needle not in text:
                failures.append(f"report.md lacks {needle!r}")
        if "Not measured" in text:
            failures.append("the fixture has every input, yet a section says 'Not measured'")
        # % of roof comes from BM_StepAndRoof where the fixture has it (small and medium at 2
        # threads, batch 256), from the separate benchmarks' rates elsewhere.
        lines = text.splitlines()

        def row(prefix):
            return next((line for line in lines if line.startswith(prefix)), "")
        if "| 81.2% |" not in row("| small 64-128-128-10 | 256 | 2 |"):
            failures.append("the small step at 2 threads does not show BM_StepAndRoof's 81.2%")
        if "| 81.2% |" in row("| small 64-128-128-10 | 256 | 1 |"):
            failures.append("the small step at 1 thread shows the pair's 2-thread ratio")
        if "| 93.7% |" not in row("| medium 784-1024-1024-10 | 256 | 2 |"):
            failures.append("the medium step at 2 threads does not show BM_StepAndRoof's 93.7%")
        if "| 93.7% |" not in row("| 256 | 2 |"):
            failures.append("the batch-256 row does not show BM_StepAndRoof's 93.7%")
        # The small step is 2.68× PyTorch's best in the fixture: below its 3× target.
        small_versus = row("- Step, small 64-128-128-10, 2 threads: 2.68× PyTorch's best")
        if "target 3×)" not in small_versus:
            failures.append("no 'slower' line for the small step below 3× PyTorch's best")
        for plot in PLOTS:
            path = os.path.join(out, "plots", plot)
            if not os.path.isfile(path) or os.path.getsize(path) == 0:
                failures.append(f"plots/{plot} missing or empty")
            elif f"plots/{plot}" not in text:
                failures.append(f"report.md does not show plots/{plot}")
        if sorted(os.listdir(out)) != ["plots", "report.md"]:
            failures.append(f"unexpected files in the output: {sorted(os.listdir(out))}")
        with open(readme, encoding="utf-8") as f:
            summary = f.read()
        if "Drift warning" in text or "Drift warning" in summary:
            failures.append("a drift warning, although the fixture's pairs match its steps")
        if "placeholder" in summary or not summary.endswith("<!-- report:end -->\n\nafter\n"):
            failures.append("README markers not replaced in place")
        for needle in ("out/plots/throughput.png", "out/report.md", "Where shardprop is slower"):
            if needle not in summary:
                failures.append(f"README summary lacks {needle!r}")

        # The separate medium step 30% slower than the same step in BM_StepAndRoof: the speed
        # drifted between them, and the report and the README summary say so.
        drifted = os.path.join(tmp, "drifted")
        shutil.copytree(fixture, drifted)
        bench_path = os.path.join(drifted, "shardprop_bench.json")
        with open(bench_path, encoding="utf-8") as f:
            bench = json.load(f)
        for entry in bench["benchmarks"]:
            if entry["name"].startswith("BM_Step/medium/threads:2/shards:0/"):
                entry["real_time"] *= 1.3
        with open(bench_path, "w", encoding="utf-8") as f:
            json.dump(bench, f)
        with open(readme, "w", encoding="utf-8") as f:
            f.write(README)
        text = run(drifted, os.path.join(tmp, "drifted_out"), "--readme", readme)
        with open(readme, encoding="utf-8") as f:
            summary = f.read()
        for where, body in (("report.md", text), ("README summary", summary)):
            if "Drift warning:** the machine's speed changed" not in body or \
                    "BM_Step/medium/threads:2/shards:0" not in body:
                failures.append(f"{where}: no drift warning naming the drifted step")

        # No inputs at all: every section says so, nothing crashes.
        empty_raw = os.path.join(tmp, "empty")
        os.mkdir(empty_raw)
        text = run(empty_raw, os.path.join(tmp, "empty_out"))
        for heading in HEADINGS:
            if f"\n{heading}" not in "\n" + text:
                failures.append(f"empty input: report.md lacks the heading {heading!r}")
        if text.count("Not measured") < 7:
            failures.append("empty input: expected a 'Not measured' line in every section")
    for failure in failures:
        print(f"test_report: FAIL: {failure}", file=sys.stderr)
    if not failures:
        print("test_report: report, plots and README summary as expected")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
