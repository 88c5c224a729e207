#!/usr/bin/env python3
"""Train the embedded default's three digits CNNs and write them, with the record the zoo reads
(file, sha256, test top-1, training settings), into tasks/classification/weights (or --out).

This is how the shipped checkpoints were made. Training differs across CPUs and thread counts, so
the repository ships the weights instead of training them on each machine; the test suite checks
that this script still trains models of the recorded accuracy.

    .venv/bin/python tools/train_digits.py [--out DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _common import REPO, run_script


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "tasks" / "classification" / "weights")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: reproducible on one machine; the shipped weights used 1)")
    args = p.parse_args(argv)
    from committee_tasks_builtin.classification.digits import train_all

    record = train_all(args.out, threads=args.threads)
    for name, r in record.items():
        print(f"{name:14s} top-1 {r['top-1']:6.2f}  {r['params']:7,d} params  {args.out / r['file']}")
    return 0


run_script(main, __name__)
