#!/usr/bin/env python3
"""Time the full committee search on a synthetic pool shaped like the paper's EfficientNet B0-B7.

8 members, 50,000 samples, 1,000 classes; members of rising accuracy (and cost) whose errors are
correlated through a shared per-sample difficulty. Searches every ensemble and every cascade of up
to 4 members with per-stage thresholds on a grid, then the matches for every reference. Prints the
time per phase, settings evaluated per second and peak memory (resident set).

    .venv/bin/python benchmarks/search_speed.py [--samples 50000] [--levels 20]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from committee_tasks import PoolPredictions, get_task
from committee_tasks.search.exhaustive import search, subset_table

# EfficientNet B0..B7 GMACs at their native resolutions (torchvision meta), used as member costs.
EFFICIENTNET_GMACS = [0.386, 0.687, 1.088, 1.827, 4.394, 10.266, 19.068, 37.746]
# Tuned so the members' top-1 spans roughly EfficientNet B0..B7's 77-84%.
STRENGTH_B0, STRENGTH_STEP, NOISE = 5.5, 0.11, 1.2


def synthetic_pool(samples: int, classes: int, members: int, seed: int = 0, chunk: int = 5000,
                   shared: float = 0.8) -> PoolPredictions:
    """Logits = signal on the target (rising with the member, falling with the sample's shared
    difficulty) + noise, a fraction ``shared`` of whose variance is common to all members (they
    confuse the same classes), as real models of one family do."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, classes, samples)
    difficulty = rng.normal(size=samples).astype(np.float32)
    outputs = {}
    for m in range(members):
        strength = STRENGTH_B0 + STRENGTH_STEP * m  # later members are more accurate
        own = np.random.default_rng([seed, 1000 + m])
        probs = np.empty((samples, classes), np.float16)
        for c, start in enumerate(range(0, samples, chunk)):
            rows = slice(start, min(start + chunk, samples))
            n = rows.stop - rows.start
            common = np.random.default_rng([seed, c]).standard_normal((n, classes), dtype=np.float32)
            logits = NOISE * (np.sqrt(shared) * common
                              + np.sqrt(1 - shared) * own.standard_normal((n, classes), dtype=np.float32))
            logits[np.arange(n), targets[rows]] += strength - 1.5 * difficulty[rows]
            logits -= logits.max(axis=1, keepdims=True)
            np.exp(logits, out=logits)
            logits /= logits.sum(axis=1, keepdims=True)
            probs[rows] = logits
        outputs[f"effnet_b{m}"] = probs
    macs = {f"effnet_b{m}": np.full(samples, EFFICIENTNET_GMACS[m] * 1e9) for m in range(members)}
    return PoolPredictions(np.array([str(i) for i in range(samples)]), targets, outputs, macs)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=50_000)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--levels", type=int, default=20)
    p.add_argument("--max-size", type=int, default=4)
    args = p.parse_args(argv)
    task = get_task("classification")

    t0 = time.perf_counter()
    pool = synthetic_pool(args.samples, args.classes, args.members)
    t_data = time.perf_counter() - t0
    rss_data = peak_rss_gb()
    names = list(pool.outputs)

    t0 = time.perf_counter()
    table = subset_table(pool, names, task, "max_prob", max_size=args.max_size)
    t_table = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = search(table, task, max_size=args.max_size, levels=args.levels)
    t_grid = time.perf_counter() - t0
    t0 = time.perf_counter()
    picks = []
    for m, name in enumerate(names):
        metric = float(task.metric(table.statistics[(m,)].sum(0)))
        macs = float(table.macs[m].mean())
        picks.append((name, metric, macs, result.cheapest_matching(metric), result.best_within(macs)))
    front = result.pareto()
    t_select = time.perf_counter() - t0
    total = t_table + t_grid + t_select

    print(f"pool: {args.members} members x {args.samples} samples x {args.classes} classes "
          f"(float16 probabilities, {sum(o.nbytes for o in pool.outputs.values()) / 1e9:.2f} GB; made in {t_data:.1f} s)")
    print(f"subsets of <= {args.max_size} members: {len(table.statistics)}; threshold grid: {args.levels} levels per stage")
    print(f"phase 1  subset confidences/statistics  {t_table:7.2f} s")
    print(f"phase 2  score every setting            {t_grid:7.2f} s   ({result.configurations:,} settings, "
          f"{result.configurations / t_grid:,.0f} per second)")
    print(f"phase 3  matches + Pareto front         {t_select:7.2f} s   ({len(front)} front points)")
    print(f"total search                            {total:7.2f} s   (goal < 10 s on 2 cores)")
    print(f"peak memory (RSS) {peak_rss_gb():.2f} GB, of which the pool itself {rss_data:.2f} GB (goal < 2 GB)")
    print("\nreference      top-1   GMACs | cheapest matching committee               top-1  GMACs speedup")
    for name, metric, macs, match, _ in picks:
        if match is None:
            continue
        c = result.candidate(match)
        label = c.kind[:3] + "(" + ">".join(x.removeprefix("effnet_") for x in c.members) + ")"
        print(f"{name:12s} {metric:7.2f} {macs / 1e9:7.2f} | {label:40s} {c.metric:6.2f} {c.macs_mean / 1e9:6.2f} "
              f"{macs / c.macs_mean:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
