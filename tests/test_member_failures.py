"""A member that fails on one odd sample: the loop skips and counts that sample (every member's
cache leaves it out) instead of ending a long run; a member that fails on everything, a batch
that fails only as a whole, and running out of memory still end the run with the member's error."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from committee_tasks import ArrayDataset, LoopOptions, Member, PredictionCache, evaluate_pool
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.registry import get_task

ODD = 1000.0  # a sample whose first value is this makes the picky member raise


class Picky(torch.nn.Module):
    """A linear classifier that raises on any batch holding an odd sample (as a model raises on
    an input size it cannot take), or on every batch when ``always``; counts its calls."""

    def __init__(self, classes: int = 3, raise_type: type[BaseException] = ValueError, always: bool = False,
                 seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.head = torch.nn.Linear(8, classes)
        self.raise_type, self.always, self.calls = raise_type, always, 0

    def forward(self, x):
        self.calls += 1
        if self.always or (x[:, 0] == ODD).any():
            raise self.raise_type("cannot take this input")
        return self.head(x)


def arrays(n: int = 20, odd: tuple[int, ...] = (5, 13)) -> ArrayDataset:
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(n, 8)).astype(np.float32)
    inputs[list(odd), 0] = ODD
    return ArrayDataset(inputs, rng.integers(0, 3, n))


def options(batch_size: int = 4) -> LoopOptions:
    return LoopOptions(batch_size=batch_size, num_workers=0, device="cpu", progress=False)


def members(**picky) -> list[Member]:
    good = Member.from_module(Picky(seed=1), name="good")
    good.module.forward = lambda x, head=good.module.head: head(x)  # takes every sample
    return [good, Member.from_module(Picky(**picky), name="picky")]


@pytest.mark.parametrize("batch_size", [4, 1])
def test_a_sample_a_member_fails_on_alone_is_skipped_and_counted(classification, tmp_path, batch_size):
    dataset, pool = arrays(), members()
    preds, _ = evaluate_pool(classification, pool, dataset, PredictionCache(tmp_path), options=options(batch_size))
    assert sorted(preds.skipped) == ["13", "5"] and "5" not in preds.ids and len(preds.ids) == 18
    reason = preds.skipped["5"]
    assert reason.startswith("member failure: member 'picky' fails on this sample alone (input shape (1, 8)): "
                             "ValueError: cannot take this input")
    # the other samples' outputs are the members' own, for both members (the good one ran on the
    # odd samples too, before the picky one failed: those outputs are kept nowhere)
    kept = [int(i) for i in preds.ids]
    for m in pool:
        with torch.no_grad():
            expected = torch.softmax(m.module.head(torch.from_numpy(dataset.inputs[kept])), 1).numpy()
        np.testing.assert_allclose(preds.outputs[m.name].astype(np.float32), expected, atol=1e-3)
    # a second run reads everything from the cache: the odd samples stay skipped, no member runs
    calls = pool[1].module.calls
    again, _ = evaluate_pool(classification, pool, dataset, PredictionCache(tmp_path), options=options(batch_size))
    assert pool[1].module.calls == calls and again.skipped == preds.skipped and list(again.ids) == list(preds.ids)


def test_the_reason_is_counted_in_the_report(tmp_path):
    from committee_tasks.reporting.eval_text import skip_kinds

    preds, _ = evaluate_pool(get_task("classification"), members(), arrays(), PredictionCache(tmp_path),
                             options=options())
    assert skip_kinds(preds.skipped) == "2 member failure"


@pytest.mark.parametrize("picky, message", [
    ({"always": True}, r"member 'picky' failed on a batch of inputs of shape \(4, 8\)"),  # the member, not the data
    ({"raise_type": MemoryError}, "member 'picky' failed on a batch"),  # out of memory: never a skip
    ({"raise_type": torch.AcceleratorError}, "member 'picky' failed on a batch"),  # a CUDA error: nor this
])
def test_failures_that_are_not_the_samples_end_the_run(classification, tmp_path, picky, message):
    with pytest.raises(CommitteeError, match=message) as raised:
        evaluate_pool(classification, members(**picky), arrays(), PredictionCache(tmp_path), options=options())
    assert isinstance(raised.value.__cause__, picky.get("raise_type", ValueError))


def test_a_batch_that_fails_only_as_a_whole_ends_the_run(classification, tmp_path):
    pool = members()
    pool[1].module.forward = lambda x: (_ for _ in ()).throw(RuntimeError("batch too large")) if len(x) > 1 \
        else pool[1].module.head(x)
    with pytest.raises(CommitteeError, match="RuntimeError: batch too large"):
        evaluate_pool(classification, pool, arrays(odd=()), PredictionCache(tmp_path), options=options())


def test_an_odd_sample_in_a_later_batch_after_every_earlier_one_ran(classification, tmp_path):
    """Batch 1 (samples 0..3) runs; the next batch holds only odd samples: skipped, not fatal."""
    preds, _ = evaluate_pool(classification, members(), arrays(n=8, odd=(4, 5, 6, 7)), PredictionCache(tmp_path),
                             options=options())
    assert list(preds.ids) == ["0", "1", "2", "3"] and sorted(preds.skipped) == ["4", "5", "6", "7"]


class PickyConv(torch.nn.Module):
    """A per-pixel segmentation head that raises on a batch holding an odd image when ``picky``."""

    def __init__(self, seed: int, picky: bool = False):
        super().__init__()
        torch.manual_seed(seed)
        self.conv, self.picky = torch.nn.Conv2d(3, 4, 1), picky

    def forward(self, x):
        if self.picky and (x[:, 0, 0, 0] == ODD).any():
            raise ValueError("odd image")
        return self.conv(x)


def test_statistics_caching_tasks_skip_the_sample_in_every_subset(tmp_path):
    """Segmentation caches every member subset's statistics from the batch's outputs together: a
    failed image leaves all of them, and the rest equal a run without the odd images."""
    task = get_task("segmentation")
    rng = np.random.default_rng(0)
    images, labels = rng.normal(size=(10, 3, 6, 6)).astype(np.float32), rng.integers(0, 4, (10, 6, 6))
    images[[3, 7], 0, 0, 0] = ODD
    pool = [Member.from_module(PickyConv(1), name="a", task=task),
            Member.from_module(PickyConv(2, picky=True), name="b", task=task)]
    preds, _ = evaluate_pool(task, pool, ArrayDataset(images, labels), PredictionCache(tmp_path / "odd"),
                             options=options())
    assert sorted(preds.skipped) == ["3", "7"] and preds.skipped["3"].startswith("member failure: member 'b'")
    kept = [int(i) for i in preds.ids]
    clean, _ = evaluate_pool(task, pool, ArrayDataset(images[kept], labels[kept]), PredictionCache(tmp_path / "clean"),
                             options=options())
    for subset in (["a"], ["b"], ["a", "b"]):
        np.testing.assert_array_equal(preds.record(subset).statistics, clean.record(subset).statistics)


class DyingWorker(ArrayDataset):
    """Its DataLoader worker is killed (as the kernel's OOM killer does) when it reads sample 30,
    which it reaches (the batches it prepares ahead taken) while a member runs."""

    def __getitem__(self, index):
        if index == 30 and torch.utils.data.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__getitem__(index)


def test_a_dataloader_worker_that_dies_is_not_blamed_on_a_member(classification, tmp_path):
    """torch raises a dead worker's RuntimeError wherever the main thread is, often inside a
    member's forward pass: the run ended with "member 'resnet20' failed on a batch of inputs ...
    DataLoader worker (pid 5125) is killed by signal"."""
    import time

    source = arrays(n=40, odd=())
    dataset = DyingWorker(source.inputs, source.targets)
    slow = Member.from_module(Picky(seed=1), name="slow")
    slow.module.forward = lambda x, head=slow.module.head: (time.sleep(0.2), head(x))[1]  # the worker dies meanwhile
    with pytest.raises(CommitteeError, match=r"the data loading failed, not a member: DataLoader worker \(pid.*\) .*"
                                             r"Run the same command again to go on, with fewer --workers"):
        evaluate_pool(classification, [slow], dataset, PredictionCache(tmp_path),
                      options=LoopOptions(batch_size=4, num_workers=1, device="cpu", progress=False))
