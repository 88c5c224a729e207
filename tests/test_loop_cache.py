"""The shared loop and the prediction cache: reuse, resume after interruption, invalidation,
skipped samples, non-finite outputs."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from committee_tasks import CommitteeError, LoopOptions, Member, PredictionCache, evaluate_pool
from committee_tasks.core.registry import get_task
from committee_tasks.engine.loop import NonFiniteOutputError
from committee_tasks_builtin.classification.datasets import DigitsDataset

OPTIONS = dict(batch_size=32, num_workers=0, shard_size=64, progress=False)


def fresh(members):
    """Copies whose `predict` can be patched without touching the session's members."""
    return [copy.copy(m) for m in members]


def count_calls(monkeypatch, members):
    calls = {m.name: 0 for m in members}
    for m in members:
        original = m.predict

        def predict(x, _orig=original, _name=m.name):
            calls[_name] += len(x)
            return _orig(x)

        monkeypatch.setattr(m, "predict", predict)
    return calls


def test_second_run_reuses_cache(classification, digits_members, tmp_path, monkeypatch):
    cache = PredictionCache(tmp_path)
    members = fresh(digits_members.values())
    first, _ = evaluate_pool(classification, members, DigitsDataset(), cache, limit=200, options=LoopOptions(**OPTIONS))
    shards = sorted(tmp_path.rglob("shard-*.npz"))
    assert len(shards) == 3 * 4  # 200 samples in shards of 64 (4 per member)
    assert not list(tmp_path.rglob("*.tmp"))
    members = fresh(digits_members.values())
    calls = count_calls(monkeypatch, members)
    second, _ = evaluate_pool(classification, members, DigitsDataset(), cache, limit=200, options=LoopOptions(**OPTIONS))
    assert calls == {m.name: 0 for m in members}
    for name in first.outputs:
        np.testing.assert_array_equal(first.outputs[name], second.outputs[name])
    np.testing.assert_array_equal(first.ids, second.ids)
    # a larger run computes only the new samples
    more, _ = evaluate_pool(classification, members, DigitsDataset(), cache, limit=300, options=LoopOptions(**OPTIONS))
    new = len(set(more.ids) - set(first.ids))
    assert calls == {m.name: new for m in members}


def test_interrupted_run_resumes_without_recomputing(classification, digits_members, tmp_path, monkeypatch):
    members = fresh(digits_members.values())
    reference, _ = evaluate_pool(classification, members, DigitsDataset(), PredictionCache(tmp_path / "ref"),
                                 limit=300, options=LoopOptions(**OPTIONS))
    members = fresh(digits_members.values())
    failing = members[1]
    original, batches = failing.predict, []

    def predict_then_crash(x):
        batches.append(len(x))
        if len(batches) == 5:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the 5th batch
        return original(x)

    monkeypatch.setattr(failing, "predict", predict_then_crash)
    cache = PredictionCache(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        evaluate_pool(classification, members, DigitsDataset(), cache, limit=300, options=LoopOptions(**OPTIONS))
    # members before the failing one finished batch 5, the others kept batches 1-4
    done = {m.name: sum(len(np.load(s)["ids"]) for s in cache.root.rglob(f"{m.name}-*/shard-*.npz")) for m in members}
    assert done == {"digits_cnn_s": 160, "digits_cnn_m": 128, "digits_cnn_l": 128}

    members = fresh(digits_members.values())
    calls = count_calls(monkeypatch, members)
    resumed, _ = evaluate_pool(classification, members, DigitsDataset(), cache, limit=300, options=LoopOptions(**OPTIONS))
    assert calls == {m.name: 300 - done[m.name] for m in members}
    np.testing.assert_array_equal(resumed.ids, reference.ids)
    for name in reference.outputs:
        np.testing.assert_allclose(resumed.outputs[name], reference.outputs[name], atol=2e-3)
        np.testing.assert_array_equal(resumed.outputs[name].argmax(1), reference.outputs[name].argmax(1))


class ShiftedTransform:
    def __init__(self, inner):
        self.inner = inner

    def __call__(self, image):
        return self.inner(image) + 0.01

    def __repr__(self):
        return f"Shifted({self.inner!r}, +0.01)"


def test_changed_weights_or_transform_invalidate(classification, digits_members, tmp_path, monkeypatch):
    cache = PredictionCache(tmp_path)
    base = digits_members["digits_cnn_s"]
    evaluate_pool(classification, [copy.copy(base)], DigitsDataset(), cache, limit=64, options=LoopOptions(**OPTIONS))
    changed_weights = Member(base.name, base.module, base.transform, "0" * 64, base.num_classes, base.to_probs)
    changed_transform = Member(base.name, base.module, ShiftedTransform(base.transform), base.weights_sha256,
                               base.num_classes, base.to_probs)
    for member in (changed_weights, changed_transform):
        calls = count_calls(monkeypatch, [member])
        evaluate_pool(classification, [member], DigitsDataset(), cache, limit=64, options=LoopOptions(**OPTIONS))
        assert calls[base.name] == 64, "a changed member must not read stale outputs"
    assert len({p.parent for p in tmp_path.rglob("shard-*.npz")}) == 3


class DigitsWithCorruptSample(DigitsDataset):
    def __getitem__(self, index):
        if index == 7:
            raise OSError("image file is truncated")
        return super().__getitem__(index)


def test_corrupt_sample_is_skipped_counted_and_remembered(classification, digits_members, tmp_path):
    cache = PredictionCache(tmp_path)
    members = fresh(digits_members.values())
    dataset = DigitsWithCorruptSample()
    preds, _ = evaluate_pool(classification, members, dataset, cache, limit=None, options=LoopOptions(**OPTIONS))
    bad_id = dataset.ids[7]
    assert preds.skipped == {bad_id: "OSError: image file is truncated"}
    assert len(preds.ids) == len(dataset) - 1 and bad_id not in preds.ids
    again, _ = evaluate_pool(classification, members, dataset, cache, limit=None, options=LoopOptions(**OPTIONS))
    assert again.skipped == preds.skipped


def test_non_finite_output_names_member_and_sample(classification, digits_members, tmp_path, monkeypatch):
    member = copy.copy(digits_members["digits_cnn_m"])
    original = member.predict

    def predict_nan(x):
        out = original(x)
        out[3] = float("nan")
        return out

    monkeypatch.setattr(member, "predict", predict_nan)
    dataset = DigitsDataset()
    with pytest.raises(NonFiniteOutputError, match=f"'digits_cnn_m' produced NaN/inf .*'{dataset.ids[3]}'"):
        evaluate_pool(classification, [member], dataset, PredictionCache(tmp_path), limit=None,
                      options=LoopOptions(**OPTIONS))


def test_members_with_different_class_counts_are_refused(classification, digits_members, tmp_path):
    base = digits_members["digits_cnn_s"]
    other = Member("other", base.module, base.transform, base.weights_sha256, 12, base.to_probs)
    with pytest.raises(Exception, match=r"different numbers of classes \(\{'digits_cnn_s': 10, 'other': 12\}\)"):
        evaluate_pool(classification, [base, other], DigitsDataset(), PredictionCache(tmp_path), limit=8,
                      options=LoopOptions(**OPTIONS))


def test_preprocessing_without_stable_repr_is_refused_where_it_must_be_found_again(digits_members, tmp_path):
    """A lambda's repr holds a memory address: a disk cache or a saved card could never find it
    again. A memory cache (a notebook session) takes it; it refused it too."""
    from committee_tasks import Single
    from committee_tasks.committees.cards import CommitteeCard
    from committee_tasks.engine.cache import MemoryPredictionCache

    base = digits_members["digits_cnn_s"]
    member = Member(base.name, base.module, lambda image: base.transform(image), base.weights_sha256,
                    base.num_classes, base.to_probs)
    task = get_task("classification")
    with pytest.raises(CommitteeError, match="has no stable repr .* memory address, so a prediction cache on disk"):
        evaluate_pool(task, [member], DigitsDataset(), PredictionCache(tmp_path), limit=8,
                      options=LoopOptions(**OPTIONS))
    in_memory, _ = evaluate_pool(task, [member], DigitsDataset(), MemoryPredictionCache(), limit=8,
                                 options=LoopOptions(**OPTIONS))
    cached, _ = evaluate_pool(task, [base], DigitsDataset(), MemoryPredictionCache(), limit=8,
                              options=LoopOptions(**OPTIONS))
    np.testing.assert_array_equal(in_memory.outputs[base.name], cached.outputs[base.name])
    card = CommitteeCard.from_committee(Single(base.name), "classification", {base.name: member})
    with pytest.raises(CommitteeError, match="memory address, so a card loaded in another session"):
        card.save(tmp_path / "card.json")


def test_outputs_are_flushed_by_time_as_well_as_by_count(classification, digits_members, tmp_path, monkeypatch):
    """Shards of 4,096 samples would keep a slow run's work in memory for hours: a shard is also
    written once its oldest row is flush_seconds old, so a kill loses at most that much."""
    from committee_tasks.engine import loop

    clock = {"now": 0.0}
    monkeypatch.setattr(loop.time, "monotonic", lambda: clock["now"])
    members = fresh(list(digits_members.values())[:1])
    original = members[0].predict

    def slow(x):  # each batch "takes" 25 s
        clock["now"] += 25.0
        return original(x)

    monkeypatch.setattr(members[0], "predict", slow)
    preds, throughput = evaluate_pool(classification, members, DigitsDataset(), PredictionCache(tmp_path), limit=320,
                                      options=LoopOptions(batch_size=32, num_workers=0, progress=False, flush_seconds=60))
    sizes = sorted(len(np.load(s)["ids"]) for s in tmp_path.rglob("shard-*.npz"))
    assert sizes == [32, 96, 96, 96]  # every 3rd batch (75 s >= 60 s), then the rest at the end
    assert set(throughput.phases) >= {"setup", "waiting_for_data", "members", "outputs", "cache_writes"}
    assert throughput.phases["samples"] == 320


def test_flush_seconds_is_validated():
    from committee_tasks.api.options import ExecutionOptions
    from committee_tasks.core.errors import CommitteeError

    for bad in (-1, float("nan"), float("inf"), "10"):
        with pytest.raises(CommitteeError, match="--flush-seconds must be a finite number >= 0"):
            ExecutionOptions(flush_seconds=bad)
    assert ExecutionOptions(flush_seconds=0).flush_seconds == 0
