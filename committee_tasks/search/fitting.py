"""Fit a cascade's per-stage thresholds on calibration samples.

* ``match``: the cheapest setting whose metric is at least the target (a reference model's).
* ``budget``: the most accurate setting whose mean MACs are at most the budget.
* ``guarantee``: the cheapest setting on a data-independent path that Learn-then-Test certifies
  (see `guarantee.py`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from committee_tasks.committees.predictions import PoolPredictions
from committee_tasks.committees.scoring import Cascade, Single
from committee_tasks.core.errors import CommitteeError
from committee_tasks.search.guarantee import GuaranteeResult, fixed_sequence_test, threshold_path
from committee_tasks.search.exhaustive import argbest, cascade_grid, subset_table
from committee_tasks.core.task import Task


def fit_cascade(calib: PoolPredictions, task: Task, members: Sequence[str], *, match: float | None = None,
                budget: float | None = None, confidence: str = "max_prob", combine: str = "mean",
                levels: int = 20, macs_worst: float | None = None) -> Cascade | None:
    """Thresholds of the cascade ``members`` (in this order) for one objective; None if no
    setting qualifies (the earlier stages on the grid, the last decision stage swept exactly).
    ``macs_worst`` additionally bounds the worst-case MACs."""
    if (match is None) == (budget is None):
        raise CommitteeError("fit a cascade either to match a metric or to a MACs budget")
    table = subset_table(calib, members, task, confidence, max_size=len(members))
    grid = cascade_grid(table, tuple(range(len(members))), levels, combine, exact_for=task)
    if macs_worst is not None and grid.macs_worst > macs_worst * (1 + 1e-9):
        return None
    metric = np.asarray(task.metric(grid.totals), dtype=np.float64).ravel()
    macs = grid.macs_sum.ravel() / table.n
    if match is not None:  # the cheapest setting reaching the metric (ties: the more accurate)
        best = argbest(np.where(metric >= match - 1e-9, -macs, -np.inf), metric)
    else:  # the most accurate setting within the budget (ties: the cheaper)
        best = argbest(np.where(macs <= budget * (1 + 1e-9), metric, -np.inf), -macs)
    if best is None:
        return None
    index = np.unravel_index(best, grid.macs_sum.shape)
    return Cascade(members, grid.thresholds(index), confidence=confidence, combine=combine)


def fit_guaranteed_cascade(calib: PoolPredictions, task: Task, members: Sequence[str], reference: str,
                           eps: float, delta: float, bound: str = "bernstein", confidence: str = "max_prob",
                           combine: str = "mean") -> tuple[Cascade | None, GuaranteeResult]:
    """The cheapest cascade on a fixed threshold path (one threshold for all stages, strictest
    first) whose metric drop against ``reference`` is certified to be <= eps w.p. >= 1 - delta."""
    ref_scores = task.sample_scores(Single(reference).evaluate(calib, task).sample_statistics)
    if ref_scores is None:
        raise CommitteeError(f"the {task.name} metric ({task.metric_name}) is not a mean of per-sample scores, "
                             "which --guarantee needs; use --match or --budget")
    path = threshold_path(confidence, calib.num_classes)

    def scores(threshold: float) -> np.ndarray:
        result = Cascade(members, threshold, confidence=confidence, combine=combine).evaluate(calib, task)
        return task.sample_scores(result.sample_statistics)

    # lazily: the test stops at the first acceptance
    test = fixed_sequence_test(ref_scores, _LazyPath(path, scores), eps, delta, bound, task.score_range)
    if test.index is None:
        return None, test
    return Cascade(members, float(path[test.index]), confidence=confidence, combine=combine), test


class _LazyPath:
    def __init__(self, thresholds: np.ndarray, scores):
        self.thresholds, self.scores = thresholds, scores

    def __iter__(self):
        return (self.scores(float(t)) for t in self.thresholds)
