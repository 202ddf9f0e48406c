#!/usr/bin/python3
"""Checks `shardprop train` against PyTorch on the same model, data and settings.

Trains with the shardprop executable from its own initial weights (--epochs 0 writes them),
replays the same minibatches in PyTorch (torch.optim.SGD / Adam, nn.Sequential built from the
file's tensor names) and compares every final tensor. A check to run by hand: PyTorch is never a
build or test dependency. Usage:
  /usr/bin/python3 benchmarks/torch_parity.py build/release/apps/shardprop [--optimizer adam]
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = data[8 + n:]
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = {"F32": torch.float32, "I64": torch.int64}[entry["dtype"]]
        t = torch.frombuffer(bytearray(body[begin:end]), dtype=dtype)
        tensors[name] = t.reshape(entry["shape"]).clone()
    return tensors, meta


def main():
    p = argparse.ArgumentParser()
    p.add_argument("shardprop")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--nesterov", action="store_true")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--weight-decay", type=float, default=0.001)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--clip-grad-norm", type=float, default=0.0)
    args = p.parse_args()

    torch.manual_seed(0)
    rows, features, classes = 200, 5, 3
    x = torch.randn(rows, features)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    work = tempfile.mkdtemp()
    csv = os.path.join(work, "data.csv")
    with open(csv, "w") as f:
        f.write(",".join(f"f{i}" for i in range(features)) + ",label\n")
        for r in range(rows):
            f.write(",".join(repr(float(v)) for v in x[r]) + f",{int(y[r])}\n")
    common = ["train", "--data", csv, "--layers", "16,8", "--activation", "tanh", "--loss", "xent",
              "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--weight-decay",
              str(args.weight_decay), "--no-shuffle", "--no-standardize", "--optimizer",
              args.optimizer, "--quiet", "--threads", "1"]
    if args.momentum > 0:
        common += ["--momentum", str(args.momentum)]
    if args.nesterov:
        common += ["--nesterov"]
    if args.clip_grad_norm > 0:
        common += ["--clip-grad-norm", str(args.clip_grad_norm)]
    init, final = os.path.join(work, "init.st"), os.path.join(work, "final.st")
    subprocess.run([args.shardprop] + common + ["--epochs", "0", "--out", init], check=True)
    subprocess.run([args.shardprop] + common + ["--epochs", str(args.epochs), "--out", final],
                   check=True)

    start, _ = read_safetensors(init)
    net = torch.nn.Sequential(torch.nn.Linear(features, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8),
                              torch.nn.Tanh(), torch.nn.Linear(8, classes))
    net.load_state_dict({k: v for k, v in start.items() if not k.startswith("optimizer.")})
    decayed = [p for n, p in net.named_parameters() if n.endswith("weight")]
    others = [p for n, p in net.named_parameters() if not n.endswith("weight")]
    groups = [{"params": decayed, "weight_decay": args.weight_decay},
              {"params": others, "weight_decay": 0.0}]
    if args.optimizer == "adam":
        opt = torch.optim.Adam(groups, lr=args.lr)
    else:
        opt = torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, nesterov=args.nesterov)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(args.epochs):
        for begin in range(0, rows, args.batch_size):
            opt.zero_grad()
            loss = loss_fn(net(x[begin:begin + args.batch_size]), y[begin:begin + args.batch_size])
            loss.backward()
            if args.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), args.clip_grad_norm)
            opt.step()

    ours, meta = read_safetensors(final)
    worst = 0.0
    for name, theirs in net.state_dict().items():
        diff = (ours[name] - theirs).abs().max().item()
        scale = theirs.abs().max().item()
        worst = max(worst, diff / max(scale, 1e-12))
        print(f"{name:10s} max |ours - torch| = {diff:.3e}  (max |torch| = {scale:.3f})")
    slots = sorted({k.rsplit(".", 1)[1] for k in ours if k.startswith("optimizer.")})
    print(f"optimizer state tensors in the file: {slots or 'none'}; state {meta.get('shardprop.state')}")
    print(f"worst relative difference: {worst:.2e}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
