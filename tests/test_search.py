"""The vectorised search against brute force (Cascade/Ensemble.evaluate on every setting)."""
from __future__ import annotations

import itertools

import pytest

from committee_tasks import Cascade, Ensemble, Single
from committee_tasks.search.exhaustive import cascade_grid, search, subset_table
from tests.test_committees import random_pool

MEMBERS = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def pool():
    return random_pool(seed=5, n=400, c=6, members=MEMBERS)


@pytest.mark.parametrize("confidence", ["max_prob", "margin", "neg_entropy"])
@pytest.mark.parametrize("combine", ["mean", "last"])
def test_every_grid_setting_equals_brute_force(classification, pool, confidence, combine):
    table = subset_table(pool, MEMBERS, classification, confidence)
    for order in [(0, 2), (1, 0, 3), (0, 1, 2, 3)]:
        grid = cascade_grid(table, order, levels=5, combine=combine)
        names = [MEMBERS[i] for i in order]
        for index in itertools.product(*(range(len(lv) + 1) for lv in grid.levels)):
            cascade = Cascade(names, grid.thresholds(index), confidence=confidence, combine=combine)
            expected = cascade.evaluate(pool, classification)
            assert classification.metric(grid.totals[index]) == pytest.approx(expected.metric, abs=1e-9)
            assert grid.macs_sum[index] / len(pool.ids) == pytest.approx(expected.macs_mean)
            fractions = grid.exits[(slice(None),) + index] / len(pool.ids)
            assert list(fractions) == pytest.approx(expected.exit_fractions)
        assert grid.macs_worst == expected.macs_worst


def test_search_optimum_equals_brute_force(classification, pool):
    levels = 6
    table = subset_table(pool, MEMBERS, classification)
    result = search(table, classification, max_size=3, levels=levels)
    # brute force over the same candidates
    by_cost = sorted(MEMBERS, key=lambda m: pool.macs[m].mean())
    candidates = [Single(m) for m in MEMBERS]
    for size in (2, 3):
        for subset in itertools.combinations(by_cost, size):
            candidates.append(Ensemble(list(subset)))
            grid = cascade_grid(table, tuple(MEMBERS.index(m) for m in subset), levels)
            for index in itertools.product(*(range(len(lv) + 1) for lv in grid.levels)):
                candidates.append(Cascade(list(subset), grid.thresholds(index)))
    scored = [c.evaluate(pool, classification) for c in candidates]
    assert result.configurations == len(scored)
    for reference in MEMBERS:
        ref = Single(reference).evaluate(pool, classification)
        ok = [r for r in scored if r.metric >= ref.metric - 1e-9]
        cheapest = min(r.macs_mean for r in ok)
        found = result.candidate(result.cheapest_matching(ref.metric))
        assert found.macs_mean == pytest.approx(cheapest) and found.metric >= ref.metric - 1e-9
        within = [r for r in scored if r.macs_mean <= ref.macs_mean * (1 + 1e-9)]
        best = max(r.metric for r in within)
        found = result.candidate(result.best_within(ref.macs_mean))
        assert found.metric == pytest.approx(best) and found.macs_mean <= ref.macs_mean * (1 + 1e-9)
        # the worst-case filter keeps only committees whose all-members cost fits the reference's
        i = result.best_within(ref.macs_mean, macs_worst=ref.macs_worst)
        fits = [r for r in within if r.macs_worst <= ref.macs_worst * (1 + 1e-9)]
        assert result.candidate(i).metric == pytest.approx(max(r.metric for r in fits))
    # the Pareto front: nothing scored is better on both axes than a front point
    front = [result.candidate(i) for i in result.pareto()]
    for p in front:
        assert not any(r.metric > p.metric + 1e-9 and r.macs_mean < p.macs_mean - 1e-6 for r in scored)
    assert [p.macs_mean for p in front] == sorted(p.macs_mean for p in front)


def test_any_order_includes_every_permutation(classification, pool):
    table = subset_table(pool, MEMBERS[:3], classification)
    ordered = search(table, classification, max_size=3, levels=4)
    every = search(table, classification, max_size=3, levels=4, any_order=True)
    assert every.configurations > ordered.configurations
    assert every.metric.max() >= ordered.metric.max()
