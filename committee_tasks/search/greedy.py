"""Greedy cascade construction for large pools (after Streeter, "Approximation Algorithms for
Cascading Prediction Models", ICML 2018).

Exhaustive search grows as the pool's subsets; greedily, a cascade is built one stage at a time:
among every unused member and threshold level, add the one that lets the most still-unclassified
samples exit per MAC spent on them, provided the samples it lets exit are classified at most
``alpha`` (metric units) worse than the reference classifies those same samples. Stops when no
addition classifies anything; the reference then closes the cascade (and takes every sample left).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from committee_tasks.committees.predictions import PoolPredictions
from committee_tasks.committees.scoring import Cascade
from committee_tasks.core.errors import CommitteeError
from committee_tasks.search.exhaustive import threshold_levels
from committee_tasks.core.task import Task


def greedy_cascade(preds: PoolPredictions, task: Task, pool: Sequence[str], reference: str, alpha: float = 0.0,
                   confidence: str = "max_prob", levels: int = 20, max_stages: int = 6,
                   combine: str = "mean") -> Cascade:
    """``combine``: a stage's prediction is the mean of the members so far ("mean"), or its own
    member's ("last"), as the cascade it returns combines them."""
    if reference not in pool:
        raise CommitteeError(f"reference {reference!r} is not in the pool {list(pool)}")

    def stage(members: Sequence[str], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Confidence and statistics of the prediction of a stage after ``members`` on ``rows``."""
        combined = preds.stage(members if combine == "mean" else members[-1:], task, rows)
        return combined.confidence(confidence), combined.statistics

    ref_stats = preds.stage_statistics([reference], task)
    remaining = np.ones(len(preds.ids), dtype=bool)
    chosen: list[str] = []
    thresholds: list[float] = []
    while remaining.any() and len(chosen) < max_stages - 1:
        best = None  # (samples per MAC, member, threshold, exiting mask)
        rows = np.flatnonzero(remaining)
        for member in pool:
            if member in chosen or member == reference:
                continue
            conf, stats = stage([*chosen, member], rows)
            cost = float(preds.macs[member][rows].sum())
            for t in threshold_levels(conf, levels):
                exit_ = conf >= t
                if not exit_.any():
                    continue
                metric = task.metric(stats[exit_].sum(axis=0))
                ref_metric = task.metric(ref_stats[rows][exit_].sum(axis=0))
                if metric < ref_metric - alpha:
                    continue
                value = exit_.sum() / cost
                if best is None or value > best[0]:
                    best = (value, member, float(t), rows[exit_])
        if best is None:
            break
        _, member, t, exiting = best
        chosen.append(member)
        thresholds.append(t)
        remaining[exiting] = False
    if not chosen:
        raise CommitteeError(f"no member of the pool lets any sample exit within {alpha} of {reference}")
    return Cascade([*chosen, reference], thresholds, confidence=confidence, combine=combine)
