"""Committee search from cached outputs: every ensemble and every cascade of up to 4 members,
each cascade over per-stage thresholds (a grid at its earlier stages, every useful cut at its
last decision stage), scored in one vectorised pass per cascade.

How it stays fast (the paper reports CPU hours for the brute force):

1. `subset_table`: per-sample confidence and additive statistics of every member subset's
   combined output (`PoolPredictions.subset_columns`: means formed on candidate classes where
   that is exact, in worker threads).
2. `cascade_grid`: a sample's exit stage depends only on which interval between thresholds its
   confidence falls in at each stage, so per cascade one histogram of the statistics over those
   intervals (``np.bincount``), then cumulative sums give the summed statistics of *every*
   threshold combination at once: a k-member cascade with L_s thresholds at stage s costs
   O(N + prod(L_s + 1)).

Thresholds: an earlier stage has G levels, the quantiles of its confidence on the data searched.
The last decision stage is swept exactly (`exact_levels`): its thresholds are the distinct values
of its confidence, less those that cannot be optimal when the metric is a mean of per-sample
scores (a cut just above samples none of which loses by exiting is beaten by the cut below
them: no less accurate, and cheaper). So in each row of the earlier stages' grid every cut of the samples
that reach the last decision stage is scored, "sort the remaining samples, cumulative sums give
every cut", at the grid's cost. Setting j < L means "exit when confidence >= level j", j = L
"never exit here"; of a cascade's settings the search keeps those no cheaper one of it matches
(the rest can never be chosen).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from committee_tasks.committees.predictions import PoolPredictions
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.task import Task
from committee_tasks.core.threads import map_in_threads


@dataclass
class SubsetTable:
    """Per-sample confidence and statistics of each subset (a sorted tuple of member indices)."""

    members: list[str]
    confidence: dict[tuple[int, ...], np.ndarray]
    statistics: dict[tuple[int, ...], np.ndarray]
    macs: np.ndarray  # (members, N) per-sample MACs
    _memo: dict = field(default_factory=dict, repr=False, compare=False)  # per subset, shared by cascades

    @property
    def n(self) -> int:
        return self.macs.shape[1]

    def grid_bins(self, subset: tuple[int, ...], levels: int) -> tuple[np.ndarray, np.ndarray]:
        """A stage's ``levels`` quantile thresholds and, per sample, how many are <= its
        confidence; computed once per subset (every cascade through it shares them)."""
        key = ("grid", subset, levels)
        if key not in self._memo:  # a race between worker threads only computes it twice
            lv = threshold_levels(self.confidence[subset], levels)
            self._memo[key] = lv, np.searchsorted(lv, self.confidence[subset], side="right").astype(np.int32)
        return self._memo[key]

    def distinct(self, subset: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """A subset's distinct confidence values (rising) and each sample's index among them."""
        key = ("distinct", subset)
        if key not in self._memo:
            values, inverse = np.unique(self.confidence[subset], return_inverse=True)
            self._memo[key] = values, inverse.astype(np.int32)
        return self._memo[key]


def subset_table(preds: PoolPredictions, members: Sequence[str], task: Task, confidence="max_prob",
                 max_size: int = 4, chunk: int | None = None) -> SubsetTable:
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


def exact_levels(confidence: np.ndarray, exit_gain: np.ndarray | None,
                 distinct: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds of a cascade's last decision stage that give every cut of its samples which can
    be optimal (with "never exit", the grid's extra setting: the cut of every distinct value), and
    per sample how many of them are <= its confidence.

    ``exit_gain``: each sample's change of score when it exits here instead of going on to the
    last stage, for a metric that is a mean of per-sample scores (None otherwise: every distinct
    value is kept). Lowering the threshold from one distinct value to the next adds that value's
    samples to the exits, which makes the cascade cheaper; where none of them loses by exiting it
    makes it no less accurate too, so the higher threshold can never be optimal, whichever of
    them the earlier stages let through. ``distinct``: ``np.unique(confidence,
    return_inverse=True)``, where already known."""
    values, group = distinct if distinct is not None else np.unique(confidence, return_inverse=True)
    useful = np.ones(len(values), bool)
    if exit_gain is not None:
        loses = np.bincount(group, weights=exit_gain < 0, minlength=len(values)) > 0
        useful[1:] = loses[:-1]  # the lowest value stays: everything exits
    return values[useful], np.cumsum(useful)[group]


@dataclass
class CascadeGrid:
    """Summed statistics of a cascade at every combination of per-stage threshold indices."""

    order: tuple[int, ...]  # member indices, in run order
    levels: list[np.ndarray]  # per thresholded stage
    totals: np.ndarray  # (L0+1, ..., L_{k-2}+1, K) summed statistics
    macs_sum: np.ndarray  # (L0+1, ..., L_{k-2}+1) summed MACs
    exits: np.ndarray | None  # (k, L0+1, ...) samples exiting at each stage, where counted
    macs_worst: float

    def thresholds(self, index: Sequence[int]) -> list[float]:
        return [float(lv[j]) if j < len(lv) else float("inf") for lv, j in zip(self.levels, index)]


def _exit_gain(task: Task, table: SubsetTable, here: tuple[int, ...], last: tuple[int, ...]) -> np.ndarray | None:
    """Each sample's change of score when it exits at the stage ``here`` instead of ``last``;
    None when the task's metric is not a mean of per-sample scores (mIoU)."""
    exiting = task.sample_scores(table.statistics[here])
    return None if exiting is None else exiting - task.sample_scores(table.statistics[last])


def _stage_subset(order: tuple[int, ...], stage: int, combine: str) -> tuple[int, ...]:
    return tuple(sorted(order[: stage + 1])) if combine == "mean" else (order[stage],)


def cascade_grid(table: SubsetTable, order: tuple[int, ...], levels: int = 20, combine: str = "mean",
                 fixed_levels: list[np.ndarray] | None = None, exact_for: Task | None = None,
                 count_exits: bool = True) -> CascadeGrid:
    """Summed statistics of the cascade ``order`` at every combination of its stages' thresholds:
    ``levels`` quantiles per stage, or with ``exact_for`` (the task whose metric is searched) the
    last decision stage swept exactly (`exact_levels`); ``count_exits`` also counts the samples
    exiting at each stage (the search does not need them)."""
    k = len(order)
    if k < 2:
        raise CommitteeError(f"a cascade needs at least 2 members, got {len(order)}")
    stage_subsets = [_stage_subset(order, s, combine) for s in range(k)]
    # levels per decision stage and bins[s] = how many levels are <= a sample's confidence:
    # exit at setting j  <=>  bins > j
    if fixed_levels:
        lv = list(fixed_levels)
        bins = [np.searchsorted(lv[s], table.confidence[stage_subsets[s]], side="right") for s in range(k - 1)]
    else:
        exact = exact_for is not None
        grid = [table.grid_bins(stage_subsets[s], levels) for s in range(k - 1 - exact)]
        lv, bins = [g[0] for g in grid], [g[1] for g in grid]
        if exact:
            here, last = stage_subsets[k - 2], stage_subsets[k - 1]
            exact_lv, exact_bins = exact_levels(table.confidence[here], _exit_gain(exact_for, table, here, last),
                                                table.distinct(here))
            lv.append(exact_lv)
            bins.append(exact_bins)
    shape = tuple(len(x) + 1 for x in lv)
    cost = np.cumsum(table.macs[list(order)], axis=0)  # (k, N): MACs if the sample exits at stage s
    # per sample and stage: its statistics, its MACs and (for the exit fractions) a count
    count = [np.ones((table.n, 1))] if count_exits else []
    columns = [np.column_stack([table.statistics[stage_subsets[s]], cost[s]] + count) for s in range(k)]
    width, early = columns[0].shape[1], k - 2  # early: the stages before the last decision stage
    exits = np.zeros((k,) + shape) if count_exits else None
    # Whatever depends on the early stages' thresholds only is summed on their (small) grid:
    # the exits at each early stage, and every sample that reaches the last decision stage counted
    # as ending at the last stage... (arrays are (columns, *grid): sums along the grid's axes then
    # run over contiguous blocks)
    on_early = np.zeros((width,) + shape[:early])
    for s in range(early):
        region = _exit_region_sums(_histogram(bins[: s + 1], shape[: s + 1], columns[s]), s)
        on_early += region.reshape((width,) + shape[: s + 1] + (1,) * (early - 1 - s))
        if count_exits:
            exits[s] = region[-1].reshape(shape[: s + 1] + (1,) * (k - 2 - s))
    reaching = _histogram(bins[:early], shape[:early], columns[-1])
    for t in range(early):
        _prefix_sums(reaching, t + 1)  # bins_t <= j_t: not confident before
    on_early += reaching
    # ... then, on the full grid, what changes where they exit at the last decision stage instead
    # (only the columns that do change: top-1's count never does).
    change = columns[-2] - columns[-1]
    if count_exits:
        change[:, -1] = 1.0
    n_stats = width - 1 - len(count)
    changing = np.union1d(np.flatnonzero(change.any(axis=0)), [n_stats])  # MACs: at least one column
    exiting = _exit_region_sums(_histogram(bins, shape, change[:, changing]), early)
    sums = np.empty((width,) + shape)
    sums[...] = on_early[..., None]
    for j, c in enumerate(changing):
        sums[c] += exiting[j]
    if count_exits:
        exits[k - 2] = exiting[-1]  # the count column, always changing, comes last
        exits[k - 1] = reaching[-1][..., None] - exits[k - 2]
    return CascadeGrid(order, lv, np.moveaxis(sums[:n_stats], 0, -1), sums[n_stats], exits, float(cost[-1].max()))


def _histogram(bins: list[np.ndarray], shape: tuple[int, ...], columns: np.ndarray) -> np.ndarray:
    """Sums of each column of ``columns`` (N, C) over the samples in each cell of ``shape``: (C, *shape)."""
    cell = np.ravel_multi_index(bins, shape) if bins else np.zeros(len(columns), np.int64)
    cells = int(np.prod(shape))
    hist = np.stack([np.bincount(cell, weights=columns[:, c], minlength=cells) for c in range(columns.shape[1])])
    return hist.reshape((columns.shape[1],) + shape)


def _prefix_sums(a: np.ndarray, axis: int) -> np.ndarray:
    """Cumulative sums along ``axis``, in place. A short axis is summed one slice at a time:
    numpy's cumsum walks such an axis element by element, over strided memory."""
    if a.shape[axis] > 64:
        return np.cumsum(a, axis=axis, out=a)
    view = np.moveaxis(a, axis, 0)
    for i in range(1, len(view)):
        view[i] += view[i - 1]
    return a


def _exit_region_sums(hist: np.ndarray, stage: int) -> np.ndarray:
    """Sums of ``hist`` (columns, *thresholds of stages 0..stage) over the cells whose samples exit
    at ``stage``, for every threshold setting (overwrites ``hist``).

    Exit at stage s under settings (j_0..j_s): bins_t <= j_t for t < s (not confident before),
    bins_s > j_s (confident now)."""
    for t in range(stage):
        _prefix_sums(hist, t + 1)  # bins_t <= j_t
    total = hist.sum(axis=stage + 1, keepdims=True)
    return np.subtract(total, _prefix_sums(hist, stage + 1), out=hist)  # bins_s > j_s


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
    """The settings the search keeps, flat: singles, ensembles, then per cascade the settings no
    cheaper one of it matches (any other can never be chosen); ``configurations`` counts every
    setting scored."""

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
           combine: str = "mean", exact: bool = True) -> SearchResult:
    """Score every single member, ensemble and cascade (cheapest member first unless
    ``any_order``) of up to ``max_size`` members on the table's samples; with ``exact`` each
    cascade's last decision stage is swept exactly (`exact_levels`), else on the grid too."""
    if levels < 2:
        raise CommitteeError(f"the threshold grid needs at least 2 levels, got {levels}")
    mean_macs = table.macs.mean(axis=1)
    by_cost = sorted(range(len(table.members)), key=lambda m: (mean_macs[m], m))
    blocks: list[_Block] = []
    for subset in (s for s in table.statistics if len(s) <= max_size):  # singles and ensembles
        kind = "member" if len(subset) == 1 else "ensemble"
        summed = table.statistics[subset].sum(axis=0)
        total_macs = table.macs[list(subset)].sum(axis=0)
        blocks.append(_Block(kind, subset, np.atleast_1d(task.metric(summed)), np.array([total_macs.mean()]),
                             np.array([total_macs.max()]), np.zeros(1, np.int64), 1))
    orders = [order for size in range(2, min(max_size, len(table.members)) + 1)
              for subset in itertools.combinations(by_cost, size)
              for order in (itertools.permutations(subset) if any_order else [tuple(subset)])]
    # the largest cascades first, so that the worker threads finish together
    largest_first = sorted(range(len(orders)), key=lambda i: -len(orders[i]))
    scored = map_in_threads(lambda i: _cascade_block(table, task, orders[i], levels, combine, exact), largest_first)
    blocks += [block for _, block in sorted(zip(largest_first, scored), key=lambda pair: pair[0])]
    offsets = np.cumsum([0] + [len(b.metric) for b in blocks])

    def decode(i: int) -> Candidate:
        at = int(np.searchsorted(offsets, i, side="right") - 1)
        b, local = blocks[at], i - offsets[at]
        if b.kind == "cascade":
            grid, shape = b.what
            index = np.unravel_index(b.settings[local], shape)
            return Candidate(b.kind, [table.members[m] for m in grid.order], grid.thresholds(index),
                             float(b.metric[local]), float(b.macs_mean[local]), float(b.macs_worst[local]))
        return Candidate(b.kind, [table.members[m] for m in b.what], None, float(b.metric[0]), float(b.macs_mean[0]),
                         float(b.macs_worst[0]))

    return SearchResult(np.concatenate([b.metric for b in blocks]), np.concatenate([b.macs_mean for b in blocks]),
                        np.concatenate([b.macs_worst for b in blocks]), decode, sum(b.scored for b in blocks))


@dataclass
class _Block:
    """One committee's scored settings, as the search keeps them."""

    kind: str
    what: object  # a member subset, or the cascade's grid and its shape
    metric: np.ndarray
    macs_mean: np.ndarray
    macs_worst: np.ndarray
    settings: np.ndarray  # flat indices of the kept settings in the cascade's grid
    scored: int  # settings scored, kept or not


def _cascade_block(table: SubsetTable, task: Task, order: tuple[int, ...], levels: int, combine: str,
                   exact: bool) -> _Block:
    grid = cascade_grid(table, order, levels, combine, exact_for=task if exact else None, count_exits=False)
    metric = np.asarray(task.metric(grid.totals), dtype=np.float64).ravel()
    macs = grid.macs_sum.ravel() / table.n
    kept = _front(metric, macs)
    shape = grid.macs_sum.shape
    grid.totals = grid.macs_sum = grid.exits = None  # decode needs the order, levels and shape only
    return _Block("cascade", (grid, shape), metric[kept], macs[kept], np.full(kept.size, grid.macs_worst), kept,
                  metric.size)


def _front(metric: np.ndarray, macs: np.ndarray, buckets: int = 4096) -> np.ndarray:
    """Indices of the settings of one cascade that no cheaper setting of it matches: the others
    can never be chosen (its settings share their worst-case MACs). Equal costs may keep more
    than one; `SearchResult` breaks those ties.

    Most settings are first left out without sorting: one that is no more accurate than the best
    of a cheaper bucket of MACs is beaten by that setting."""
    candidates = np.arange(len(macs))
    low, high = float(macs.min()), float(macs.max())
    if len(macs) > 4 * buckets and high > low:
        bucket = ((macs - low) * ((buckets - 1) / (high - low))).astype(np.int64)  # monotone in MACs
        best = np.full(buckets, -np.inf)
        np.maximum.at(best, bucket, metric)
        cheaper_best = np.concatenate([[-np.inf], np.maximum.accumulate(best)[:-1]])
        candidates = np.flatnonzero(metric > cheaper_best[bucket])
    by_cost = candidates[np.argsort(macs[candidates])]
    best = np.maximum.accumulate(metric[by_cost])
    kept = np.ones(len(by_cost), bool)
    kept[1:] = best[1:] > best[:-1]
    return np.sort(by_cost[kept])
