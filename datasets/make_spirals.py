#!/usr/bin/env python3
"""Writes the two-spirals classification set (Lang & Witbrock's benchmark) as CSV.

Two interleaved spirals in the plane, class 0 and class 1, with a little Gaussian noise.
Not linearly separable and not solvable by one hidden unit layer of a few units: a small
but honest test that a multilayer network learns. Deterministic for a given --seed.

    python3 datasets/make_spirals.py --rows 2000 --seed 7 > datasets/two-spirals.csv
"""
import argparse
import math
import random


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="total rows (even)")
    parser.add_argument("--turns", type=float, default=1.75, help="turns of each spiral")
    parser.add_argument("--noise", type=float, default=0.02, help="std. dev. of the noise")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    half = args.rows // 2
    print("x,y,label")
    for i in range(half):
        t = (i + 0.5) / half  # 0..1 along the spiral
        radius = 0.05 + 0.95 * t
        angle = 2.0 * math.pi * args.turns * t
        for label in (0, 1):
            phase = math.pi * label
            x = radius * math.cos(angle + phase) + rng.gauss(0.0, args.noise)
            y = radius * math.sin(angle + phase) + rng.gauss(0.0, args.noise)
            print(f"{x:.6f},{y:.6f},{label}")


if __name__ == "__main__":
    main()
