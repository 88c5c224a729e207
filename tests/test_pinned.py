"""Batches written into pinned memory in slices on several threads give the bytes one
``torch.stack`` / ``pin_memory`` gives. This machine has no CUDA driver to pin memory with, so
the pinned allocator is a stand-in that records who asked for what."""
from __future__ import annotations

import threading

import pytest
import torch

from committee_tasks.engine import pinned


@pytest.fixture
def allocations(monkeypatch):
    made = []

    def stand_in(shape, dtype):
        made.append((tuple(shape), dtype))
        return torch.empty(shape, dtype=dtype)

    monkeypatch.setattr(pinned, "pinned_empty", stand_in)
    return made


def _writers(monkeypatch) -> list[str]:
    """The thread of each torch.stack / copy_ call inside `pinned` (one per slice)."""
    names: list[str] = []
    stack, copy = torch.stack, torch.Tensor.copy_

    def recording_stack(*args, **kwargs):
        names.append(threading.current_thread().name)
        return stack(*args, **kwargs)

    def recording_copy(self, *args, **kwargs):
        names.append(threading.current_thread().name)
        return copy(self, *args, **kwargs)

    monkeypatch.setattr(pinned.torch, "stack", recording_stack)
    monkeypatch.setattr(pinned.torch.Tensor, "copy_", recording_copy)
    return names


@pytest.mark.parametrize("rows,cpus", [(1, 4), (7, 3), (10, 4), (256, 16), (5, 8)])
def test_slices_cover_every_row_once_in_order(monkeypatch, rows, cpus):
    monkeypatch.setattr(pinned, "available_cpus", lambda: cpus)
    slices = pinned.row_slices(rows, pinned.MIN_BYTES_FOR_THREADS)
    assert [r for s in slices for r in range(rows)[s]] == list(range(rows))
    assert len(slices) == min(rows, cpus, pinned.MAX_THREADS)
    assert max(s.stop - s.start for s in slices) - min(s.stop - s.start for s in slices) <= max(1, rows // len(slices))
    assert pinned.row_slices(rows, pinned.MIN_BYTES_FOR_THREADS - 1) == [slice(0, rows)]  # small: one call


def test_an_empty_tensor_is_one_empty_slice(monkeypatch, allocations):
    assert pinned.row_slices(0, pinned.MIN_BYTES_FOR_THREADS) == [slice(0, 0)]
    got = pinned.pin(torch.empty(0, 3, 4))
    assert got.shape == (0, 3, 4) and allocations == [((0, 3, 4), torch.float32)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8, torch.float16])
def test_stacked_in_slices_on_threads_equals_torch_stack(monkeypatch, allocations, dtype):
    monkeypatch.setattr(pinned, "MIN_BYTES_FOR_THREADS", 0)  # threads even for these small tensors
    monkeypatch.setattr(pinned, "available_cpus", lambda: 3)
    tensors = [(torch.rand(3, 5, 7) * 200).to(dtype) for _ in range(10)]
    want = torch.stack(tensors)
    writers = _writers(monkeypatch)
    got = pinned.stack_pinned(tensors)
    assert len(writers) == 3 and threading.current_thread().name not in writers  # 3 slices, in pool threads
    assert torch.equal(got, want) and got.dtype == dtype
    assert allocations == [((10, 3, 5, 7), dtype)]


def test_pin_copies_in_slices_and_leaves_pinned_tensors_alone(monkeypatch, allocations):
    monkeypatch.setattr(pinned, "MIN_BYTES_FOR_THREADS", 0)
    monkeypatch.setattr(pinned, "available_cpus", lambda: 2)
    source = torch.randn(9, 4, 6)
    writers = _writers(monkeypatch)
    got = pinned.pin(source)
    assert len(writers) == 2 and threading.current_thread().name not in writers
    assert torch.equal(got, source) and got.data_ptr() != source.data_ptr()
    assert allocations == [((9, 4, 6), torch.float32)]

    class AlreadyPinned(torch.Tensor):
        def is_pinned(self, *args):  # stands in for a tensor that is already in pinned memory
            return True

    already = source.as_subclass(AlreadyPinned)
    assert pinned.pin(already) is already and len(allocations) == 1


def test_a_small_batch_is_written_in_the_calling_thread(monkeypatch, allocations):
    tensors = [torch.randn(3, 32, 32) for _ in range(256)]  # CIFAR: 3 MB
    want = torch.stack(tensors)
    writers = _writers(monkeypatch)
    assert torch.equal(pinned.stack_pinned(tensors), want)
    assert writers == [threading.current_thread().name]
