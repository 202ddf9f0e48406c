#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/: small valid and tricky inputs for each target.

    tests/fuzz/make_seeds.py SHARDPROP_EXECUTABLE

The CSV, layer-spec and config seeds are written from the tables below; the checkpoint seeds are
real checkpoints that the executable trains on a few rows. Inputs that fuzzing found are kept
beside them (named after what they found) and are left alone.
"""
import pathlib
import subprocess
import sys
import tempfile

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"

# Option bytes as csv_options_bytes.hpp reads them.
NO_HEADER, NUMERIC, CLASSES, NON_FINITE, NO_TARGET, IGNORE_1, TARGET_0 = 1, 2, 4, 8, 16, 32, 64
COMMA, SEMICOLON, TAB, BAR, SPACE = 0, 1, 2, 3, 4
CHUNK_1, CHUNK_3, CHUNK_16, CHUNK_4096 = 0, 2, 5, 7
BLOCK_1, BLOCK_7 = 0, 4

CSV_SEEDS = {
    "numbers": (0, COMMA, CHUNK_16, b"x,y,t\n1,2,3\n-4.5,6e-3,7\n8,9,10\n"),
    "labels": (CLASSES, COMMA, CHUNK_3, b"a,b,label\n1,2,cat\n3,4,dog\n5,6,cat\n"),
    "automatic_labels": (0, COMMA, CHUNK_1, b"a,label\n1,yes\n2,no\n3,yes\n"),
    "numeric_labels": (CLASSES, COMMA, CHUNK_16, b"x,c\n1,10\n2,9\n3,10\n4,-1.5\n"),
    "quoted": (0, COMMA, CHUNK_3,
               b'"x","y, z",t\n"1"," 2 ",3\n4,"5",6\n'),
    "quoted_label": (CLASSES, COMMA, CHUNK_1,
                     b'x,label\n1,"a ""b"""\n2,"c,\nd"\n3,"a ""b"""\n'),
    "crlf_bom": (0, COMMA, CHUNK_4096, b"\xef\xbb\xbfx,y\r\n1,2\r\n3,4\r\n\r\n"),
    "tab_no_header": (NO_HEADER, TAB, CHUNK_16, b"1\t2\t3\n4\t5\t6\n"),
    "semicolon_target_0": (TARGET_0, SEMICOLON, CHUNK_3, b"t;x;y\n1;2;3\n4;5;6\n"),
    "ignored_column": (IGNORE_1, BAR, CHUNK_16, b'x|note|y\n1|"a|b\nc"|2\n3||4\n'),
    "non_finite": (NON_FINITE, COMMA, CHUNK_1, b"x,y\nnan,1\ninf,2\n-inf,3\n"),
    "no_target": (NO_TARGET, COMMA, CHUNK_16, b"x\n1\n2\n3\n"),
    "spaces": (0, SPACE, CHUNK_3, b"x y\n1 2\n3  4\n"),
    "extremes": (0, COMMA, CHUNK_16,
                 b"a,b\n3.4e38,1\n-0,2\n1e-46,3\n0x10,4\n+5,6\n.5,7\n"),
    "blank_lines": (0, COMMA, CHUNK_3, b"x,y\n1,2\n\n3,4\n\n\n"),
    "trailing_blanks": (0, COMMA, CHUNK_3, b"x , y\n 1 , 2 \n \t\n\n"),
    "field_count": (0, COMMA, CHUNK_1, b"x,y\n1\n2,3,4\n"),
    "unterminated": (0, COMMA, CHUNK_16, b'x,y\n1,"2\n3,4\n'),
    "text_after_quote": (0, COMMA, CHUNK_16, b'x,y\n"1"2,3\n'),
    "header_only": (CLASSES, COMMA, CHUNK_16, b"x,label\n"),
}

LAYER_SEEDS = {
    "mlp": b"dense(256) bn relu dropout(0.2) dense(10)",
    "commas": b"dense(8),tanh, dense(1)",
    "leaky": b"dense(4) leaky_relu(0.1) dense(2) leaky_relu",
    "batch_norm_arguments": b"dense(3) bn(eps=1e-3, momentum=0.2) batchnorm(momentum=1) sigmoid",
    "identity": b"identity dense(1) identity",
    "spaces": b"  dense( 4 )\t,\nrelu  dense (2) ",
    "largest_width": b"dense(2147483647)",
    "too_wide": b"dense(2147483648)",
    "tiny_rate": b"dropout(1e-45) dense(2)",
    "unbalanced": b"dense(4 relu",
    "upper_case": b"Dense(3) RELU",
}

CONFIG_SEEDS = {
    "toml": b"lr = 0.05\nepochs = 3\nbatch-size = 8\n",
    "train_section": b'[train]\nlayers = [16, 8]\nactivation = "tanh"\nbatch-norm = true\n'
                     b"no-shuffle = false\n",
    "spec": b'spec = "dense(4) relu dense(2)"\ntarget = ["a", "b"]\ndelimiter = "tab"\n',
    "ini": b"; comment\n[train]\nseed: 7\noptimizer=adam\nmomentum = 0.5\nquiet = on\n",
    "strings": b"out = 'model.safetensors'\nmetrics = \"m.jsonl\"\nlr-schedule = \"cosine\"\n",
    "unknown_key": b"learning-rate = 0.1\n",
    "other_section": b"[evaluate]\nmodel = x\n",
    "bad_flag": b"nesterov = maybe\n",
    "missing_file": b"data = /nonexistent/train.csv\n",
}


def write(target, name, content):
    directory = CORPUS / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(content)


def checkpoint_seeds(shardprop):
    """Tiny training runs: each writes a checkpoint of a few KB."""
    runs = {
        # name: (option byte for checkpoint_fuzz, data, train options)
        "sgd_mse": (0b001, "x,y,t\n0,1,2\n1,0,3\n2,2,1\n3,1,0\n",
                    ["--layers", "3", "--loss", "mse", "--no-standardize"]),
        "momentum_xent": (0b011, "x,y,label\n0,1,a\n1,0,b\n2,2,a\n3,1,c\n",
                          ["--spec", "dense(3) tanh dense(3)", "--momentum", "0.9"]),
        "adam_batch_norm": (0b101, "x,y,t\n0,1,0\n1,0,1\n2,2,1\n3,1,0\n",
                            ["--spec", "dense(2) bn leaky_relu(0.2) dropout(0.1) dense(1)",
                             "--optimizer", "adam", "--loss", "bce"]),
        "multi_target": (0b001, "x,a,b\n0,1,2\n1,0,3\n2,2,1\n3,1,0\n",
                         ["--target", "a,b", "--spec", "dense(2)", "--val-split", "0.5"]),
    }
    with tempfile.TemporaryDirectory() as work:
        for name, (flags, data, options) in runs.items():
            csv = pathlib.Path(work) / f"{name}.csv"
            csv.write_text(data)
            out = pathlib.Path(work) / f"{name}.safetensors"
            subprocess.run([shardprop, "train", "--data", str(csv), "--out", str(out),
                            "--epochs", "2", "--batch-size", "2", "--quiet", *options],
                           check=True)
            write("checkpoint", name, bytes([flags]) + out.read_bytes())


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for name, (flags, delimiter, chunk, content) in CSV_SEEDS.items():
        write("csv_memory", name, bytes([flags, delimiter, chunk]) + content)
        # Blocks of 1 byte cut everything; of 7, records and fields at odd places.
        write("csv_stream", f"{name}_block1", bytes([flags, delimiter, chunk, BLOCK_1]) + content)
        write("csv_stream", f"{name}_block7", bytes([flags, delimiter, chunk, BLOCK_7]) + content)
    for name, content in LAYER_SEEDS.items():
        write("layer_spec", name, content)
    for name, content in CONFIG_SEEDS.items():
        write("train_config", name, content)
    checkpoint_seeds(sys.argv[1])


if __name__ == "__main__":
    main()
