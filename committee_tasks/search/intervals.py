"""Bootstrap confidence intervals of metrics and of their differences, paired over samples.

Every metric is computed from per-sample additive statistics, so one resample of the samples
gives every row's metric at once: each row's statistics summed over the resampled samples, then
the task's metric (top-1 from correct/count; mIoU recomputing I/U sums per resample of images).
All rows and all differences share the same resamples (one `scipy.stats.bootstrap` call, seeded),
so an interval on "committee − reference" is paired: the samples both got right or both got
wrong do not widen it. Percentile intervals; a simulation test checks their coverage.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from committee_tasks.core.errors import CommitteeError, require
from committee_tasks.core.task import Task

_BATCH = 100  # resamples evaluated at once: bounds memory to _BATCH x samples x statistics


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are computed: confidence level, number of resamples and the seed (fixed, so
    every machine prints the same interval for the same figures)."""

    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0

    def __post_init__(self):
        require(0.0 < self.confidence < 1.0,
                f"the interval's confidence level must be in (0, 1), got {self.confidence}")
        require(self.resamples >= 100, f"a bootstrap needs at least 100 resamples, got {self.resamples}")


@dataclass
class Intervals:
    """Lower and upper bounds: ``metric[name]`` and ``delta[(name, reference)]`` (name − reference)."""

    metric: dict[str, tuple[float, float]]
    delta: dict[tuple[str, str], tuple[float, float]]
    samples: int
    spec: Bootstrap

    def excludes_zero(self, name: str, reference: str) -> bool:
        """Whether the difference is distinguishable from zero at the interval's level."""
        lo, hi = self.delta[(name, reference)]
        return bool(lo > 0 or hi < 0)


def batched_metric(task: Task, summed: np.ndarray) -> np.ndarray:
    """``task.metric`` of (..., K) summed statistics, shape (...). The task contract asks metrics to
    take a batch; a plugin whose metric takes one (K,) vector only is called once per row."""
    try:
        metrics = np.asarray(task.metric(summed), dtype=np.float64)
        if metrics.shape == summed.shape[:-1]:
            return metrics
    except (TypeError, ValueError, IndexError):
        pass
    flat = summed.reshape(-1, summed.shape[-1])
    return np.asarray([task.metric(row) for row in flat], dtype=np.float64).reshape(summed.shape[:-1])


def bootstrap_intervals(task: Task, statistics: Mapping[str, np.ndarray],
                        deltas: Sequence[tuple[str, str]] = (), spec: Bootstrap = Bootstrap()) -> Intervals:
    """Intervals of each row's metric and of the differences ``deltas`` (pairs of row names), from
    per-sample statistics of shape (N, K) that all cover the same N samples in the same order."""
    from scipy.stats import bootstrap  # scipy is slow to import; only reports need it

    names = list(statistics)
    if not names:
        return Intervals({}, {}, 0, spec)
    arrays = [np.asarray(statistics[n], dtype=np.float64) for n in names]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise CommitteeError(f"rows cover different numbers of samples ({[len(a) for a in arrays]}); a paired "
                             "interval needs every row on the same samples")
    if n < 2:
        raise CommitteeError(f"cannot bootstrap an interval on {n} sample{'s' if n != 1 else ''}: the split is "
                             "empty or has one sample; evaluate more samples (a larger --limit, or a calibration "
                             "fraction further from 0 and 1)")
    for a, b in deltas:
        for name in (a, b):
            if name not in statistics:
                raise CommitteeError(f"no statistics for {name!r} to compare; rows: {names}")
    width = arrays[0].shape[1]
    stacked = np.concatenate(arrays, axis=1)  # (N, rows x K): one gather per resample for every row
    index = {name: i for i, name in enumerate(names)}

    def statistic(rows: np.ndarray, axis: int = -1) -> np.ndarray:
        summed = stacked[rows].sum(axis=-2).reshape(rows.shape[:-1] + (len(names), width))
        metrics = batched_metric(task, summed)  # (..., rows)
        diffs = [metrics[..., index[a]] - metrics[..., index[b]] for a, b in deltas]
        return np.concatenate([np.moveaxis(metrics, -1, 0), np.asarray(diffs).reshape((len(deltas),) +
                                                                                       metrics.shape[:-1])])

    result = bootstrap((np.arange(n),), statistic, vectorized=True, n_resamples=spec.resamples,
                       confidence_level=spec.confidence, method="percentile",
                       rng=np.random.default_rng(spec.seed), batch=_BATCH)
    low, high = np.atleast_1d(result.confidence_interval.low), np.atleast_1d(result.confidence_interval.high)
    bounds = [(float(lo), float(hi)) for lo, hi in zip(low, high)]
    return Intervals({name: bounds[i] for i, name in enumerate(names)},
                     {pair: bounds[len(names) + j] for j, pair in enumerate(deltas)}, n, spec)
