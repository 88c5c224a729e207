"""Committee arithmetic against a plain per-sample reference on random probabilities."""
from __future__ import annotations

import numpy as np
import pytest

from committee_tasks import Cascade, CommitteeError, Ensemble, PoolPredictions, Single
from committee_tasks.committees.confidence import margin, max_prob, neg_entropy


def random_pool(seed=0, n=500, c=7, members=("a", "b", "c")):
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, c, n)
    outputs, macs = {}, {}
    for i, m in enumerate(members):
        logits = rng.normal(size=(n, c)) * (1 + i)
        logits[np.arange(n), targets] += 1.0 + i  # later members are more accurate
        p = np.exp(logits - logits.max(1, keepdims=True))
        outputs[m] = (p / p.sum(1, keepdims=True)).astype(np.float16)
        macs[m] = rng.integers(10 ** (i + 1), 2 * 10 ** (i + 1), n)  # varies per sample
    return PoolPredictions(np.array([f"{i:04d}" for i in range(n)]), targets, outputs, macs)


def reference_cascade(preds, members, thresholds, confidence, combine):
    correct, cost, stages = [], [], []
    for i in range(len(preds.ids)):
        total = 0.0
        for k, m in enumerate(members):
            total += float(preds.macs[m][i])
            run = [preds.outputs[x][i].astype(np.float32) for x in members[: k + 1]]
            p = np.mean(run, axis=0) if combine == "mean" else run[-1]
            if k == len(members) - 1 or confidence(p[None])[0] >= thresholds[k]:
                correct.append(p.argmax() == preds.targets[i])
                cost.append(total)
                stages.append(k)
                break
    return 100 * np.mean(correct), np.mean(cost), np.bincount(stages, minlength=len(members)) / len(stages)


@pytest.mark.parametrize("confidence", ["max_prob", "margin", "neg_entropy"])
@pytest.mark.parametrize("combine", ["mean", "last"])
def test_cascade_matches_per_sample_reference(classification, confidence, combine):
    preds = random_pool()
    fn = {"max_prob": max_prob, "margin": margin, "neg_entropy": neg_entropy}[confidence]
    members = ["a", "b", "c"]
    # thresholds at quantiles of stage confidences so every stage gets samples
    a, b = (preds.outputs[m].astype(np.float32) for m in "ab")
    stage2 = (a + b) / 2 if combine == "mean" else b
    thresholds = [float(np.quantile(fn(a), 0.6)), float(np.quantile(fn(stage2), 0.7))]
    result = Cascade(members, thresholds, confidence=confidence, combine=combine).evaluate(preds, classification)
    top1, cost, fractions = reference_cascade(preds, members, thresholds, fn, combine)
    assert result.metric == pytest.approx(top1, abs=1e-9)
    assert result.macs_mean == pytest.approx(cost)
    assert result.exit_fractions == pytest.approx(list(fractions))
    assert sum(result.exit_fractions) == pytest.approx(1.0)
    assert all(f > 0 for f in result.exit_fractions)
    assert result.macs_worst == max(sum(preds.macs[m][i] for m in members) for i in range(len(preds.ids)))


def test_ensemble_and_single_match_reference(classification):
    preds = random_pool(1)
    result = Ensemble(["a", "c"]).evaluate(preds, classification)
    mean = (preds.outputs["a"].astype(np.float32) + preds.outputs["c"].astype(np.float32)) / 2
    assert result.metric == pytest.approx(100 * np.mean(mean.argmax(1) == preds.targets))
    assert result.macs_mean == pytest.approx(np.mean(preds.macs["a"] + preds.macs["c"]))
    single = Single("b").evaluate(preds, classification)
    assert single.metric == pytest.approx(100 * np.mean(preds.outputs["b"].argmax(1) == preds.targets))
    assert single.macs_worst == preds.macs["b"].max()


def test_metric_is_from_summed_statistics(classification):
    preds = random_pool(2)
    result = Ensemble(["a", "b"]).evaluate(preds, classification)
    correct, count = result.statistics
    assert count == len(preds.ids)
    assert result.metric == pytest.approx(100 * correct / count)


def test_threshold_extremes(classification):
    preds = random_pool(3)
    always_first = Cascade(["a", "b"], -np.inf).evaluate(preds, classification)
    assert always_first.exit_fractions == [1.0, 0.0]
    assert always_first.metric == pytest.approx(Single("a").evaluate(preds, classification).metric)
    never_first = Cascade(["a", "b"], np.inf).evaluate(preds, classification)
    assert never_first.exit_fractions == [0.0, 1.0]
    assert never_first.metric == pytest.approx(Ensemble(["a", "b"]).evaluate(preds, classification).metric)


def test_confidence_functions():
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.4, 0.2]], dtype=np.float32)
    assert max_prob(p) == pytest.approx([0.7, 0.4])
    assert margin(p) == pytest.approx([0.5, 0.0])
    assert neg_entropy(p) == pytest.approx((p * np.log(p)).sum(1))
    per_pixel = np.stack([p.T, p.T], axis=-1)[None].repeat(2, 0)  # (2, 3, 2, 2)
    assert max_prob(per_pixel) == pytest.approx([0.55, 0.55])


def test_bad_committees(classification):
    preds = random_pool(4)
    assert Cascade(["a", "b", "c"], [0.7]).thresholds == [0.7, 0.7]
    assert Cascade(["a", "b", "c"], 0.7).thresholds == [0.7, 0.7]
    with pytest.raises(CommitteeError, match="needs 2 thresholds"):
        Cascade(["a", "b", "c"], [0.5, 0.5, 0.5])
    with pytest.raises(CommitteeError, match="at least 2"):
        Ensemble(["a"])
    with pytest.raises(CommitteeError, match="no cached outputs for \\['zzz'\\]"):
        Ensemble(["a", "zzz"]).evaluate(preds, classification)
    with pytest.raises(CommitteeError, match="unknown confidence 'max_probability'; did you mean 'max_prob'"):
        Cascade(["a", "b"], 0.5, confidence="max_probability")
    bad = dict(preds.outputs, c=np.zeros((len(preds.ids), 5), np.float16))
    with pytest.raises(CommitteeError, match="different numbers of classes .*c: 5"):
        PoolPredictions(preds.ids, preds.targets, bad, preds.macs)


def test_a_threshold_outside_the_confidence_range_is_refused_where_a_cascade_is_made():
    """Cascade(..., [1.5]) with max_prob (in the API or an edited card) lets no sample exit; the CLI
    refused it but the API took it. +inf (a stage the search found no sample should exit at) and -inf
    (every sample exits) stay."""
    from committee_tasks import Cascade

    with pytest.raises(CommitteeError, match=r"threshold 1.5 is refused: thresholds of max_prob must be in \[0, 1\]"):
        Cascade(["a", "b"], [1.5])
    with pytest.raises(CommitteeError, match=r"threshold 0.5 is refused: thresholds of neg_entropy must be <= 0"):
        Cascade(["a", "b"], 0.5, confidence="neg_entropy")
    assert Cascade(["a", "b", "c"], [float("inf"), -np.inf]).thresholds == [float("inf"), -np.inf]


def test_a_cascade_retyped_from_its_name_is_the_same_committee():
    """Names printed thresholds to six digits: a fitted 0.5067596435546875 printed as 0.50676, which
    lets the samples at 0.50675964 through no more; retyped, it was another committee under the
    same name. Names now read back as the same thresholds (float32's shortest text)."""
    import re

    from committee_tasks.committees.scoring import Cascade

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(10) * 0.3, size=500).astype(np.float16).astype(np.float32)
    confidence = probs.max(axis=1)
    # a threshold the exact sweep puts on a sample's confidence, one whose six digits round up
    ordered = np.sort(confidence)
    k = next(k for k in range(100, 500) if float(f"{ordered[k]:g}") > ordered[k] and ordered[k - 1] < ordered[k])
    fitted = float(ordered[k])
    cascade = Cascade(["a", "b"], [fitted])
    assert (confidence >= float(f"{fitted:g}")).sum() < (confidence >= fitted).sum()  # six digits: another one
    typed = [float(t) for t in re.search(r"@(.*)$", cascade.name)[1].split(",")]
    again = Cascade(["a", "b"], typed)
    assert again.name == cascade.name
    np.testing.assert_array_equal(again.exits(0, probs), cascade.exits(0, probs))
    assert cascade.exits(0, probs).sum() == (confidence >= fitted).sum()
    assert Cascade(["a", "b"], [0.95, ]).name == "cascade(a>b)@0.95" and Cascade(["a", "b"], 1.0).name.endswith("@1")
