#!/usr/bin/env python3
"""Checks the direction of dependencies between lib/src's concept folders.

A folder includes its own headers, the public headers (shardprop/...) and the headers of the
folders it is allowed to depend on below, never those above: layers (nn) know nothing of
training (train), data knows nothing of networks, and only capi sees everything.
Usage: check_includes.py REPO_ROOT. Prints each offending include and exits 1 if there is any.
"""
import pathlib
import re
import sys

ALLOWED = {
    "base": set(),
    "nn": {"base"},
    "data": {"base"},
    "train": {"base", "nn", "data"},
    "io": {"base", "nn", "train"},
    "infer": {"base", "nn", "data", "io"},
    "capi": {"base", "nn", "data", "train", "io", "infer"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([\w./]+)"')


def main():
    src = pathlib.Path(sys.argv[1]) / "lib" / "src"
    problems, files = [], 0
    for path in sorted(src.rglob("*.[ch]pp")):
        folder = path.relative_to(src).parts[0]
        if folder not in ALLOWED:
            problems.append(f"{path}: folder '{folder}' is not in the layer map of {__file__}")
            continue
        files += 1
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = INCLUDE.match(line)
            if not match or "/" not in match.group(1):
                continue
            target = match.group(1).split("/")[0]
            if target in ("shardprop", folder) or target in ALLOWED[folder]:
                continue
            problems.append(f"{path}:{number}: {folder}/ includes {match.group(1)}")
    for problem in problems:
        print(problem)
    print(f"{files - len({p.split(':')[0] for p in problems})} passed, "
          f"{len({p.split(':')[0] for p in problems})} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
