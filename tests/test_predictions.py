"""The two kinds of what the loop kept (outputs, subset statistics) give the same figures through
one interface, and a registered confidence works everywhere a built-in one does."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from committee_tasks import Cascade, CommitteeError, Ensemble, PoolPredictions, Single
from committee_tasks.committees import confidence as confidence_module
from committee_tasks.committees import (OutputPredictions, StatisticsPredictions, SubsetRecord, confidence_names,
                                        register_confidence)
from committee_tasks.committees.subsets import member_subsets
from committee_tasks.search.exhaustive import search, subset_table
from committee_tasks.search.fitting import fit_cascade
from committee_tasks.search.greedy import greedy_cascade
from tests.test_committees import random_pool

MEMBERS = ["a", "b", "c"]


def gap_squared(probs: torch.Tensor) -> torch.Tensor:
    """A user's own confidence: the squared top-1/top-2 gap, averaged over positions."""
    top2 = probs.topk(2, dim=1).values
    gap = (top2[:, 0] - top2[:, 1]) ** 2
    return gap.flatten(1).mean(1) if gap.dim() > 1 else gap


@pytest.fixture
def registry(monkeypatch):
    """A private copy of the confidence registry, so registrations do not leak between tests."""
    monkeypatch.setattr(confidence_module, "_REGISTRY", dict(confidence_module._REGISTRY))
    register_confidence("gap_squared", gap_squared)


def statistics_of(pool: OutputPredictions, task, confidences=("max_prob", "margin")) -> StatisticsPredictions:
    """The same pool as the loop would keep it for a statistics-caching task."""
    columns = {c: pool.subset_columns(MEMBERS, c, task, len(MEMBERS)) for c in confidences}
    records = {frozenset(MEMBERS[i] for i in s): SubsetRecord(columns[confidences[0]][1][s],
                                                              {c: columns[c][0][s] for c in confidences})
               for s in member_subsets(len(MEMBERS), len(MEMBERS))}
    return StatisticsPredictions(pool.ids, pool.macs, records, classes=pool.num_classes)


def same_result(first, second):
    assert first.metric == second.metric and np.array_equal(first.macs, second.macs)
    assert np.array_equal(first.sample_statistics, second.sample_statistics)
    assert first.exit_fractions == second.exit_fractions


def test_both_kinds_give_identical_figures(classification):
    outputs = random_pool(seed=3)
    stats = statistics_of(outputs, classification)
    for name in MEMBERS:
        np.testing.assert_array_equal(stats.stage_statistics([name], classification),
                                      outputs.stage_statistics([name], classification))
    for confidence in ("max_prob", "margin"):
        np.testing.assert_array_equal(stats.stage_confidence(["a", "c"], confidence, classification),
                                      outputs.stage_confidence(["a", "c"], confidence, classification))
    committees = [Single("b"), Ensemble(["a", "c"]), Cascade(MEMBERS, [0.6, 0.5]),
                  Cascade(["b", "c"], 0.3, confidence="margin"), Cascade(MEMBERS, 0.5, combine="last")]
    mask = np.arange(len(outputs.ids)) % 3 != 0
    for committee in committees:
        same_result(committee.evaluate(outputs, classification), committee.evaluate(stats, classification))
        same_result(committee.evaluate(outputs.subset(mask), classification),
                    committee.evaluate(stats.subset(mask), classification))
    out_table, stat_table = (subset_table(p, MEMBERS, classification, "margin") for p in (outputs, stats))
    assert out_table.confidence.keys() == stat_table.confidence.keys()
    for s in out_table.confidence:
        np.testing.assert_array_equal(out_table.confidence[s], stat_table.confidence[s])
        np.testing.assert_array_equal(out_table.statistics[s], stat_table.statistics[s])
    greedy = [greedy_cascade(p, classification, MEMBERS, "c", alpha=1.0) for p in (outputs, stats)]
    assert greedy[0].members == greedy[1].members and greedy[0].thresholds == greedy[1].thresholds
    fitted = [fit_cascade(p, classification, ["a", "c"], budget=float(outputs.macs["c"].mean()))
              for p in (outputs, stats)]
    assert fitted[0].thresholds == fitted[1].thresholds
    assert stats.num_classes == outputs.num_classes == 7


def test_the_one_class_signature_builds_the_right_kind():
    pool = random_pool(n=20)
    assert isinstance(pool, OutputPredictions) and isinstance(pool, PoolPredictions)
    empty = PoolPredictions(pool.ids, pool.targets, {}, pool.macs, subsets={})
    assert isinstance(empty, StatisticsPredictions) and not empty.outputs
    with pytest.raises(CommitteeError, match="either its members' outputs or statistics"):
        PoolPredictions(pool.ids, pool.targets, pool.outputs, pool.macs, subsets={})
    with pytest.raises(CommitteeError, match="needs cached probabilities"):
        empty.tempered({"a": 2.0})
    with pytest.raises(CommitteeError, match="does not record its number of classes"):
        empty.num_classes


def test_from_members_without_outputs_needs_subset_statistics():
    pool = random_pool(n=10)
    arrays = {m: {"ids": pool.ids, "macs": pool.macs[m]} for m in MEMBERS}
    with pytest.raises(CommitteeError, match="kept no outputs"):
        PoolPredictions.from_members(arrays)
    stats = PoolPredictions.from_members(arrays, subsets={}, num_classes=7)
    assert isinstance(stats, StatisticsPredictions) and stats.num_classes == 7


def reference_exits(pool, members, threshold):
    """Exit stages of a mean cascade under gap_squared, by hand in numpy."""
    stages = []
    for i in range(len(pool.ids)):
        for k in range(len(members)):
            p = np.mean([pool.outputs[m][i].astype(np.float32) for m in members[: k + 1]], axis=0)
            top = np.sort(p)[::-1]
            if k == len(members) - 1 or (top[0] - top[1]) ** 2 >= threshold:
                stages.append(k)
                break
    return np.array(stages)


def test_a_registered_confidence_works_in_cascades_and_the_search(classification, registry):
    pool = random_pool(seed=1)
    assert "gap_squared" in confidence_names()
    result = Cascade(MEMBERS, 0.1, confidence="gap_squared").evaluate(pool, classification)
    np.testing.assert_array_equal(result.exit_stage, reference_exits(pool, MEMBERS, 0.1))
    table = subset_table(pool, MEMBERS, classification, "gap_squared")
    found = search(table, classification, levels=8)
    cascades = [found.candidate(i) for i in range(len(found.metric)) if found.candidate(i).kind == "cascade"]
    for candidate in cascades[::7]:  # each setting's figures equal the cascade scored on its own
        scored = Cascade(candidate.members, candidate.thresholds, confidence="gap_squared").evaluate(pool, classification)
        assert scored.metric == pytest.approx(candidate.metric) and scored.macs_mean == pytest.approx(candidate.macs_mean)
    greedy = greedy_cascade(pool, classification, MEMBERS, "c", alpha=2.0, confidence="gap_squared")
    assert greedy.confidence == "gap_squared" and greedy.members[-1] == "c"


def test_a_registered_confidence_runs_live_as_in_the_cache(classification, registry):
    """The executor (Cascade.exits on live outputs) exits the same samples as the cache-based cascade."""
    from committee_tasks import CommitteeExecutor, Member

    torch.manual_seed(0)
    members = {name: Member(name, torch.nn.Linear(4, 5), torch.nn.Identity(), f"w-{name}", 5, classification.to_probs)
               for name in ("small", "large")}
    x = torch.randn(64, 4)
    outputs = {n: m.predict(x).numpy().astype(np.float16) for n, m in members.items()}  # rounded as the cache does
    macs = {n: m.macs_per_sample(x) for n, m in members.items()}
    pool = PoolPredictions(np.array([str(i) for i in range(64)]), np.zeros(64, np.int64), outputs, macs)
    cascade = Cascade(["small", "large"], float(np.median(gap_squared(torch.from_numpy(
        outputs["small"].astype(np.float32))).numpy())), confidence="gap_squared")
    executor = CommitteeExecutor(cascade, members, classification, device="cpu", amp=False)
    _, live_stages, _ = executor.run_batch({members["small"].transform_key: x})
    cached = cascade.evaluate(pool, classification)
    assert 0 < cached.exit_fractions[0] < 1
    np.testing.assert_array_equal(live_stages, cached.exit_stage)


def test_a_confidence_not_cached_is_refused_in_one_place(classification, registry):
    stats = statistics_of(random_pool(n=50), classification, confidences=("max_prob",))
    message = (r"confidence 'gap_squared' of a was not computed by the evaluation loop.*computed only max_prob"
               r".*cached_confidences")
    with pytest.raises(CommitteeError, match=message):
        Cascade(["a", "b"], 0.5, confidence="gap_squared").evaluate(stats, classification)
    with pytest.raises(CommitteeError, match="gap_squared.*cached_confidences"):
        subset_table(stats, MEMBERS, classification, "gap_squared")
    with pytest.raises(CommitteeError, match="gap_squared.*cached_confidences"):
        greedy_cascade(stats, classification, MEMBERS, "c", confidence="gap_squared")
    with pytest.raises(CommitteeError, match="unknown confidence 'gap_sqaured'; did you mean 'gap_squared'"):
        stats.stage_confidence(["a"], "gap_sqaured", classification)
    with pytest.raises(CommitteeError, match="given as a function"):
        stats.stage_confidence(["a"], lambda p: p.max(1), classification)


def test_a_statistics_caching_task_computes_a_registered_confidence(tmp_path, registry):
    from committee_tasks.engine.cache import PredictionCache
    from committee_tasks.engine.loop import LoopOptions, evaluate_pool
    from tests.test_statistics_cache import Maps, PixelAccuracy, members, reference

    class WithGap(PixelAccuracy):
        cached_confidences = ("max_prob", "gap_squared")

    ms, dataset = members(), Maps()
    preds, _ = evaluate_pool(WithGap(), ms, dataset, PredictionCache(tmp_path),
                             options=LoopOptions(batch_size=4, num_workers=0, progress=False))
    probs = reference(ms, dataset)
    mean = torch.from_numpy((probs["m0"] + probs["m2"]) / 2)
    np.testing.assert_allclose(preds.stage_confidence(["m0", "m2"], "gap_squared", WithGap()),
                               gap_squared(mean).numpy(), rtol=1e-5)
    assert isinstance(preds, StatisticsPredictions) and preds.num_classes == 3


def test_registration_errors(registry):
    def gap_squared(probs):  # another function under a taken name
        return probs.amax(1)

    with pytest.raises(CommitteeError, match=r"'gap_squared' is registered twice: by .*test_predictions\.gap_squared "
                                             r".* and by .*test_registration_errors.<locals>.gap_squared"):
        register_confidence("gap_squared", gap_squared)
    register_confidence("gap_squared", globals()["gap_squared"])  # the same one again: nothing changes
    with pytest.raises(CommitteeError, match="'max_prob' is registered twice"):
        register_confidence("max_prob", gap_squared)
    for bad in ("a,b", "frac_above_0.5", "", "two words"):
        with pytest.raises(CommitteeError, match="cannot register the confidence name"):
            register_confidence(bad, gap_squared)

    @register_confidence("top_prob_again")
    def top(probs):
        return probs.amax(0)  # wrong: one value per class

    assert top.__name__ == "top"  # the decorator returns the function itself
    with pytest.raises(CommitteeError, match="'top_prob_again' returned shape \\(5,\\).*one value per sample"):
        Cascade(["a", "b"], 0.5, confidence="top_prob_again").exits(0, np.full((3, 5), 0.2, np.float32))
