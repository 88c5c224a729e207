"""Live early-exit execution gives exactly the predictions computed from the cache."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from committee_tasks import Cascade, CommitteeExecutor, Ensemble, LoopOptions, PredictionCache, Single, evaluate_pool
from committee_tasks.engine.inputs import preprocessed_batches
from committee_tasks_builtin.classification.datasets import DigitsDataset


@pytest.fixture(scope="module")
def cached(classification, digits_members, tmp_path_factory):
    members = {n: copy.copy(m) for n, m in digits_members.items()}
    dataset = DigitsDataset()
    preds, _ = evaluate_pool(classification, list(members.values()), dataset,
                             PredictionCache(tmp_path_factory.mktemp("cache")),
                             options=LoopOptions(batch_size=64, num_workers=0, progress=False))
    return members, dataset, preds


@pytest.mark.parametrize("committee", [
    Cascade(["digits_cnn_s", "digits_cnn_m", "digits_cnn_l"], [0.95, 0.9]),
    Cascade(["digits_cnn_s", "digits_cnn_l"], 0.99, confidence="margin"),
    Cascade(["digits_cnn_s", "digits_cnn_m", "digits_cnn_l"], [0.9, 0.9], combine="last"),
    Cascade(["digits_cnn_m", "digits_cnn_l"], -1.0, confidence="neg_entropy"),
    Ensemble(["digits_cnn_s", "digits_cnn_m", "digits_cnn_l"]),
    Single("digits_cnn_m"),
], ids=lambda c: c.name)
def test_executor_equals_cache_computation(classification, cached, committee):
    members, dataset, preds = cached
    expected = committee.evaluate(preds, classification)
    batches = preprocessed_batches(dataset, list(members.values()), preds.ids, len(preds.ids), batch_size=100)
    live = CommitteeExecutor(committee, members, classification, device="cpu").run(batches)
    if expected.exit_stage is not None:
        np.testing.assert_array_equal(live.exit_stage, expected.exit_stage)
        assert 0 < expected.exit_fractions[0] <= 1
    np.testing.assert_array_equal(live.combined.argmax(1), expected.combined.argmax(1))
    np.testing.assert_array_equal(live.combined, expected.combined)
    np.testing.assert_array_equal(live.macs, expected.macs)
    assert live.throughput > 0
