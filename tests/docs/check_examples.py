#!/usr/bin/env python3
"""Checks that code shown in the README and docs/ is the code CI builds.

A fenced block right after a marker line `<!-- example: PATH -->` must equal the file PATH (relative
to the repository root) exactly. Usage: check_examples.py REPO_ROOT. Exits 1 naming every block
that differs or is missing, so a changed example and its documentation cannot drift apart.
"""
import pathlib
import re
import sys

MARKER = re.compile(r"^<!-- example: (\S+) -->$")


def blocks(text):
    """Yields (line number, path, fenced block text or None) for each marker."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if not match:
            continue
        body = None
        if i + 1 < len(lines) and lines[i + 1].startswith("```"):
            end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("```")), None)
            if end is not None:
                body = "\n".join(lines[i + 2:end]) + "\n"
        yield i + 1, match.group(1), body


def main():
    root = pathlib.Path(sys.argv[1])
    documents = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    problems, checked = [], 0
    for document in documents:
        for line, path, body in blocks(document.read_text(encoding="utf-8")):
            where = f"{document.relative_to(root)}:{line}"
            source = root / path
            if body is None:
                problems.append(f"{where}: no fenced code block follows the marker for {path}")
            elif not source.is_file():
                problems.append(f"{where}: {path} does not exist")
            elif source.read_text(encoding="utf-8") != body:
                problems.append(f"{where}: the block differs from {path}; paste the file again")
            checked += 1
    for problem in problems:
        print(problem)
    print(f"{checked - len(problems)} passed, {len(problems)} failed")
    return 1 if problems or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
