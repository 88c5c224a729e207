"""Decode each sample once, apply every member's own preprocessing (in DataLoader workers).

Members whose preprocessing is identical share one tensor. A sample that fails to decode or
preprocess is returned as a `Skipped` marker and dropped by the collate function, so one corrupt
file costs one sample, not the run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.samples import Sample, SampleDataset


@dataclass
class Skipped:
    id: str
    reason: str


class PoolInputs(torch.utils.data.Dataset):
    def __init__(self, dataset: SampleDataset, transforms: Mapping[str, Callable[[Any], torch.Tensor]],
                 member_inputs: Callable | None = None):
        self.dataset = dataset
        self.transforms = dict(transforms)
        self.member_inputs = member_inputs or (lambda data, ts: ({k: t(data) for k, t in ts.items()}, []))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        sample_id = self.dataset.ids[index]
        try:
            sample: Sample = self.dataset[index]
            inputs, notes = self.member_inputs(sample.data, self.transforms)
            return sample.id, sample.target, inputs, notes
        except Exception as err:  # corrupt or unreadable sample: skip it, say why
            return Skipped(sample_id, f"{type(err).__name__}: {err}")


@dataclass
class Batch:
    ids: list[str]
    targets: list[Any]
    inputs: dict[str, torch.Tensor]
    skipped: list[Skipped]
    notes: dict[str, str] = field(default_factory=dict)  # sample id -> how it was handled

    def pin_memory(self):  # called by the DataLoader's pin-memory thread on CUDA
        self.inputs = {k: v.pin_memory() for k, v in self.inputs.items()}
        return self


def collate(items: Sequence) -> Batch:
    good = [it for it in items if not isinstance(it, Skipped)]
    skipped = [it for it in items if isinstance(it, Skipped)]
    if not good:
        return Batch([], [], {}, skipped)
    ids, targets, tensors, notes = zip(*good)
    try:
        inputs = {k: torch.stack([t[k] for t in tensors]) for k in tensors[0]}
    except RuntimeError as err:  # e.g. ADE20K images of different sizes in one batch
        shapes = sorted({tuple(t[k].shape) for t in tensors for k in t})[:4]
        raise CommitteeError(f"samples {list(ids)[:4]} have inputs of different shapes {shapes} and cannot share "
                             "a batch: use --batch-size 1 for this dataset") from err
    return Batch(list(ids), list(targets), inputs, skipped,
                 {sid: "; ".join(n) for sid, n in zip(ids, notes) if n})


class ChunkedBatches(torch.utils.data.Sampler):
    """Batches over a given list of dataset indices, in order."""

    def __init__(self, indices: Sequence[int], batch_size: int):
        self.indices = list(indices)
        self.batch_size = batch_size

    def __iter__(self):
        for start in range(0, len(self.indices), self.batch_size):
            yield self.indices[start:start + self.batch_size]

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)


def make_loader(dataset: SampleDataset, transforms: Mapping[str, Callable], indices: Sequence[int],
                batch_size: int, num_workers: int, pin_memory: bool, member_inputs: Callable | None = None,
                prefetch_batches: int = 4) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        PoolInputs(dataset, transforms, member_inputs), batch_sampler=ChunkedBatches(indices, batch_size),
        num_workers=num_workers, collate_fn=collate, pin_memory=pin_memory,
        persistent_workers=False, prefetch_factor=prefetch_batches if num_workers > 0 else None,
    )


def preprocessed_batches(dataset: SampleDataset, members: Sequence, ids: Sequence[str], limit: int,
                         batch_size: int, member_inputs: Callable | None = None) -> list[dict[str, torch.Tensor]]:
    """Preprocessed input batches of the first ``limit`` of ``ids``, held in memory, so throughput
    is timed on the same tensors for every member and committee, without data loading."""
    index = {sid: i for i, sid in enumerate(dataset.ids)}
    inputs = PoolInputs(dataset, {m.transform_key: m.transform for m in members}, member_inputs)
    chosen = [index[sid] for sid in list(ids)[:limit]]
    return [collate([inputs[i] for i in chosen[s:s + batch_size]]).inputs
            for s in range(0, len(chosen), batch_size)]
