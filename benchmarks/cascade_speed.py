#!/usr/bin/env python3
"""Realized vs MACs-predicted speedup of a cascade against its reference member, in one run.

Default: ResNet20 -> ResNet56 on the real CIFAR-10 test set (../shared/data). Both are timed on
the same preprocessed batches, alternating reference and cascade runs so machine noise hits both;
the median throughput of the repeats is reported. The MACs-predicted speedup is computed from the
prediction cache on the same samples with the same threshold.

    .venv/bin/python benchmarks/cascade_speed.py [--samples 4096] [--threshold 0.9] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from committee_tasks import Cascade, CommitteeExecutor, LoopOptions, PredictionCache, Single, evaluate_pool, get_task
from committee_tasks.inputs import preprocessed_batches

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--weights-dir", type=Path, default=None, help="default: <data-root>/cifar10-resnets")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--cascade", default="resnet20,resnet56")
    p.add_argument("--threshold", type=float, default=0.9)
    p.add_argument("--samples", type=int, default=4096)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--cache-dir", type=Path, default=None)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    task = get_task("classification")
    names = args.cascade.split(",")
    dataset = task.build_dataset(args.dataset, args.data_root)
    members = {n: task.build_member(n, args.weights_dir or args.data_root / "cifar10-resnets") for n in names}
    preds, _ = evaluate_pool(task, list(members.values()), dataset, PredictionCache(args.cache_dir),
                             limit=args.samples, options=LoopOptions(progress=False, device=args.device))
    cascade = Cascade(names, args.threshold)
    reference = Single(names[-1])
    predicted = cascade.evaluate(preds, task)
    ref_result = reference.evaluate(preds, task)

    batches = preprocessed_batches(dataset, list(members.values()), preds.ids, len(preds.ids), args.batch_size)
    executors = {c.name: CommitteeExecutor(c, members, task, device=args.device) for c in (reference, cascade)}
    for ex in executors.values():  # warm-up: allocator, kernels, MACs counting per input shape
        ex.run(batches[:2], warmup=1)
    times: dict[str, list[float]] = {name: [] for name in executors}
    for _ in range(args.repeats):
        for name, ex in executors.items():
            times[name].append(ex.run(batches, warmup=0).throughput)
    ref_tp = statistics.median(times[reference.name])
    cas_tp = statistics.median(times[cascade.name])
    realized = cas_tp / ref_tp
    macs_speedup = ref_result.macs_mean / predicted.macs_mean

    device = executors[reference.name].device
    print(f"device {device}, torch threads {torch.get_num_threads()}, {len(preds.ids)} samples of {dataset.name}, "
          f"batch {args.batch_size}, median of {args.repeats} alternating repeats")
    print(f"{'':38s} {'top-1':>7s} {'MACs/sample':>12s} {'samples/s':>10s}")
    print(f"{reference.name:38s} {ref_result.metric:7.2f} {ref_result.macs_mean / 1e6:11.1f}M {ref_tp:10.0f}")
    print(f"{cascade.name:38s} {predicted.metric:7.2f} {predicted.macs_mean / 1e6:11.1f}M {cas_tp:10.0f}"
          f"   exits {' / '.join(f'{100 * f:.1f}%' for f in predicted.exit_fractions)}")
    print(f"realized speedup       {realized:.2f}x   (throughput ratio, runs: "
          f"{', '.join(f'{c / r:.2f}' for c, r in zip(times[cascade.name], times[reference.name]))})")
    print(f"MACs-predicted speedup {macs_speedup:.2f}x")
    print(f"realized / predicted   {realized / macs_speedup:.2f}   (goal on CPU: >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
