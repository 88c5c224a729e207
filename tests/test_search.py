"""The vectorised search against brute force (Cascade/Ensemble.evaluate on every setting, and
every distinct threshold of the last decision stage for the exact sweep)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from committee_tasks import Cascade, Ensemble, Single
from committee_tasks.search.exhaustive import cascade_grid, exact_levels, search, subset_table, threshold_levels
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


def test_grid_search_optimum_equals_brute_force(classification, pool):
    levels = 6
    table = subset_table(pool, MEMBERS, classification)
    result = search(table, classification, max_size=3, levels=levels, exact=False)
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


def brute_force_cascade(pool, task, order, levels, confidence, combine):
    """(metric, mean MACs) of every setting: the earlier stages on the quantile grid, the last
    decision stage at every distinct value of its confidence, each stage "never" as well."""
    k = len(order)
    stages = [list(order[: s + 1]) if combine == "mean" else [order[s]] for s in range(k)]
    stats = np.stack([pool.stage_statistics(names, task) for names in stages])
    conf = [pool.stage_confidence(names, confidence, task) for names in stages[:-1]]
    cost = np.cumsum([pool.macs[m] for m in order], axis=0)
    options = [list(threshold_levels(c, levels)) + [np.inf] for c in conf[:-1]]
    options.append(sorted(set(conf[-1].tolist())) + [np.inf])
    rows = np.arange(len(pool.ids))
    points = []
    for thresholds in itertools.product(*options):
        exit_stage = np.full(len(rows), k - 1)
        for s in reversed(range(k - 1)):
            exit_stage[conf[s] >= thresholds[s]] = s
        points.append((float(task.metric(stats[exit_stage, rows].sum(0))), float(cost[exit_stage, rows].mean())))
    return points


def front_of(points):
    best, front = -np.inf, []
    for metric, macs in sorted(points, key=lambda p: (p[1], -p[0])):
        if metric > best + 1e-9:
            front.append((metric, macs))
            best = metric
    return front


class NoScores(type(pytest.importorskip("tasks.classification").ClassificationTask())):
    """Top-1 without per-sample scores, as mIoU has none: the exact sweep keeps every value."""

    name = "top1_without_scores"

    def sample_scores(self, statistics):
        return None


def coarse_pool(seed):
    """Probabilities in steps of 1/8: many samples share a confidence, and such a tie can hold
    samples that gain and samples that lose by exiting, which the earlier stages may split (the
    seeds used below are ones where dropping a tie whose gains sum to >= 0 misses the optimum)."""
    pool = random_pool(seed=seed, n=150, c=5, members=MEMBERS)
    for name, probs in pool.outputs.items():
        pool.outputs[name] = (np.round(probs.astype(np.float32) * 8) / 8).astype(np.float16)
    return pool


@pytest.mark.parametrize("confidence,combine,scores,ties", [
    ("max_prob", "mean", True, False), ("neg_entropy", "last", True, False), ("max_prob", "mean", False, False),
    ("max_prob", "last", True, True), ("max_prob", "mean", True, True)])
def test_exact_sweep_equals_brute_force_over_every_threshold(classification, confidence, combine, scores, ties):
    """On small pools with tied confidences (float16 outputs, or steps of 1/8) and per-sample MACs:
    the cheapest match, the best within a budget and the Pareto front equal brute force over
    every distinct threshold of each cascade's last decision stage."""
    task = classification if scores else NoScores()
    pool = coarse_pool(seed=32 if combine == "last" else 28) if ties else random_pool(seed=11, n=150, c=5, members=MEMBERS)
    levels, by_cost = 4, sorted(MEMBERS, key=lambda m: pool.macs[m].mean())
    points = []
    for size in (1, 2, 3):
        for subset in itertools.combinations(by_cost, size):
            spec = Single(subset[0]) if size == 1 else Ensemble(list(subset))
            r = spec.evaluate(pool, task)
            points.append((r.metric, r.macs_mean))
            if size > 1:
                points += brute_force_cascade(pool, task, subset, levels, confidence, combine)
    table = subset_table(pool, MEMBERS, task, confidence)
    result = search(table, task, max_size=3, levels=levels, combine=combine)
    for reference in MEMBERS:
        ref = Single(reference).evaluate(pool, task)
        found = result.candidate(result.cheapest_matching(ref.metric))
        assert found.macs_mean == pytest.approx(min(c for m, c in points if m >= ref.metric - 1e-9))
        found = result.candidate(result.best_within(ref.macs_mean))
        assert found.metric == pytest.approx(max(m for m, c in points if c <= ref.macs_mean * (1 + 1e-9)))
        if found.kind == "cascade":  # the setting found is what the committee itself scores
            live = Cascade(found.members, found.thresholds, confidence=confidence, combine=combine).evaluate(pool, task)
            assert (live.metric, live.macs_mean) == pytest.approx((found.metric, found.macs_mean))
    searched = [(result.candidate(i).metric, result.candidate(i).macs_mean) for i in result.pareto()]
    np.testing.assert_allclose(np.array(front_of(searched)), np.array(front_of(points)), rtol=1e-9)


def test_exact_front_dominates_the_grid_front(classification, pool):
    table = subset_table(pool, MEMBERS, classification)
    exact, grid = (search(table, classification, max_size=4, levels=5, exact=e) for e in (True, False))
    exact_front = [(exact.metric[i], exact.macs_mean[i]) for i in exact.pareto()]
    for i in grid.pareto():
        assert any(m >= grid.metric[i] - 1e-9 and c <= grid.macs_mean[i] * (1 + 1e-12) for m, c in exact_front)
    assert exact.configurations > grid.configurations


def test_exact_levels_leave_out_only_cuts_that_cannot_be_optimal():
    confidence = np.array([0.9, 0.9, 0.8, 0.7, 0.7, 0.6, 0.5], np.float32)
    gain = np.array([1, -1, -1, 1, 0, 1, -1], float)
    # A threshold survives if a sample at the value just below it loses by exiting (or it is the
    # lowest): 0.6 (0.5 loses) and 0.9 (0.8 loses); 0.7 and 0.8 do not (0.6 and 0.7 only gain).
    # The tie at 0.9 sums to 0 but stays a candidate where the earlier stages keep only its loser.
    levels, bins = exact_levels(confidence, gain)
    assert levels.tolist() == pytest.approx([0.5, 0.6, 0.9])
    assert bins.tolist() == [3, 3, 2, 2, 2, 2, 1]  # levels <= each confidence
    tied = np.array([0.9, 0.8, 0.8, 0.7], np.float32)
    levels, _ = exact_levels(tied, np.array([1, 1, -1, 1], float))  # 0.8's samples sum to 0
    assert levels.tolist() == pytest.approx([0.7, 0.9])
    levels, bins = exact_levels(confidence, None)
    assert levels.tolist() == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9])
    assert bins.tolist() == [5, 5, 4, 3, 3, 2, 1]


def test_search_benchmark_runs_and_compares_fronts(tmp_path):
    """benchmarks/search_speed.py on a small pool: both conditions timed, the grid front matched."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "search_speed.py"
    done = subprocess.run([sys.executable, str(script), "--samples", "3000", "--classes", "100", "--members", "5",
                           "--max-size", "3", "--levels", "8"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "one competing process" in done.stdout and "ratio" in done.stdout
    assert "each matched or beaten by the exact sweep's: yes" in done.stdout


def test_search_figures_equal_the_committees_own(classification):
    """The search's figures (ensembles read from its subset tables, cascades through remembered
    stages) equal each committee's own evaluation on both splits."""
    from committee_tasks.search.committee_search import SearchSettings, search_variant

    pool = random_pool(seed=4, n=400, c=6, members=MEMBERS)
    calibration = np.arange(len(pool.ids)) % 3 == 0
    cal, ev = pool.subset(calibration), pool.subset(~calibration)
    out = search_variant(classification, cal, ev, "max_prob", SearchSettings(pool=MEMBERS))
    kinds = {p["kind"] for p in out["points"]}
    assert kinds == {"ensemble", "cascade"}
    for point in out["points"]:
        spec = (Ensemble(point["members"]) if point["kind"] == "ensemble" else
                Cascade(point["members"], point["thresholds"]))
        for split, preds in (("calibration", cal), ("evaluation", ev)):
            own = spec.evaluate(preds, classification)
            assert point["metric"][split] == own.metric and point["macs_mean"][split] == own.macs_mean
    assert out["thresholds"] == {"levels": 20, "swept_exactly": "last decision stage of each cascade"}
    assert all(p["exact_stages"] == [len(p["members"]) - 2] for p in out["points"] if p["kind"] == "cascade")
