"""Batches prepared in a background thread (engine/background.py): order, errors, early stops."""
from __future__ import annotations

import threading
import time

import pytest

from committee_tasks.engine.background import BackgroundBatches


def test_batches_arrive_in_order_and_all_of_them():
    assert list(BackgroundBatches(range(100), prefetch=3)) == list(range(100))
    assert len(BackgroundBatches(range(7))) == 7


def test_batches_are_made_in_another_thread_ahead_of_the_consumer():
    made_in = []

    def batches():
        for i in range(4):
            made_in.append(threading.current_thread().name)
            yield i

    seen = []
    for batch in BackgroundBatches(batches(), prefetch=2):
        if batch == 0:
            time.sleep(0.2)  # the device busy with batch 0: the next ones are made meanwhile
            assert len(made_in) >= 3
        seen.append(batch)
    assert seen == [0, 1, 2, 3]
    assert set(made_in) == {"committee-batches"}


def test_an_error_in_the_thread_is_raised_where_its_batch_would_have_been():
    def batches():
        yield 0
        yield 1
        raise OSError("disk gone")

    seen = []
    with pytest.raises(OSError, match="disk gone"):
        for batch in BackgroundBatches(batches()):
            seen.append(batch)
    assert seen == [0, 1]


def test_a_consumer_that_stops_early_stops_the_thread():
    taken = []

    def batches():
        for i in range(1000):
            taken.append(i)
            yield i

    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        for batch in BackgroundBatches(batches(), prefetch=2):
            if batch == 3:
                raise KeyboardInterrupt
    assert threading.active_count() == before  # joined, not left running
    assert len(taken) <= 3 + 1 + 2 + 1  # consumed, in hand, queued, and the one waiting to be queued
    with pytest.raises(ValueError, match="prefetch must be at least 1, got 0"):
        BackgroundBatches([], prefetch=0)


def test_on_cuda_without_workers_the_loop_stacks_each_batch_into_pinned_memory_in_a_thread(monkeypatch):
    """make_loader for a CUDA device and no worker processes: BackgroundBatches over batches
    stacked straight into (here, stand-in) pinned memory, equal to the plain loader's."""
    import torch

    from committee_tasks import ArrayDataset
    from committee_tasks.core import in_memory
    from committee_tasks.engine import inputs, pinned

    allocated = []

    def stand_in(shape, dtype):  # this machine has no CUDA driver to pin memory with
        allocated.append((shape, threading.current_thread().name))
        return torch.empty(shape, dtype=dtype)

    monkeypatch.setattr(pinned, "pinned_empty", stand_in)
    data = ArrayDataset(torch.randn(10, 3, 8, 8), torch.arange(10), name="tiny")
    transforms = {"k": in_memory.AsTensor()}
    threaded = inputs.make_loader(data, transforms, list(range(10)), 4, 0, pin_memory=True)
    plain = inputs.make_loader(data, transforms, list(range(10)), 4, 0, pin_memory=False)
    assert isinstance(threaded, BackgroundBatches) and not isinstance(plain, BackgroundBatches)
    got, want = list(threaded), list(plain)
    assert [b.ids for b in got] == [b.ids for b in want] == [["0", "1", "2", "3"], ["4", "5", "6", "7"], ["8", "9"]]
    assert all(torch.equal(g.inputs["k"], w.inputs["k"]) for g, w in zip(got, want))
    assert allocated == [((4, 3, 8, 8), "committee-batches"), ((4, 3, 8, 8), "committee-batches"),
                         ((2, 3, 8, 8), "committee-batches")]


def test_the_cudnn_autotuner_is_on_only_inside_the_block_and_never_against_determinism(monkeypatch):
    import torch

    from committee_tasks.core.devices import cudnn_autotuner

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    with cudnn_autotuner(cuda):
        assert torch.backends.cudnn.benchmark
    assert not torch.backends.cudnn.benchmark
    with cudnn_autotuner(cpu), cudnn_autotuner(cuda, on=False):
        assert not torch.backends.cudnn.benchmark
    with pytest.raises(RuntimeError):
        with cudnn_autotuner(cuda):
            raise RuntimeError("a member failed")
    assert not torch.backends.cudnn.benchmark  # restored on the way out of an error too
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    with cudnn_autotuner(cuda):
        assert not torch.backends.cudnn.benchmark
