"""Learn-then-Test thresholds: the p-values, and the guarantee itself checked by simulation.

The simulation draws many i.i.d. calibration sets from a known distribution, runs the procedure
on each and counts how often it certifies a threshold whose *true* metric drop exceeds eps; that
rate must stay within delta (plus Monte-Carlo slack). The distribution is a finite population
sampled with replacement, so its true drops are the population means, exactly.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from committee_tasks import Cascade, CommitteeError, PoolPredictions
from committee_tasks.search.fitting import fit_guaranteed_cascade
from committee_tasks.search.guarantee import (bernstein_pvalue, binomial_pvalue, fixed_sequence_test, hoeffding_pvalue,
                                       pvalue, threshold_path)

R = 100.0  # classification scores are 0/100 per sample (top-1 in %)
DELTA = 0.1
CALIB_N = 2000
DRAWS = 300
# eps (top-1 points) per bound, chosen so each bound certifies aggressive thresholds in most draws
# while thresholds further along the path do drop by more than eps (so failures are possible)
EPS = {"bernstein": (1.0, 3.0), "binomial": (1.0, 3.0), "hoeffding": (3.0, 5.0)}


# ---------------------------------------------------------------------------------------------
# the simulated population: a 2-member cascade small > big, the reference is big alone

def population(seed=0, n=100_000, c=10) -> PoolPredictions:
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, c, n)
    outputs = {}
    for name, boost in (("small", 2.8), ("big", 3.6)):  # top-1 about 87% and 96%
        logits = rng.normal(size=(n, c))
        logits[np.arange(n), targets] += boost
        p = np.exp(logits - logits.max(1, keepdims=True))
        outputs[name] = (p / p.sum(1, keepdims=True)).astype(np.float16)
    macs = {"small": np.full(n, 10), "big": np.full(n, 100)}
    return PoolPredictions(np.array([f"{i:06d}" for i in range(n)]), targets, outputs, macs)


@pytest.fixture(scope="module")
def world(classification):
    """Per-sample scores of the reference and of the cascade at every threshold of the path."""
    pop = population()
    path = threshold_path("max_prob", 10)
    first = classification.combine([pop.outputs["small"]])
    both = classification.combine([pop.outputs["small"], pop.outputs["big"]])
    correct_first = first.argmax(1) == pop.targets
    correct_both = both.argmax(1) == pop.targets
    exits = first.max(1)[None, :] >= path[:, None]  # (thresholds, samples)
    path_correct = np.where(exits, correct_first[None], correct_both[None])
    ref_correct = pop.outputs["big"].argmax(1) == pop.targets
    # the shortcut equals the library's cascade on the population
    for j in (0, 40, 60, 75, 100):
        result = Cascade(["small", "big"], float(path[j])).evaluate(pop, classification)
        scores = classification.sample_scores(classification.sample_statistics(result.combined, pop.targets))
        np.testing.assert_array_equal(scores, R * path_correct[j])
    true_drop = R * (ref_correct.mean() - path_correct.mean(1))
    macs = 10 + 100 * (1 - exits.mean(1))  # small costs 10, big 100
    return pop, path, path_correct, ref_correct, true_drop, macs


def test_population_is_a_real_committee_problem(world):
    pop, path, path_correct, ref_correct, true_drop, macs = world
    assert true_drop[0] < -2  # the full cascade (ensemble) beats the reference...
    assert true_drop[-1] > 8  # ...exiting everything at the small member loses a lot
    assert np.all(np.diff(true_drop) > -0.05)  # and the drop grows along the path (near monotone)


@pytest.mark.parametrize("bound", ["bernstein", "hoeffding", "binomial"])
def test_failure_rate_is_at_most_delta(classification, world, bound, capsys):
    pop, path, path_correct, ref_correct, true_drop, macs = world
    rng = np.random.default_rng({"bernstein": 1, "hoeffding": 2, "binomial": 3}[bound])
    slack = 3 * np.sqrt(DELTA * (1 - DELTA) / DRAWS)
    chosen = {eps: [] for eps in EPS[bound]}
    naive = {eps: [] for eps in EPS[bound]}
    draws = [rng.integers(0, len(pop.ids), CALIB_N) for _ in range(DRAWS)]
    for d, idx in enumerate(draws):
        ref = R * ref_correct[idx]
        scores = R * path_correct[:, idx]
        for eps in EPS[bound]:
            test = fixed_sequence_test(ref, list(scores), eps, DELTA, bound, R)
            chosen[eps].append(test.index)
            # the same sample through the public fitting function gives the same threshold
            if d < 2:
                calib = PoolPredictions(pop.ids[idx], pop.targets[idx], {m: o[idx] for m, o in pop.outputs.items()},
                                        {m: c[idx] for m, c in pop.macs.items()})
                cascade, fitted = fit_guaranteed_cascade(calib, classification, ["small", "big"], "big", eps, DELTA, bound)
                assert fitted.index == test.index and fitted.pvalues == pytest.approx(test.pvalues)
                if test.index is not None:
                    assert cascade.thresholds == [pytest.approx(path[test.index])]
            # a procedure without a guarantee: the loosest prefix whose *observed* drop is <= eps
            observed = ref.mean() - scores.mean(1)
            bad = np.flatnonzero(observed > eps)
            naive[eps].append((bad[0] if len(bad) else len(path)) - 1)

    lines = []
    for eps in EPS[bound]:
        assert true_drop.max() > eps  # some thresholds do drop by more than eps
        index = np.array([-1 if i is None else i for i in chosen[eps]])
        # fixed-sequence testing certifies the whole prefix up to the returned index: a failure is
        # any certified threshold whose true drop exceeds eps (for this near-monotone path, the
        # returned one)
        worst_certified = np.array([true_drop[: i + 1].max() if i >= 0 else -np.inf for i in index])
        failure = np.mean(worst_certified > eps)
        aggressive = np.mean(index > 0)
        naive_failure = np.mean([true_drop[: i + 1].max() > eps for i in naive[eps] if i >= 0])
        savings = 1 - np.mean([macs[i] for i in index if i >= 0]) / 100
        lines.append(f"{bound} eps={eps:g} delta={DELTA}: failure {failure:.3f} (naive {naive_failure:.3f}), "
                     f"non-strictest {aggressive:.2f}, median index {np.median(index):.0f}, "
                     f"max certified true drop {worst_certified.max():.2f}, MACs saved {savings:.0%}")
        assert failure <= DELTA + slack, lines[-1]
        assert aggressive >= 0.5, lines[-1]  # the test is not passed by certifying nothing
        assert naive_failure > 0.3, lines[-1]  # failures are detectable in this simulation
    with capsys.disabled():
        print("\n" + "\n".join(lines))


# ---------------------------------------------------------------------------------------------
# p-values

def _drops(n_pos, n_neg, n, rng=None) -> np.ndarray:
    """n per-sample drops: n_pos of +R, n_neg of -R, the rest 0."""
    d = np.zeros(n)
    d[:n_pos] = R
    d[n_pos:n_pos + n_neg] = -R
    return d if rng is None else rng.permutation(d)


@pytest.mark.parametrize("mean_drop", [3.0, 5.0])
def test_pvalues_are_one_when_the_drop_reaches_eps(mean_drop):
    drops = _drops(int(mean_drop * 10), 0, 1000)  # mean drop = mean_drop points
    assert hoeffding_pvalue(drops, 3.0, R) == 1.0
    assert bernstein_pvalue(drops, 3.0, R) == 1.0
    losses = drops / R
    assert binomial_pvalue(losses, 0.03) >= 0.5  # loss rate at or above eps: never significant
    assert binomial_pvalue(np.ones(50), 0.03) == 1.0


def test_pvalues_shrink_as_samples_grow():
    base = _drops(1, 0, 100)  # mean drop 1 point, eps 3
    sizes = [1, 4, 16, 64, 256]  # up to 25,600 samples
    for fn in (lambda d: hoeffding_pvalue(d, 3.0, R), lambda d: bernstein_pvalue(d, 3.0, R),
               lambda d: binomial_pvalue(d / R, 0.03)):
        p = [fn(np.tile(base, k)) for k in sizes]
        assert all(b <= a for a, b in zip(p, p[1:])), p
        assert p[-1] < 0.01 and p[-1] < p[0], p


@pytest.mark.parametrize("bound", ["bernstein", "hoeffding", "binomial"])
def test_pvalue_is_valid_at_the_boundary(bound):
    """Under H0 at its boundary (true mean drop just above eps), P(p <= delta) <= delta.

    Without gains (the committee never right where the reference is wrong) the binomial test is
    exact: its rejection rate is that of the largest count whose binomial cdf is <= delta (the
    discreteness keeps it a little under delta), so it is not vacuously conservative."""
    rng = np.random.default_rng({"bernstein": 11, "hoeffding": 12, "binomial": 13}[bound])
    n, eps, draws = 1000, 2.0, 2000
    loss_rate = eps / R + 0.0005  # true mean drop 2.05 points > eps
    rejected = []
    for _ in range(draws):
        committee = np.where(rng.random(n) < loss_rate, 0.0, R)
        rejected.append(pvalue(np.full(n, R), committee, eps, bound, R) <= DELTA)
    rate = np.mean(rejected)
    assert rate <= DELTA + 3 * np.sqrt(DELTA * (1 - DELTA) / draws), (bound, rate)
    if bound == "binomial":
        k = np.arange(n + 1)
        largest_rejected = k[stats.binom.cdf(k, n, eps / R) <= DELTA].max()
        exact = stats.binom.cdf(largest_rejected, n, loss_rate)  # 0.052 here
        assert rate == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / draws))


def test_binomial_pvalue_is_the_binomial_cdf():
    rng = np.random.default_rng(0)
    for n, rate, eps_rate in [(500, 0.01, 0.03), (2000, 0.02, 0.025), (100, 0.0, 0.01), (300, 0.05, 0.02)]:
        losses = (rng.random(n) < rate).astype(float)
        assert binomial_pvalue(losses, eps_rate) == pytest.approx(stats.binom.cdf(int(losses.sum()), n, eps_rate))
    # through pvalue(): a loss is the reference right and the committee wrong; gains do not count
    ref = np.array([R, R, 0.0, 0.0, R] * 40)
    com = np.array([R, 0.0, R, 0.0, R] * 40)
    assert pvalue(ref, com, 2.0, "binomial", R) == pytest.approx(stats.binom.cdf(40, 200, 0.02))


def test_bernstein_beats_hoeffding_when_most_drops_are_zero():
    drops = _drops(10, 10, 2000, np.random.default_rng(1))  # 99% zeros, mean 0
    b, h = bernstein_pvalue(drops, 2.0, R), hoeffding_pvalue(drops, 2.0, R)
    assert b < 0.01 < h, (b, h)


def test_bernstein_pvalue_solves_the_bound_for_eps():
    """At the returned p, the empirical Bernstein upper bound on the mean drop equals eps."""
    drops = _drops(15, 5, 1500, np.random.default_rng(2))
    eps = 3.0
    p = bernstein_pvalue(drops, eps, R)
    n, mean, var = len(drops), drops.mean(), drops.var(ddof=1)
    log_term = np.log(2 / p)
    bound = mean + np.sqrt(2 * var * log_term / n) + 7 * (2 * R) * log_term / (3 * (n - 1))
    assert 0 < p < 1 and bound == pytest.approx(eps, abs=1e-6)


def test_binomial_refuses_non_binary_scores():
    ref = np.array([R, 0.0, R, R])
    with pytest.raises(CommitteeError, match="the binomial bound needs 0/100 per-sample scores"):
        pvalue(ref, np.array([R, 50.0, R, 0.0]), 1.0, "binomial", R)
    with pytest.raises(CommitteeError, match="binomial bound needs"):
        fixed_sequence_test(np.array([0.3, 1.0]), [np.array([1.0, 1.0])], 0.1, 0.1, "binomial", 1.0)
    assert 0 <= pvalue(ref, np.array([R, 0.0, R, 0.0]), 1.0, "binomial", R) <= 1  # 0/R scores are fine


@pytest.mark.parametrize("bound", ["bernstein", "hoeffding"])
def test_scores_outside_the_tasks_score_range_are_refused(bound):
    """A plugin's scores in % under the default range 1: Hoeffding certified a 3.32-point drop as
    within eps 3 (its bound 100x too tight)."""
    with pytest.raises(CommitteeError, match=r"scores lie in \[0, 100\], outside the task's score_range \[0, 1\]"):
        pvalue(np.array([100.0, 0.0, 100.0]), np.array([100.0, 0.0, 0.0]), 3.0, bound, 1.0)
    with pytest.raises(CommitteeError, match="outside the task's score_range"):
        pvalue(np.array([1.0, -0.5]), np.array([1.0, 0.0]), 0.1, bound, 1.0)
    assert 0 <= pvalue(np.array([100.0, 0.0, 100.0]), np.array([100.0, 0.0, 0.0]), 3.0, bound, 100.0) <= 1


def test_unknown_bound_and_invalid_eps_delta():
    ref, com = np.full(10, R), np.full(10, R)
    with pytest.raises(CommitteeError, match="unknown bound 'chernoff'; valid: bernstein, hoeffding, binomial"):
        pvalue(ref, com, 1.0, "chernoff", R)
    with pytest.raises(CommitteeError, match="unknown bound"):
        fixed_sequence_test(ref, [com], 1.0, 0.1, "chernoff", R)
    for eps, delta in [(-0.5, 0.1), (1.0, 0.0), (1.0, 1.0), (1.0, 1.5), (1.0, -0.1)]:
        with pytest.raises(CommitteeError, match="--guarantee needs EPS >= 0 and 0 < DELTA < 1"):
            fixed_sequence_test(ref, [com], eps, delta, "bernstein", R)


def test_fixed_sequence_stops_at_the_first_acceptance():
    n = 3000
    ref = np.full(n, R)
    same = ref.copy()
    worse = ref.copy()
    worse[: n // 10] = 0.0  # 10 points below the reference
    test = fixed_sequence_test(ref, [same, same, worse, same], 1.0, 0.1, "binomial", R)
    assert test.index == 1  # the 4th setting would pass, but testing stopped at the 3rd
    assert len(test.pvalues) == 3 and test.pvalues[2] > 0.1 >= max(test.pvalues[:2])
    none = fixed_sequence_test(ref, [worse, same], 1.0, 0.1, "bernstein", R)
    assert none.index is None and len(none.pvalues) == 1


def test_fit_guaranteed_cascade_edge_cases(classification):
    pop = population(seed=3, n=3000)
    # 20 samples certify nothing at eps = 1 point: the Bernstein bound's range term alone is larger
    few = pop.subset(np.arange(3000) < 20)
    cascade, test = fit_guaranteed_cascade(few, classification, ["small", "big"], "big", 1.0, 0.1)
    assert cascade is None and test.index is None and test.pvalues == [1.0]
    # a huge eps certifies the whole path: the loosest threshold (every sample exits at the first stage)
    cascade, test = fit_guaranteed_cascade(pop, classification, ["small", "big"], "big", 50.0, 0.1, "hoeffding")
    assert test.index == 100 and cascade.thresholds == [0.0]
    assert cascade.evaluate(pop, classification).exit_fractions == [1.0, 0.0]

    class NoScores(type(classification)):
        def sample_scores(self, statistics):
            return None

    with pytest.raises(CommitteeError, match="not a mean of per-sample scores"):
        fit_guaranteed_cascade(pop, NoScores(), ["small", "big"], "big", 1.0, 0.1)


def test_threshold_path():
    assert threshold_path("max_prob", 10)[[0, -1]].tolist() == [1.0, 0.0]
    assert threshold_path("margin", 10).shape == (101,)
    assert threshold_path("neg_entropy", 10)[[0, -1]] == pytest.approx([0.0, -np.log(10)])
    with pytest.raises(CommitteeError, match="supports the confidences max_prob, margin, neg_entropy"):
        threshold_path("energy", 10)
