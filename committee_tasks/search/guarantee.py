"""Thresholds with a statistical guarantee (Learn-then-Test, Angelopoulos et al. 2021).

Goal: with probability at least 1 - delta over the calibration sample, the committee's metric on
new data from the same distribution is at most ``eps`` below the reference model's.

Method. Candidate thresholds lie on a path fixed *before* seeing data (one threshold shared by
all stages, from the strictest to the loosest), so each is a hypothesis H0(t): "the expected
drop E[score_ref - score_committee(t)] exceeds eps". Each gets a valid p-value from the
calibration samples, and fixed-sequence testing walks the path from the strictest end, rejecting
H0 while p <= delta and stopping at the first failure; this controls the family-wise error at
delta without any correction. The cheapest rejected setting is returned.

p-values (per-sample drops d_i = score_ref - score_committee lie in [-R, R], R the score range):
* ``bernstein`` (default): the empirical Bernstein bound (Maurer & Pontil 2009, Thm 4): with
  probability >= 1 - p, E[d] <= mean d + sqrt(2 V ln(2/p) / n) + 7 (2R) ln(2/p) / (3 (n - 1)),
  V the sample variance; p is the smallest level at which that bound is <= eps. Most drops are
  0 (both right or both wrong), so V is small and this is far tighter than Hoeffding.
* ``hoeffding``: p = exp(-n (eps - mean d)^2 / (2 R^2)) when mean d < eps.
* ``binomial``: for 0/R scores (top-1), the drop is at most the rate of samples the reference
  gets right and the committee wrong, a Bernoulli loss: p = P(Binomial(n, eps/R) <= its count),
  exact and tighter than Hoeffding for small eps.

Assumptions: calibration and future samples are i.i.d. from one distribution; the path and
members (and any temperature) are fixed independently of the calibration samples.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from committee_tasks.core.errors import CommitteeError

BOUNDS = ("bernstein", "hoeffding", "binomial")


def hoeffding_pvalue(drops: np.ndarray, eps: float, score_range: float) -> float:
    mean = float(np.mean(drops))
    if mean >= eps:
        return 1.0
    return float(np.exp(-len(drops) * (eps - mean) ** 2 / (2.0 * score_range**2)))


def bernstein_pvalue(drops: np.ndarray, eps: float, score_range: float) -> float:
    n = len(drops)
    mean, width = float(np.mean(drops)), 2.0 * score_range
    if mean >= eps or n < 2:
        return 1.0
    var = float(np.var(drops, ddof=1))

    def excess(log_p: float) -> float:  # bound minus eps: rises as p falls
        log_term = np.log(2.0) - log_p
        return mean + np.sqrt(2.0 * var * log_term / n) + 7.0 * width * log_term / (3.0 * (n - 1)) - eps

    if excess(0.0) > 0:  # not even at p = 1
        return 1.0
    lo, hi = -745.0, 0.0  # bisection on log p: excess(lo) > 0 >= excess(hi)
    if excess(lo) <= 0:
        return float(np.exp(lo))
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) > 0 else (lo, mid)
    return float(np.exp(hi))


def binomial_pvalue(losses: np.ndarray, eps_rate: float) -> float:
    """P(Binomial(n, eps_rate) <= observed losses): small when the loss rate is clearly below."""
    if eps_rate >= 1.0:  # no loss rate can exceed 1: H0 is impossible
        return 0.0
    return float(scipy_stats.binom.cdf(int(np.sum(losses)), len(losses), eps_rate))


def check_score_range(scores: np.ndarray, score_range: float) -> None:
    """The bounds hold only for scores in [0, score_range] (a task's ``score_range``): scores in %
    under the default range 1 made Hoeffding certify a drop 100x too small, and it was broken."""
    low, high = float(np.min(scores)), float(np.max(scores))
    if low < 0 or high > score_range:
        raise CommitteeError(f"per-sample scores lie in [{low:g}, {high:g}], outside the task's score_range "
                             f"[0, {score_range:g}] that the guarantee's bound assumes: set the task's score_range "
                             "to the largest score a sample can have (100 for scores in %)")


def pvalue(ref_scores: np.ndarray, committee_scores: np.ndarray, eps: float, bound: str,
           score_range: float) -> float:
    check_score_range(ref_scores, score_range)
    check_score_range(committee_scores, score_range)
    if bound == "bernstein":
        return bernstein_pvalue(ref_scores - committee_scores, eps, score_range)
    if bound == "hoeffding":
        return hoeffding_pvalue(ref_scores - committee_scores, eps, score_range)
    if bound == "binomial":
        values = np.unique(np.concatenate([ref_scores, committee_scores]))
        if not np.all(np.isin(values, [0.0, score_range])):
            raise CommitteeError(f"the binomial bound needs 0/{score_range:g} per-sample scores (like top-1); "
                                 "use --bound hoeffding for this metric")
        return binomial_pvalue((ref_scores > committee_scores).astype(np.float64), eps / score_range)
    raise CommitteeError(f"unknown bound {bound!r}; valid: {', '.join(BOUNDS)}")


@dataclass
class GuaranteeResult:
    index: int | None  # last certified position on the path (None: not even the strictest)
    pvalues: list[float]  # of the tested prefix of the path


def fixed_sequence_test(ref_scores: np.ndarray, path_scores: list[np.ndarray], eps: float, delta: float,
                        bound: str = "bernstein", score_range: float = 1.0) -> GuaranteeResult:
    """Walk ``path_scores`` (per-sample committee scores, strictest setting first) and return the
    last setting whose H0 is rejected at level ``delta`` before the first acceptance."""
    if not 0 < delta < 1 or eps < 0:
        raise CommitteeError(f"--guarantee needs EPS >= 0 and 0 < DELTA < 1, got {eps}, {delta}")
    last, pvalues = None, []
    for i, scores in enumerate(path_scores):
        p = pvalue(ref_scores, scores, eps, bound, score_range)
        pvalues.append(p)
        if p > delta:
            break
        last = i
    return GuaranteeResult(last, pvalues)


def threshold_path(confidence: str, num_classes: int, steps: int = 101) -> np.ndarray:
    """Data-independent thresholds from strictest to loosest for a named confidence."""
    if confidence in ("max_prob", "margin"):
        return np.linspace(1.0, 0.0, steps).round(12)  # 0.82, not linspace's 0.8200000000000001, in names
    if confidence == "neg_entropy":
        return np.linspace(0.0, -np.log(num_classes), steps)
    raise CommitteeError(f"--guarantee supports the confidences max_prob, margin, neg_entropy, not {confidence!r}")
