"""The core's statistics-caching path (tasks whose outputs are too big to cache), on a toy
per-position task without any third-party model library: subset statistics against a numpy
recomputation, reuse, resume after an interruption, and committees/search reading them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from committee_tasks.engine.cache import PredictionCache
from committee_tasks.committees.scoring import Cascade, Ensemble, Single
from committee_tasks.core.errors import CommitteeError
from committee_tasks.engine.loop import LoopOptions, evaluate_pool
from committee_tasks.search.exhaustive import subset_table
from committee_tasks.core.members import Member
from committee_tasks.core.samples import Sample, SampleDataset
from committee_tasks.core.task import Task

CLASSES, SIZE, N = 3, 4, 10


class Maps(SampleDataset):
    name = "maps"

    def __init__(self):
        rng = np.random.default_rng(0)
        self.data = rng.normal(size=(N, 2, SIZE, SIZE)).astype(np.float32)
        self.labels = rng.integers(0, CLASSES, size=(N, SIZE, SIZE))

    @property
    def ids(self):
        return [f"m{i}" for i in range(N)]

    def fingerprint(self) -> str:
        return "maps-v1"

    def __getitem__(self, i):
        return Sample(self.ids[i], torch.from_numpy(self.data[i]), torch.from_numpy(self.labels[i]))


class PixelAccuracy(Task):
    """Per-position classification scored by pixel accuracy; maps are not cached."""

    name = "toy_maps"
    caches_outputs = False
    max_subset_size = 2

    def zoo(self):
        return {}

    def to_probs(self, outputs):
        return torch.softmax(outputs, dim=1)

    def list_datasets(self):
        return ["maps"]

    def build_dataset(self, name, root, **options):
        return Maps()

    def sample_statistics(self, combined, targets):
        correct = (combined.argmax(1) == targets).reshape(len(targets), -1)
        return np.stack([correct.sum(1), np.full(len(targets), correct.shape[1])], axis=1).astype(np.float64)

    def metric(self, summed):
        summed = np.asarray(summed, dtype=np.float64)
        return 100 * summed[..., 0] / summed[..., 1]


class Identity:
    def __call__(self, x):
        return x

    def __repr__(self):
        return "Identity()"


class Counting(nn.Module):
    def __init__(self, seed: int, fail_after: int | None = None):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(2, CLASSES, 1)
        self.calls, self.fail_after = 0, fail_after

    def forward(self, x):
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyboardInterrupt  # an interruption mid-run
        return self.conv(x)


def members(fail_after=None):
    task = PixelAccuracy()
    return [Member(f"m{k}", Counting(k, fail_after if k == 2 else None), Identity(), f"w{k}", CLASSES, task.to_probs)
            for k in range(3)]


def reference(ms, dataset):
    x = torch.from_numpy(dataset.data)
    with torch.no_grad():
        return {m.name: torch.softmax(m.module.conv(x), dim=1).numpy() for m in ms}


def test_subset_statistics_committees_and_search(tmp_path):
    task, dataset, ms = PixelAccuracy(), Maps(), members()
    preds, _ = evaluate_pool(task, ms, dataset, PredictionCache(tmp_path), options=LoopOptions(
        batch_size=4, num_workers=0, progress=False))
    assert not preds.outputs and len(preds.subsets) == 3 + 3  # singles and pairs (max_subset_size 2)
    probs = reference(ms, dataset)
    for subset in (["m0"], ["m1", "m2"], ["m0", "m2"]):
        mean = sum(probs[m] for m in subset) / len(subset)
        record = preds.record(subset)
        np.testing.assert_array_equal(record.statistics, task.sample_statistics(mean, dataset.labels))
        np.testing.assert_allclose(record.confidence["max_prob"], mean.max(1).mean((1, 2)), rtol=1e-6)
    ensemble = Ensemble(["m0", "m1"]).evaluate(preds, task)
    mean = (probs["m0"] + probs["m1"]) / 2
    assert ensemble.metric == pytest.approx(task.metric(task.sample_statistics(mean, dataset.labels).sum(0)))
    threshold = float(np.median(probs["m0"].max(1).mean((1, 2))))
    cascade = Cascade(["m0", "m1"], threshold).evaluate(preds, task)
    exits = probs["m0"].max(1).mean((1, 2)) >= threshold
    assert cascade.exit_fractions[0] == pytest.approx(exits.mean())
    with pytest.raises(CommitteeError, match="no cached statistics for the combination m0\\+m1\\+m2"):
        Ensemble(["m0", "m1", "m2"]).evaluate(preds, task)
    with pytest.raises(CommitteeError, match="confidence 'margin_x'|unknown confidence"):
        Cascade(["m0", "m1"], 0.5, confidence="margin_x")
    table = subset_table(preds, ["m0", "m1", "m2"], task, max_size=2)
    np.testing.assert_array_equal(table.statistics[(1, 2)], preds.record(["m1", "m2"]).statistics)
    assert Single("m2").evaluate(preds, task).metric == pytest.approx(
        task.metric(task.sample_statistics(probs["m2"], dataset.labels).sum(0)))


def test_reuse_and_resume_after_interruption(tmp_path):
    task, dataset = PixelAccuracy(), Maps()
    options = LoopOptions(batch_size=4, num_workers=0, progress=False, shard_size=1)
    with pytest.raises(KeyboardInterrupt):
        # m2's calls: batch 1, its MAC count, batch 2, then batch 3 is interrupted
        evaluate_pool(task, members(fail_after=3), dataset, PredictionCache(tmp_path), options=options)
    ms = members()
    preds, _ = evaluate_pool(task, ms, dataset, PredictionCache(tmp_path), options=options)
    # batches 1-2 (8 samples) were finished before the interruption: only the last 2 ran again,
    # one forward pass each plus the MAC count
    assert [m.module.calls for m in ms] == [2, 2, 2]
    assert len(preds.ids) == N
    again = members()
    preds2, _ = evaluate_pool(task, again, dataset, PredictionCache(tmp_path), options=options)
    assert [m.module.calls for m in again] == [0, 0, 0]  # all from the cache
    for key, record in preds.subsets.items():
        np.testing.assert_array_equal(record.statistics, preds2.subsets[key].statistics)
