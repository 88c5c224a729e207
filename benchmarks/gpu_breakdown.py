"""Where the GPU check's time goes, per batch, for whoever runs it next (`benchmarks/gpu_check.py`).

* `data_path`: the loop's data loading taken apart: reading the samples (`PoolInputs`), stacking
  them into a batch the way the loop does on this device (pinned memory on CUDA, in slices on
  several threads, a new buffer each batch, four batches alive as in the loop), stacking into one
  reused buffer (the copy alone) in one call and in the loop's slices, and the copy to the device.
* `cascade_stages`: a two-member cascade taken apart: the input's copy to the device, the first
  member, the decision on the host (outputs back, rounded, combined, thresholded, rows chosen),
  the second member on the rows that go on, and the second member alone on the whole batch.

Each part is timed with the device synchronised before and after, so parts do not overlap as
they do in the real loop: the sum is an upper bound on the loop's time per batch, and each part
says what removing it could gain.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable, Sequence

import numpy as np
import torch

from committee_tasks.core.devices import autocast, to_device, use_amp
from committee_tasks.engine.inputs import PoolInputs, Skipped, collate
from committee_tasks.engine.pinned import pinned_empty, row_slices, stack_into


def _timed(device: torch.device, fn: Callable[[], object]) -> tuple[object, float]:
    """``fn()`` and its milliseconds, the device idle before and finished after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, 1e3 * (time.perf_counter() - start)


def _means(parts: dict[str, list[float]]) -> dict[str, float]:
    """Mean per part over the batches after the first (allocator, kernels and caches warm)."""
    return {name: float(np.mean(values[1:] if len(values) > 1 else values)) for name, values in parts.items()}


def data_path(dataset, members: Sequence, indices: Sequence[int], batch_size: int, device: torch.device,
              member_inputs=None) -> dict[str, float]:
    """Milliseconds per batch of each step of the loop's data loading in the main process."""
    pin = device.type == "cuda"
    inputs = PoolInputs(dataset, {m.transform_key: m.transform for m in members}, member_inputs)
    parts: dict[str, list[float]] = defaultdict(list)
    alive: list = []  # the loop holds about four batches: in hand, queued and being made
    reused = None
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        items, ms = _timed(device, lambda: [item for item in (inputs[i] for i in chunk)
                                            if not isinstance(item, Skipped)])
        parts["read samples"].append(ms)
        batch, ms = _timed(device, lambda: collate(items, pin=pin))
        parts["stack into a new batch" + (" (pinned, in slices)" if pin else "")].append(ms)
        alive = [*alive[-3:], batch]
        tensors = [item[2] for item in items]
        for key, stacked in batch.inputs.items():
            if reused is None or reused.shape != stacked.shape:
                reused = pinned_empty(tuple(stacked.shape), stacked.dtype) if pin else torch.empty_like(stacked)
            rows = [t[key] for t in tensors]
            _, ms = _timed(device, lambda: torch.stack(rows, out=reused))
            parts["stack into a reused buffer, one call"].append(ms)
            _, ms = _timed(device, lambda: stack_into(rows, reused))
            slices = len(row_slices(len(rows), reused.numel() * reused.element_size()))  # as stack_into splits
            parts[f"stack into a reused buffer, {slices} slices in threads"].append(ms)
            _, ms = _timed(device, lambda: to_device(stacked, device))
            parts["copy to the device"].append(ms)
    return _means(parts)


def cascade_stages(first, second, cascade, task, batches: Sequence[dict[str, torch.Tensor]],
                   device: torch.device) -> tuple[dict[str, float], float]:
    """Milliseconds per batch of each part of a two-member cascade, and of its second member
    alone, and the mean number of rows that go on; ``first`` and ``second`` are placed
    `Member`s, ``cascade`` their `Cascade`."""
    amp = use_amp(device)
    parts: dict[str, list[float]] = defaultdict(list)
    going_on = []

    def forward(member, x):
        with torch.no_grad(), autocast(device, amp):
            return member.predict_with_cost(x)[0]

    for batch in batches:
        x, ms = _timed(device, lambda: to_device(batch[first.transform_key], device))
        parts["copy to the device"].append(ms)
        probs, ms = _timed(device, lambda: forward(first, x))
        parts[f"{first.name} on the batch"].append(ms)

        def decide():
            host = probs.cpu().numpy().astype(np.float16)  # as the executor rounds them
            stop = cascade.exits(0, cascade.stage_output(task, [host]))
            return torch.from_numpy(np.flatnonzero(~stop)).to(x.device)

        rows, ms = _timed(device, decide)
        parts["decision on the host"].append(ms)
        _, ms = _timed(device, lambda: forward(second, x[rows]).cpu())
        parts[f"{second.name} on the rows that go on"].append(ms)
        going_on.append(len(rows))
        _, ms = _timed(device, lambda: forward(second, x).cpu())
        parts[f"{second.name} alone on the batch"].append(ms)
    return _means(parts), float(np.mean(going_on))
