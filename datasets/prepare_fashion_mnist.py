#!/usr/bin/env python3
"""Converts Fashion-MNIST from the Debian package's IDX files into two CSV files.

Reads /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (package
dataset-fashion-mnist) and writes fashion-mnist-train.csv (60,000 rows) and fashion-mnist-test.csv
(10,000 rows) with the header p0,...,p783,label: 784 pixel intensities 0..255 in row-major order
(p = 28 * row + column), then the class index 0..9 last, so that shardprop's default target (the
last column) is the label. Python standard library only; leaves out any scaling or shuffling.

    python3 datasets/prepare_fashion_mnist.py [--out-dir datasets/generated] [--force]

Skips a CSV that is newer than both of its inputs (unless --force) and writes through a temporary
file renamed into place, so an interrupted run never leaves a partial CSV. Exit status 0 on
success, 1 on a missing or malformed input or an I/O error, 2 on a usage error.
"""
import argparse
import gzip
import os
import struct
import sys
import tempfile
import time
import zlib

DEFAULT_INPUT_DIR = "/usr/share/datasets/fashion-mnist"
DEFAULT_OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated")
ROWS, COLUMNS = 28, 28
PIXELS = ROWS * COLUMNS
CLASSES = 10
# IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte), the rank.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
# (output name, images file, labels file, expected count)
SPLITS = (
    ("fashion-mnist-train.csv", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", 60000),
    ("fashion-mnist-test.csv", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 10000),
)


class InputError(Exception):
    """A missing, unreadable or malformed input file; the message names the file."""


def read_gzip(path):
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (install it: apt-get install dataset-fashion-mnist)")
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise InputError(f"{path}: cannot read as gzip: {e}")


def read_idx(path, magic, dims):
    """The payload of an IDX file of unsigned bytes with header `magic` and then `dims`."""
    data = read_gzip(path)
    header_size = 4 * (1 + len(dims))
    if len(data) < header_size:
        raise InputError(f"{path}: {len(data)} bytes, too short for an IDX header")
    found_magic, *found_dims = struct.unpack(f">{1 + len(dims)}I", data[:header_size])
    if found_magic != magic:
        raise InputError(f"{path}: IDX magic number 0x{found_magic:08x}, expected 0x{magic:08x}")
    for i, (found, expected) in enumerate(zip(found_dims, dims)):
        if expected is not None and found != expected:
            raise InputError(f"{path}: dimension {i} is {found}, expected {expected}")
    payload = len(data) - header_size
    expected_payload = 1
    for d in found_dims:
        expected_payload *= d
    if payload != expected_payload:
        raise InputError(f"{path}: {payload} data bytes, the header {found_dims} says "
                         f"{expected_payload}")
    return found_dims[0], memoryview(data)[header_size:]


def csv_rows(images, labels):
    """Yields the CSV body in blocks of rows. Pixels are formatted two at a time from a table of
    all 65,536 pixel pairs: per-value formatting in Python would take about 10 times longer."""
    pair_text = [f"{i},{j},".encode() for i in range(256) for j in range(256)]
    if sys.byteorder == "little":  # a native uint16 holds the first pixel in its low byte
        pair_text = [pair_text[(v & 0xFF) * 256 + (v >> 8)] for v in range(65536)]
    lookup = pair_text.__getitem__
    pairs = images.cast("H")
    label_text = [f"{c}\n".encode() for c in range(CLASSES)]
    half = PIXELS // 2
    block = []
    for row, label in enumerate(labels):
        block.append(b"".join(map(lookup, pairs[row * half:(row + 1) * half])))
        block.append(label_text[label])
        if len(block) >= 2000:
            yield b"".join(block)
            block.clear()
    if block:
        yield b"".join(block)


def convert(images_path, labels_path, count, out_path):
    n_images, images = read_idx(images_path, IMAGES_MAGIC, (count, ROWS, COLUMNS))
    n_labels, labels = read_idx(labels_path, LABELS_MAGIC, (count,))
    if n_images != n_labels:
        raise InputError(f"{images_path} has {n_images} images but {labels_path} has {n_labels} "
                         f"labels")
    bad = next((i for i, c in enumerate(labels) if c >= CLASSES), None)
    if bad is not None:
        raise InputError(f"{labels_path}: label {labels[bad]} at index {bad} is not in 0..9")

    header = ",".join([f"p{i}" for i in range(PIXELS)] + ["label"]) + "\n"
    out_dir = os.path.dirname(out_path)
    fd, tmp_path = tempfile.mkstemp(prefix=".tmp-", suffix=".csv", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(header.encode())
            for block in csv_rows(images, labels):
                f.write(block)
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, out_path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except FileNotFoundError:
            pass
        raise
    return n_images


def up_to_date(out_path, inputs):
    try:
        out_time = os.stat(out_path).st_mtime_ns
        return all(os.stat(p).st_mtime_ns < out_time for p in inputs)
    except FileNotFoundError:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default=DEFAULT_INPUT_DIR,
                        help=f"directory of the IDX .gz files (default {DEFAULT_INPUT_DIR})")
    parser.add_argument("--out-dir", default=DEFAULT_OUT_DIR,
                        help="where the CSV files go (default: datasets/generated/ beside this "
                             "script, git-ignored)")
    parser.add_argument("--force", action="store_true", help="rewrite up-to-date outputs too")
    args = parser.parse_args()

    try:
        os.makedirs(args.out_dir, exist_ok=True)
        for out_name, images_name, labels_name, count in SPLITS:
            images_path = os.path.join(args.input_dir, images_name)
            labels_path = os.path.join(args.input_dir, labels_name)
            out_path = os.path.join(args.out_dir, out_name)
            if not args.force and up_to_date(out_path, (images_path, labels_path)):
                print(f"prepare_fashion_mnist: {out_path} is up to date")
                continue
            start = time.perf_counter()
            rows = convert(images_path, labels_path, count, out_path)
            seconds = time.perf_counter() - start
            size_mb = os.path.getsize(out_path) / 1e6
            print(f"prepare_fashion_mnist: wrote {out_path} ({rows} rows, {size_mb:.1f} MB, "
                  f"{seconds:.1f} s)")
    except InputError as e:
        print(f"prepare_fashion_mnist: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"prepare_fashion_mnist: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
