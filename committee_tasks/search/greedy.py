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
                   combine: str = "mean") -> Cascade | None:
    """``combine``: a stage's prediction is the mean of the members so far ("mean"), or its own
    member's ("last"), as the cascade it returns combines them. Every group of samples, those each
    stage lets exit and those left for the last stage, stays within ``alpha`` of the reference's
    metric on them, on these predictions. None where no member lets any sample exit so (the
    reference alone is then the best the construction finds)."""
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
    exits: list[np.ndarray] = []  # the rows each chosen stage lets exit
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
        exits.append(exiting)
        remaining[exiting] = False

    def last_stage_within_alpha() -> bool:
        """With ``combine="mean"`` the samples left predict with the mean of every chosen member
        and the reference, not the reference alone: held to alpha too (the cascade built for
        resnet32 scored 92.53 against its 92.67 at alpha 0)."""
        if combine != "mean" or not chosen or not remaining.any():
            return True
        rows = np.flatnonzero(remaining)
        stats = preds.stage([*chosen, reference], task, rows).statistics
        return task.metric(stats.sum(axis=0)) >= task.metric(ref_stats[rows].sum(axis=0)) - alpha

    while not last_stage_within_alpha():  # the latest stage's samples go on to the last stage again
        chosen.pop()
        thresholds.pop()
        remaining[exits.pop()] = True
    if not chosen:
        return None
    return Cascade([*chosen, reference], thresholds, confidence=confidence, combine=combine)
