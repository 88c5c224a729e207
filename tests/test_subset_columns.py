"""The search's first phase: subset means formed on candidate classes equal those formed on every
class, and both equal the committees' own figures (`PoolPredictions.stage_*`), bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from committee_tasks.committees import subset_columns as module
from committee_tasks.committees.predictions import OutputPredictions
from committee_tasks.committees.subsets import member_subsets

MEMBERS = ["a", "b", "c", "d", "e"]


def hard_pool(dtype, seed=0, n=600, classes=50) -> OutputPredictions:
    """Confident, flat, tied and exactly-uniform rows, so both paths and every tie rule are used."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, classes, n)
    outputs = {}
    for m, name in enumerate(MEMBERS):
        logits = rng.normal(size=(n, classes)) * rng.choice([0.05, 1.0, 4.0], size=(n, 1))
        logits[np.arange(n), targets] += rng.normal(2.0, 2.0, n)
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        probs[::7] = 1.0 / classes  # every class tied
        probs[3::11, :2] = probs[3::11, :2].max(1, keepdims=True)  # a tie between classes 0 and 1
        outputs[name] = probs.astype(dtype)
    macs = {name: np.full(n, float(m + 1)) for m, name in enumerate(MEMBERS)}
    return OutputPredictions(np.arange(n).astype(str), macs, targets, outputs)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("confidence", ["max_prob", "margin"])
def test_candidate_classes_equal_every_class(classification, monkeypatch, dtype, confidence):
    pool = hard_pool(dtype)
    conf, stats = pool.subset_columns(MEMBERS, confidence, classification, max_size=4, chunk=128)
    monkeypatch.setattr(module, "top_value_form", lambda name: None)  # force the full path
    full_conf, full_stats = pool.subset_columns(MEMBERS, confidence, classification, max_size=4, chunk=128)
    assert set(conf) == set(member_subsets(len(MEMBERS), 4))
    for s in conf:
        np.testing.assert_array_equal(conf[s], full_conf[s])
        np.testing.assert_array_equal(stats[s], full_stats[s])
        names = [MEMBERS[i] for i in s]
        np.testing.assert_array_equal(conf[s], pool.stage_confidence(names, confidence, classification))
        np.testing.assert_array_equal(stats[s], pool.stage_statistics(names, classification))


def test_both_paths_are_taken(classification, monkeypatch):
    """The pool above really sends samples both ways (else the test above proves little)."""
    calls = []
    full = module._CandidateClasses._full

    def counting(self, rows, inexact, targets):
        calls.append(sum(len(where) for _, where, _, _ in inexact))
        return full(self, rows, inexact, targets)

    monkeypatch.setattr(module._CandidateClasses, "_full", counting)
    pool = hard_pool(np.float32)
    pool.subset_columns(MEMBERS, "max_prob", classification, max_size=4)
    share = sum(calls) / (len(pool.ids) * len(member_subsets(len(MEMBERS), 4)))
    assert 0.05 < share < 0.6


def test_a_task_that_changes_its_statistics_takes_the_full_path(classification):
    """A top-5 task built on Top1Statistics must not be served top-1 figures by the shortcut."""

    class Top5(type(classification)):
        name = "top5_probe"

        def sample_statistics(self, combined, targets):
            top5 = np.argsort(-combined, axis=1)[:, :5]
            hit = (top5 == targets[:, None]).any(1).astype(np.float64)
            return np.stack([hit, np.ones_like(hit)], axis=1)

    task = Top5()
    assert module._top_class_statistics(classification) is not None
    assert module._top_class_statistics(task) is None
    pool = hard_pool(np.float32)
    _, stats = pool.subset_columns(MEMBERS, "max_prob", task, max_size=2)
    np.testing.assert_array_equal(stats[(0, 2)], pool.stage_statistics(["a", "c"], task))


def test_non_finite_outputs_take_the_full_path(classification):
    pool = hard_pool(np.float32)
    pool.outputs["b"][5, 3] = np.nan
    conf, stats = pool.subset_columns(MEMBERS, "max_prob", classification, max_size=2)
    np.testing.assert_array_equal(conf[(0, 1)], pool.stage_confidence(["a", "b"], "max_prob", classification))
    np.testing.assert_array_equal(stats[(0, 1)], pool.stage_statistics(["a", "b"], classification))
