"""Bootstrap intervals: coverage by simulation, pairing, mIoU recomputed from resampled sums,
determinism and errors."""
from __future__ import annotations

import numpy as np
import pytest

from committee_tasks import CommitteeError
from committee_tasks.search.intervals import Bootstrap, bootstrap_intervals
from committee_tasks.core.metrics import Top1Statistics


class Top1(Top1Statistics):
    """The classification statistics ([correct, 1] per sample) without a task's models."""


def _stats(correct: np.ndarray) -> np.ndarray:
    return np.stack([correct.astype(np.float64), np.ones(len(correct))], axis=1)


def _paired_draw(rng: np.random.Generator, n: int):
    """A reference right with p=0.90 and a committee that, on the same samples, fixes 6% of its
    errors' worth and breaks 4%: true top-1 90 vs 92, true Δ +2 points, strongly paired."""
    u = rng.random(n)
    reference = u < 0.90
    committee = (u < 0.86) | ((u >= 0.90) & (u < 0.96))
    return committee, reference


def test_coverage_of_metric_and_paired_delta():
    """Over many draws from a known distribution, the 95% intervals cover the true top-1 and the
    true Δ about 95% of the time (percentile bootstrap: a little under at n=300)."""
    task, draws, n = Top1(), 300, 300
    covered_metric = covered_delta = 0
    widths = []
    for k in range(draws):
        committee, reference = _paired_draw(np.random.default_rng(1000 + k), n)
        iv = bootstrap_intervals(task, {"c": _stats(committee), "r": _stats(reference)}, [("c", "r")],
                                 Bootstrap(resamples=500, seed=k))
        lo, hi = iv.metric["c"]
        covered_metric += lo <= 92.0 <= hi
        lo, hi = iv.delta[("c", "r")]
        covered_delta += lo <= 2.0 <= hi
        widths.append(hi - lo)
    # binomial sd of the coverage over 300 draws is 1.3 points: these bounds are ~3 sd wide
    assert 0.90 <= covered_metric / draws <= 0.99
    assert 0.90 <= covered_delta / draws <= 0.99
    # paired: per-sample differences are -1 (4%), +1 (6%) or 0, so the 95% interval of Δ is about
    # 2 x 1.96 x 1.82 = 7.1 points wide; unpaired (two independent proportions) it would be 9.2
    assert 6.5 < np.median(widths) < 8.0


def test_intervals_are_deterministic_and_contain_the_point_estimate():
    rng = np.random.default_rng(0)
    committee, reference = _paired_draw(rng, 500)
    rows = {"c": _stats(committee), "r": _stats(reference)}
    a = bootstrap_intervals(Top1(), rows, [("c", "r"), ("r", "r")])
    b = bootstrap_intervals(Top1(), rows, [("c", "r"), ("r", "r")])
    assert a.metric == b.metric and a.delta == b.delta  # seeded: the same on every run and machine
    point = 100 * committee.mean()
    assert a.metric["c"][0] <= point <= a.metric["c"][1]
    assert a.delta[("r", "r")] == (0.0, 0.0) and not a.excludes_zero("r", "r")
    wider = bootstrap_intervals(Top1(), rows, [("c", "r")], Bootstrap(confidence=0.99))
    assert wider.metric["c"][0] <= a.metric["c"][0] and wider.metric["c"][1] >= a.metric["c"][1]


def test_excludes_zero_tells_a_real_difference_from_noise():
    rng = np.random.default_rng(3)
    n = 4000
    u = rng.random(n)
    reference, better = u < 0.80, u < 0.90  # +10 points on the same samples
    noise = rng.permutation(reference)  # the same accuracy, other samples
    iv = bootstrap_intervals(Top1(), {"r": _stats(reference), "b": _stats(better), "n": _stats(noise)},
                             [("b", "r"), ("n", "r")])
    assert iv.excludes_zero("b", "r") and not iv.excludes_zero("n", "r")


class ToyMIoU:
    """mIoU from per-image [intersection, union] of 2 classes: the metric of sums, not a mean."""

    def metric(self, summed: np.ndarray) -> np.ndarray:
        inter, union = summed[..., :2], summed[..., 2:]
        return 100 * np.nanmean(inter / union, axis=-1)


def test_miou_is_recomputed_from_resampled_sums():
    """Each resample sums I and U over the resampled images, then divides: checked against a
    manual bootstrap drawing the same indices (scipy's resampling of one array with this seed)."""
    rng = np.random.default_rng(5)
    n = 40
    inter = rng.integers(0, 50, size=(n, 2)).astype(float)
    union = inter + rng.integers(1, 50, size=(n, 2))
    stats = np.concatenate([inter, union], axis=1)
    spec = Bootstrap(resamples=1000, seed=11)
    iv = bootstrap_intervals(ToyMIoU(), {"m": stats}, (), spec)
    # the ratio of sums, not the mean of per-image IoUs (they differ for these numbers)
    full = ToyMIoU().metric(stats.sum(axis=0))
    assert full != pytest.approx(100 * np.mean(inter / union))
    lo, hi = iv.metric["m"]
    assert lo < full < hi
    manual_rng = np.random.default_rng(11)
    manual = [ToyMIoU().metric(stats[manual_rng.integers(0, n, n)].sum(axis=0)) for _ in range(1000)]
    m_lo, m_hi = np.percentile(manual, [2.5, 97.5])
    assert lo == pytest.approx(m_lo, abs=1.0) and hi == pytest.approx(m_hi, abs=1.0)


@pytest.mark.parametrize("n", [0, 1])
def test_too_few_samples_is_a_clear_error(n):
    with pytest.raises(CommitteeError, match=f"cannot bootstrap an interval on {n} sample"):
        bootstrap_intervals(Top1(), {"a": np.zeros((n, 2))})


def test_bad_requests_are_clear_errors():
    with pytest.raises(CommitteeError, match="confidence level must be in \\(0, 1\\), got 95"):
        Bootstrap(confidence=95)
    with pytest.raises(CommitteeError, match="at least 100 resamples, got 10"):
        Bootstrap(resamples=10)
    with pytest.raises(CommitteeError, match="rows cover different numbers of samples"):
        bootstrap_intervals(Top1(), {"a": np.ones((5, 2)), "b": np.ones((6, 2))})
    with pytest.raises(CommitteeError, match="no statistics for 'z' to compare"):
        bootstrap_intervals(Top1(), {"a": np.ones((5, 2))}, [("a", "z")])


class ScalarOnlyMetric(Top1):
    """A plugin whose metric takes one vector of sums, not a batch (the contract asks for both)."""

    def metric(self, summed):
        correct, count = summed
        return float(100 * correct / count)


def test_a_metric_of_one_vector_only_still_gets_intervals():
    committee, reference = _paired_draw(np.random.default_rng(2), 200)
    rows = {"c": _stats(committee), "r": _stats(reference)}
    spec = Bootstrap(resamples=200)
    batched = bootstrap_intervals(Top1(), rows, [("c", "r")], spec)
    scalar = bootstrap_intervals(ScalarOnlyMetric(), rows, [("c", "r")], spec)
    assert scalar.metric == batched.metric and scalar.delta == batched.delta
