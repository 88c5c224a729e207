"""Committee search from cached outputs: every ensemble and every cascade of up to 4 members,
each cascade over a grid of per-stage thresholds, scored in one vectorised pass.

How it stays fast (the paper reports CPU hours for the brute force):

1. `subset_table`: per-sample confidence and additive statistics of every member subset's
   combined output, each subset's probability sum made from its parent's with one add
   (depth-first, in cache-sized chunks of samples; `OutputPredictions.subset_columns`).
2. `cascade_grid`: a sample's exit stage depends only on which grid interval its confidence
   falls in at each stage, so per cascade one histogram of the statistics over those intervals
   (``np.bincount``), then cumulative sums give the summed statistics of *every* threshold
   combination at once: (G+1)^(k-1) settings of a k-member cascade cost O(N + (G+1)^(k-1)).

Thresholds: stage s has G levels, the quantiles of its confidence on the data searched; setting
j < G means "exit when confidence >= level j", j = G "never exit here".
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from committee_tasks.committees.predictions import PoolPredictions
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.task import Task


@dataclass
class SubsetTable:
    """Per-sample confidence and statistics of each subset (a sorted tuple of member indices)."""

    members: list[str]
    confidence: dict[tuple[int, ...], np.ndarray]
    statistics: dict[tuple[int, ...], np.ndarray]
    macs: np.ndarray  # (members, N) per-sample MACs

    @property
    def n(self) -> int:
        return self.macs.shape[1]


def subset_table(preds: PoolPredictions, members: Sequence[str], task: Task, confidence="max_prob",
                 max_size: int = 4, chunk: int = 1024) -> SubsetTable:
    """Confidence and statistics of the mean output of every subset of up to ``max_size`` members
    (`PoolPredictions.subset_columns`: from cached outputs, equal to the cache-based committees'
    figures, or read from the loop's cached subset statistics)."""
    preds.check_members(members)
    macs = np.stack([np.asarray(preds.macs[m], dtype=np.float64) for m in members])
    conf, stats = preds.subset_columns(members, confidence, task, max_size, chunk)
    return SubsetTable(list(members), conf, stats, macs)


def threshold_levels(confidence: np.ndarray, levels: int) -> np.ndarray:
    """``levels`` thresholds at evenly spaced quantiles of a stage's confidence (distinct values)."""
    return np.unique(np.quantile(confidence, np.linspace(0.0, 1.0, levels)).astype(np.float32))


@dataclass
class CascadeGrid:
    """Summed statistics of a cascade at every combination of per-stage threshold indices."""

    order: tuple[int, ...]  # member indices, in run order
    levels: list[np.ndarray]  # per thresholded stage
    totals: np.ndarray  # (L0+1, ..., L_{k-2}+1, K) summed statistics
    macs_sum: np.ndarray  # (L0+1, ..., L_{k-2}+1) summed MACs
    exits: np.ndarray  # (k, L0+1, ...) samples exiting at each stage
    macs_worst: float

    def thresholds(self, index: Sequence[int]) -> list[float]:
        return [float(lv[j]) if j < len(lv) else float("inf") for lv, j in zip(self.levels, index)]


def _stage_subset(order: tuple[int, ...], stage: int, combine: str) -> tuple[int, ...]:
    return tuple(sorted(order[: stage + 1])) if combine == "mean" else (order[stage],)


def cascade_grid(table: SubsetTable, order: tuple[int, ...], levels: int = 20, combine: str = "mean",
                 fixed_levels: list[np.ndarray] | None = None) -> CascadeGrid:
    k = len(order)
    stage_subsets = [_stage_subset(order, s, combine) for s in range(k)]
    lv = fixed_levels or [threshold_levels(table.confidence[stage_subsets[s]], levels) for s in range(k - 1)]
    shape = tuple(len(x) + 1 for x in lv)
    # bins[s] = how many levels are <= confidence: exit at setting j  <=>  bins > j
    bins = [np.searchsorted(lv[s], table.confidence[stage_subsets[s]], side="right") for s in range(k - 1)]
    cell = np.ravel_multi_index(bins, shape) if bins else np.zeros(table.n, np.int64)
    cells = int(np.prod(shape))
    cost = np.cumsum(table.macs[list(order)], axis=0)  # (k, N): MACs if the sample exits at stage s
    n_stats = table.statistics[stage_subsets[0]].shape[1]
    totals = np.zeros(shape + (n_stats,))
    macs_sum = np.zeros(shape)
    exits = np.zeros((k,) + shape)
    for s in range(k):
        stats = table.statistics[stage_subsets[s]]
        columns = [stats[:, c] for c in range(n_stats)] + [cost[s], None]
        hist = np.stack([np.bincount(cell, weights=w, minlength=cells) for w in columns], -1).reshape(shape + (-1,))
        region = _exit_region_sums(hist, s, k)
        totals += region[..., :n_stats]
        macs_sum += region[..., n_stats]
        exits[s] = region[..., n_stats + 1]
    worst = float(cost[-1].max())
    return CascadeGrid(order, lv, totals, macs_sum, exits, worst)


def _exit_region_sums(hist: np.ndarray, stage: int, k: int) -> np.ndarray:
    """Sums of ``hist`` over the cells whose samples exit at ``stage``, for every threshold setting.

    Exit at stage s under settings (j_0..j_{k-2}): bins_t <= j_t for t < s (not confident
    before), bins_s > j_s (confident now; the last stage takes all that remain)."""
    out = hist
    for t in range(k - 1):
        if t < stage:
            out = np.cumsum(out, axis=t)  # bins_t <= j_t
        elif t == stage:
            total = out.sum(axis=t, keepdims=True)
            out = total - np.cumsum(out, axis=t)  # bins_t > j_t
        else:
            out = np.broadcast_to(out.sum(axis=t, keepdims=True), out.shape)  # any bins_t
    return out


@dataclass
class Candidate:
    """One committee setting found by the search (figures on the searched data)."""

    kind: str
    members: list[str]
    thresholds: list[float] | None
    metric: float
    macs_mean: float
    macs_worst: float


@dataclass
class SearchResult:
    """Every scored setting, flat: singles, ensembles, then each cascade's threshold grid."""

    metric: np.ndarray
    macs_mean: np.ndarray
    macs_worst: np.ndarray
    decode: Callable[[int], Candidate] = field(repr=False)
    configurations: int = 0

    def candidate(self, i: int) -> Candidate:
        return self.decode(int(i))

    def pareto(self) -> np.ndarray:
        """Indices of the settings no other beats on both metric and mean MACs, by rising MACs."""
        order = np.lexsort((-self.metric, self.macs_mean))
        best = np.maximum.accumulate(self.metric[order])
        keep = np.concatenate([[True], best[1:] > best[:-1]])
        return order[keep]

    def cheapest_matching(self, metric: float, macs_worst: float | None = None) -> int | None:
        """The lowest-mean-MACs setting whose metric is at least ``metric``."""
        ok = self.metric >= metric - 1e-9
        if macs_worst is not None:
            ok &= self.macs_worst <= macs_worst * (1 + 1e-9)
        return argbest(np.where(ok, -self.macs_mean, -np.inf), self.metric)

    def best_within(self, macs: float, macs_worst: float | None = None) -> int | None:
        """The most accurate setting whose mean MACs are at most ``macs``."""
        ok = self.macs_mean <= macs * (1 + 1e-9)
        if macs_worst is not None:
            ok &= self.macs_worst <= macs_worst * (1 + 1e-9)
        return argbest(np.where(ok, self.metric, -np.inf), -self.macs_mean)


def argbest(score: np.ndarray, tie_break: np.ndarray) -> int | None:
    """Index of the highest finite score (ties: the highest tie_break); None if none is finite."""
    if not np.isfinite(score).any():
        return None
    best = score.max()
    ties = np.flatnonzero(score >= best - 1e-12)
    return int(ties[np.argmax(tie_break[ties])])


def search(table: SubsetTable, task: Task, max_size: int = 4, levels: int = 20, any_order: bool = False,
           combine: str = "mean") -> SearchResult:
    """Score every single member, ensemble and cascade (cheapest member first unless
    ``any_order``) of up to ``max_size`` members on the table's samples."""
    if levels < 2:
        raise CommitteeError(f"the threshold grid needs at least 2 levels, got {levels}")
    n = table.n
    mean_macs = table.macs.mean(axis=1)
    by_cost = sorted(range(len(table.members)), key=lambda m: (mean_macs[m], m))
    blocks: list[tuple[str, object, np.ndarray, np.ndarray, np.ndarray]] = []

    for subset in (s for s in table.statistics if len(s) <= max_size):  # singles and ensembles
        kind = "member" if len(subset) == 1 else "ensemble"
        summed = table.statistics[subset].sum(axis=0)
        total_macs = table.macs[list(subset)].sum(axis=0)
        blocks.append((kind, subset, np.atleast_1d(task.metric(summed)), np.array([total_macs.mean()]),
                       np.array([total_macs.max()])))
    for size in range(2, min(max_size, len(table.members)) + 1):
        for subset in itertools.combinations(by_cost, size):
            orders = itertools.permutations(subset) if any_order else [tuple(subset)]
            for order in orders:
                grid = cascade_grid(table, tuple(order), levels, combine)
                metric = np.asarray(task.metric(grid.totals), dtype=np.float64).ravel()
                blocks.append(("cascade", grid, metric, grid.macs_sum.ravel() / n,
                               np.full(metric.size, grid.macs_worst)))

    offsets = np.cumsum([0] + [len(b[2]) for b in blocks])

    def decode(i: int) -> Candidate:
        b = int(np.searchsorted(offsets, i, side="right") - 1)
        kind, what, metric, macs, worst = blocks[b]
        local = i - offsets[b]
        if kind == "cascade":
            index = np.unravel_index(local, what.macs_sum.shape)
            names = [table.members[m] for m in what.order]
            return Candidate(kind, names, what.thresholds(index), float(metric[local]), float(macs[local]),
                             float(worst[local]))
        return Candidate(kind, [table.members[m] for m in what], None, float(metric[0]), float(macs[0]),
                         float(worst[0]))

    return SearchResult(np.concatenate([b[2] for b in blocks]), np.concatenate([b[3] for b in blocks]),
                        np.concatenate([b[4] for b in blocks]), decode, int(offsets[-1]))
