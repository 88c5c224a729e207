"""Live early-exit execution gives exactly the predictions computed from the cache."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from committee_tasks import (Cascade, CommitteeError, CommitteeExecutor, Ensemble, LoopOptions, Member, PredictionCache,
                             Single, evaluate_pool)
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
@pytest.mark.parametrize("later_stages", ["gathered", "per-batch"])
def test_executor_equals_cache_computation(classification, cached, committee, later_stages):
    members, dataset, preds = cached
    expected = committee.evaluate(preds, classification)
    batches = preprocessed_batches(dataset, list(members.values()), preds.ids, len(preds.ids), batch_size=100)
    live = CommitteeExecutor(committee, members, classification, device="cpu", later_stages=later_stages).run(batches)
    if expected.exit_stage is not None:
        np.testing.assert_array_equal(live.exit_stage, expected.exit_stage)
        assert 0 < expected.exit_fractions[0] <= 1
    np.testing.assert_array_equal(live.combined.argmax(1), expected.combined.argmax(1))
    np.testing.assert_array_equal(live.combined, expected.combined)
    np.testing.assert_array_equal(live.macs, expected.macs)
    assert live.throughput > 0
    timed = CommitteeExecutor(committee, members, classification, device="cpu",
                              later_stages=later_stages).run(batches, keep_outputs=False)
    assert timed.combined is None  # timing only: outputs dropped batch by batch
    np.testing.assert_array_equal(timed.exit_stage, live.exit_stage)
    np.testing.assert_array_equal(timed.macs, live.macs)


class _Scaled(torch.nn.Module):
    """A preprocessing with a stable repr (a second transform key)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def __repr__(self) -> str:
        return f"_Scaled({self.factor})"


class _Recording(Member):
    """A member that records the rows of every batch it runs on."""

    def predict_with_cost(self, inputs):
        self.rows.append(len(inputs))
        return super().predict_with_cost(inputs)


def _linear_members(classification, transforms, features: int = 6):
    """Members over ``features`` features (pooled to 6), 5 classes, recording their batches' rows."""
    torch.manual_seed(0)
    members = {}
    for name, transform in transforms.items():
        module = torch.nn.Sequential(torch.nn.AdaptiveAvgPool1d(6), torch.nn.Flatten(), torch.nn.Linear(6, 5))
        members[name] = _Recording(name, module, transform, f"w-{name}", 5, classification.to_probs)
        members[name].rows = []
    return members, {name: m.rows for name, m in members.items()}


def test_gathered_later_stages_run_full_batches_with_the_same_results(classification):
    """Each later stage runs on full batches of rows gathered across batches (the last one drains
    what is left), a member with another preprocessing gets its own inputs, and every sample's
    output, exit and MACs equal the batch-by-batch cascade's."""
    members, rows = _linear_members(classification, {"a": torch.nn.Identity(), "b": _Scaled(2.0),
                                                      "c": torch.nn.Identity()})
    cascade = Cascade(["a", "b", "c"], [0.3, 0.35])
    torch.manual_seed(1)
    raw = torch.randn(1000, 1, 6)
    batches = [{m.transform_key: m.transform(raw[s:s + 64]) for m in members.values()} for s in range(0, 1000, 64)]
    runs = {}
    for mode in ("gathered", "per-batch"):
        for r in rows.values():
            r.clear()
        runs[mode] = (CommitteeExecutor(cascade, members, classification, device="cpu", later_stages=mode)
                      .run(batches, warmup=0), {n: list(r) for n, r in rows.items()})
    (gathered, seen), (per_batch, seen_per_batch) = runs["gathered"], runs["per-batch"]
    assert 0 < (per_batch.exit_stage == 1).sum() and 0 < (per_batch.exit_stage == 2).sum()
    np.testing.assert_array_equal(gathered.exit_stage, per_batch.exit_stage)
    np.testing.assert_array_equal(gathered.combined, per_batch.combined)
    np.testing.assert_array_equal(gathered.macs, per_batch.macs)
    for name in ("b", "c"):
        assert all(n == 64 for n in seen[name][:-1]) and 0 < seen[name][-1] <= 64, seen[name]
        assert sum(seen[name]) == sum(seen_per_batch[name])  # every row once, as batch by batch
        assert max(seen_per_batch[name]) < 64  # batch by batch, later stages got partial batches
    assert seen["a"] == [64] * 15 + [40]


def test_gathering_never_mixes_inputs_of_different_shapes(classification):
    members, rows = _linear_members(classification, {"a": torch.nn.Identity(), "c": torch.nn.Identity()})
    cascade = Cascade(["a", "c"], 0.3)
    torch.manual_seed(2)
    key = members["a"].transform_key
    batches = [{key: torch.randn(32, 1, 12)}, {key: torch.randn(32, 1, 12)}, {key: torch.randn(32, 1, 9)}]
    gathered = CommitteeExecutor(cascade, members, classification, device="cpu").run(batches, warmup=0)
    seen = list(rows["c"])
    per_batch = CommitteeExecutor(cascade, members, classification, device="cpu",
                                  later_stages="per-batch").run(batches, warmup=0)
    np.testing.assert_array_equal(gathered.exit_stage, per_batch.exit_stage)
    np.testing.assert_array_equal(gathered.combined, per_batch.combined)
    continuing = [(per_batch.exit_stage[s:s + 32] == 1).sum() for s in (0, 32, 64)]
    # the 12-wide rows that went on ran together, then the 9-wide ones on their own
    assert seen == [continuing[0] + continuing[1], continuing[2]] and continuing[2] > 0, (seen, continuing)


def test_cpu_warm_up_runs_the_first_batch_of_each_input_shape(classification):
    """Images of different sizes each count their MACs in the warm-up, not in a timed round."""
    members, rows = _linear_members(classification, {"a": torch.nn.Identity(), "c": torch.nn.Identity()})
    key = members["a"].transform_key
    batches = [{key: torch.randn(n, 1, width)} for n, width in ((8, 12), (7, 12), (6, 9), (5, 12), (4, 9))]
    CommitteeExecutor(Ensemble(["a", "c"]), members, classification, device="cpu").warm_up(batches)
    assert rows == {"a": [8, 6], "c": [8, 6]}
    assert all(set(m._macs_by_shape) == {(1, 12), (1, 9)} for m in members.values())


def test_later_stages_must_be_named_right(classification, cached):
    members, _, _ = cached
    with pytest.raises(CommitteeError, match="later stages 'gather': choose one of gathered, per-batch"):
        CommitteeExecutor(Cascade(["digits_cnn_s", "digits_cnn_m"], 0.9), members, classification, device="cpu",
                          later_stages="gather")


def test_members_come_as_a_dict_or_a_list_and_a_missing_one_is_named(classification, cached):
    """A list raised a TypeError, a missing member a bare KeyError."""
    members, _, _ = cached
    cascade = Cascade(["digits_cnn_s", "digits_cnn_m"], 0.9)
    listed = CommitteeExecutor(cascade, list(members.values()), classification, device="cpu")
    assert [m.name for m in listed.members] == ["digits_cnn_s", "digits_cnn_m"]
    with pytest.raises(CommitteeError, match=r"cascade\(digits_cnn_s>digits_cnn_m\)@0.9 needs member\(s\) "
                                             r"\['digits_cnn_m'\], not among those given: \['digits_cnn_s'\]"):
        CommitteeExecutor(cascade, {"digits_cnn_s": members["digits_cnn_s"]}, classification, device="cpu")
    with pytest.raises(CommitteeError, match="give a dict name -> Member or a list of Members"):
        CommitteeExecutor(cascade, ["digits_cnn_s", "digits_cnn_m"], classification, device="cpu")


@pytest.mark.real_data
def test_cascade_benchmark_runs_both_ways_of_running_later_stages(shared_data, tmp_path):
    """benchmarks/cascade_speed.py on 512 CIFAR-10 images, one round: every row timed quiet and
    beside a busy process, and the cascade set against its members' own speeds (timings are the
    benchmark's business, so a missed speed goal does not fail here)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cascade_speed.py"), "--data-root", str(shared_data),
                           "--samples", "512", "--batch-size", "128", "--rounds", "1", "--loop-samples", "128",
                           "--cache-dir", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    for line in ("resnet56 ", "resnet20 ", "cascade(resnet20>resnet56)@0.9 ", "cascade(resnet20>resnet56)@0.9 per-batch",
                 "exits 91.0% / 9.0%", "the members' own speeds allow", "realized / allowed", "realized / MACs-predicted",
                 "quiet ", "one competing process ", "evaluation loop (resnet20+resnet56, fresh cache, 128 samples)"):
        assert line in done.stdout, (line, done.stdout)


def test_raw_integer_pixels_are_refused_with_the_fix(classification, cached):
    """uint8 pixels where the members take their preprocessing's floats failed in a convolution
    ("Input type (unsigned char) and bias type (float) should be the same")."""
    members, dataset, preds = cached
    executor = CommitteeExecutor(Cascade(["digits_cnn_s", "digits_cnn_m"], 0.9), members, classification, device="cpu")
    batch = preprocessed_batches(dataset, list(members.values()), preds.ids, 8, batch_size=8)[0]
    raw = {k: (v * 255).clamp(0, 255).to(torch.uint8) for k, v in batch.items()}
    with pytest.raises(CommitteeError, match=r"member 'digits_cnn_s' failed on a torch.uint8 batch of shape \(8, 1, 8, "
                                             r"8\) \(.*\); if it takes the float inputs its preprocessing makes, pass "
                                             r"those \(member.transform of each sample\), or raw samples to "
                                             r"predict_samples"):
        executor.run([raw])
    with pytest.raises(CommitteeError, match="failed on a torch.uint8 batch"):
        executor.run_batch(raw)
    assert executor.run_batch(batch)[0].shape[0] == 8  # the preprocessed batch runs
