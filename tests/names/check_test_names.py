#!/usr/bin/env python3
"""Fails when a Catch2 test name would not run as its own ctest test.

catch_discover_tests registers every test case by name, and CMake splits a name at ';' into a
list: such a test ran nothing under ctest and still counted as passed. Usage:
check_test_names.py TEST_BINARY
"""
import subprocess
import sys


def main() -> int:
    # Catch2 v2 exits with the number of tests it listed, so the status says nothing here.
    listed = subprocess.run([sys.argv[1], "--list-test-names-only"], capture_output=True,
                            text=True)
    names = listed.stdout.splitlines()
    if not names:
        print(f"no test names listed: {listed.stderr}")
        return 1
    bad = [n for n in names if ";" in n]
    for name in bad:
        print(f"test name with ';' (ctest would run none of it): {name}")
    print(f"{len(names)} test names checked, {len(bad)} with ';'")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
