"""Decode each sample once, apply every member's own preprocessing (in DataLoader workers).

Members whose preprocessing is identical share one tensor. A sample that fails to decode or
preprocess is returned as a `Skipped` marker and dropped by the collate function, so one corrupt
file costs one sample, not the run. So does a sample of the wrong size: one whose input differs
from the shape its members declare (a 64x64 image for a CIFAR model that takes 32x32, which would
otherwise run silently at the wrong size). Where no member declares a size, samples of different
sizes in one batch (ADE20K's images) cannot be stacked together: they run as parts of the batch,
one per input shape, so none is lost.
"""
from __future__ import annotations

import functools
import os
import signal
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from committee_tasks.core.samples import Sample, SampleDataset
from committee_tasks.engine import pinned as pinned_memory
from committee_tasks.engine.background import BackgroundBatches


@dataclass
class Skipped:
    id: str
    reason: str


WRONG_SIZE = "wrong size"  # how a wrong-size skip's reason starts
InputShapes = Mapping[str, tuple[tuple[int, ...], str]]  # transform key -> (shape, the members taking it)


def declared_input_shapes(members: Sequence) -> dict[str, tuple[tuple[int, ...], str]]:
    """The input shape each preprocessing must give, where its members' zoo entries (or
    ``Member.from_module(input_size=)``) fix one: an image member's (channels, height, width), e.g.
    (3, 32, 32) for the CIFAR ResNets. Members
    taking any size (segmentation's (3,)), video members (their views add dimensions) and members
    without an entry declare none."""
    shapes: dict[str, tuple[tuple[int, ...], str]] = {}
    for m in members:
        size = tuple(getattr(m, "input_size", None) or getattr(getattr(m, "entry", None), "input_size", None) or ())
        if len(size) == 3 and all(isinstance(s, int) for s in size):
            shape, names = shapes.get(m.transform_key, (size, ""))
            if shape == size:  # members sharing a preprocessing but declaring other sizes: no claim
                shapes[m.transform_key] = (size, f"{names}, {m.name}" if names else m.name)
            else:
                shapes[m.transform_key] = ((), "")
    return {k: v for k, v in shapes.items() if v[0]}


def wrong_shape(inputs: Mapping[str, torch.Tensor], shapes: InputShapes) -> str | None:
    """Why ``inputs`` (one sample's, keyed by transform key) do not fit ``shapes``; None if they do."""
    for key, (shape, names) in shapes.items():
        if key in inputs and tuple(inputs[key].shape) != shape:
            return (f"{WRONG_SIZE}: its input has shape {tuple(inputs[key].shape)} but {names} take "
                    f"{shape} (resize the images, or use members made for this size)")
    return None


def error_name(err: BaseException) -> str:
    """The exception's class name, with its module where the name alone says nothing (OpenCV's
    ``error`` is ``cv2.error``)."""
    kind = type(err)
    if kind.__module__ == "builtins" or kind.__name__.endswith(("Error", "Exception", "Exit", "Interrupt")):
        return kind.__name__
    return f"{kind.__module__}.{kind.__name__}"


class PoolInputs(torch.utils.data.Dataset):
    def __init__(self, dataset: SampleDataset, transforms: Mapping[str, Callable[[Any], torch.Tensor]],
                 member_inputs: Callable | None = None, input_shapes: InputShapes | None = None):
        self.dataset = dataset
        self.transforms = dict(transforms)
        self.member_inputs = member_inputs or (lambda data, ts: ({k: t(data) for k, t in ts.items()}, []))
        self.input_shapes = dict(input_shapes or {})

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        sample_id = self.dataset.ids[index]
        try:
            sample: Sample = self.dataset[index]
            inputs, notes = self.member_inputs(sample.data, self.transforms)
        except Exception as err:  # corrupt or unreadable sample: skip it, say why
            return Skipped(sample_id, f"{error_name(err)}: {err}")
        reason = wrong_shape(inputs, self.input_shapes)
        return Skipped(sample_id, reason) if reason else (sample.id, sample.target, inputs, notes)


@dataclass
class Batch:
    ids: list[str]
    targets: list[Any]
    inputs: dict[str, torch.Tensor]
    skipped: list[Skipped]
    notes: dict[str, str] = field(default_factory=dict)  # sample id -> how it was handled
    others: list[Batch] = field(default_factory=list)  # the batch's samples of other input shapes

    def parts(self) -> list[Batch]:
        """The batch as parts that each stack into one tensor per preprocessing: its samples of
        its first shape, then those of each other shape (skips and notes stay with the first)."""
        return [Batch(self.ids, self.targets, self.inputs, self.skipped, self.notes), *self.others]

    def __len__(self) -> int:  # samples run, in every part
        return len(self.ids) + sum(len(o.ids) for o in self.others)

    def pin_memory(self):  # called by the DataLoader's pin-memory thread on CUDA
        self.inputs = {k: pinned_memory.pin(v) for k, v in self.inputs.items()}
        for other in self.others:
            other.pin_memory()
        return self


def collate(items: Sequence, pin: bool = False) -> Batch:
    """One batch of `PoolInputs` items. Inputs of different shapes cannot be stacked together: the
    samples of each shape after the first sample's are stacked into their own part
    (`Batch.others`, `Batch.parts`). ``pin``: stacked straight into pinned memory (for a CUDA
    device)."""
    good = [it for it in items if not isinstance(it, Skipped)]
    skipped = [it for it in items if isinstance(it, Skipped)]
    groups = _by_shape(good) or [[]]
    first = _stacked(groups[0], skipped, pin)
    first.others = [_stacked(group, [], pin) for group in groups[1:]]
    return first


def _stacked(items: Sequence, skipped: list[Skipped], pin: bool) -> Batch:
    """``items`` of one input shape as a batch."""
    if not items:
        return Batch([], [], {}, skipped)
    ids, targets, tensors, notes = zip(*items)
    inputs = {k: _stack([t[k] for t in tensors], pin) for k in tensors[0]}
    return Batch(list(ids), list(targets), inputs, skipped, {sid: "; ".join(n) for sid, n in zip(ids, notes) if n})


def _stack(tensors: list[torch.Tensor], pin: bool = False) -> torch.Tensor:
    """``torch.stack`` into the memory the batch will travel in, so it is written once (for 256
    ImageNet-sized float inputs, 154 MB per batch): in a DataLoader worker, shared memory, as
    torch's own ``default_collate`` does; with ``pin``, pinned memory, whose blocks torch's caching
    host allocator reuses from batch to batch, written by several threads (`pinned.stack_pinned`).
    Fresh pages cost a page fault each, which made stacking into new memory about 3x slower than
    into reused memory, measured here."""
    if pin:
        return pinned_memory.stack_pinned(tensors)
    if torch.utils.data.get_worker_info() is None:
        return torch.stack(tensors)
    first = tensors[0]
    storage = first._typed_storage()._new_shared(len(tensors) * first.numel(), device=first.device)
    return torch.stack(tensors, out=first.new(storage).resize_(len(tensors), *first.shape))


def _by_shape(items: list) -> list[list]:
    """``items`` grouped by the shapes of their inputs, in the order each shape first appears."""
    groups: dict[tuple, list] = {}
    for it in items:
        groups.setdefault(tuple((k, tuple(v.shape)) for k, v in it[2].items()), []).append(it)
    return list(groups.values())


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
                prefetch_batches: int = 4, input_shapes: InputShapes | None = None) -> Iterable[Batch]:
    """The loop's batches (each in parts of one input shape: `Batch.parts`). ``input_shapes``:
    `declared_input_shapes` of the members; samples of another shape are skipped. With
    ``pin_memory`` (a CUDA device) and no worker processes, a background thread stacks each batch
    straight into pinned memory while the device runs the previous one (`BackgroundBatches`); with
    workers, they stack into shared memory and the DataLoader's pin-memory thread copies each
    batch into pinned memory."""
    in_thread = pin_memory and num_workers == 0
    stopping_itself = signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    loader = torch.utils.data.DataLoader(
        PoolInputs(dataset, transforms, member_inputs, input_shapes), batch_sampler=ChunkedBatches(indices, batch_size),
        num_workers=num_workers, collate_fn=functools.partial(collate, pin=in_thread),
        pin_memory=pin_memory and not in_thread, persistent_workers=False,
        prefetch_factor=prefetch_batches if num_workers > 0 else None,
        worker_init_fn=_exit_quietly_on_sigterm if stopping_itself and num_workers > 0 else None,
    )
    return BackgroundBatches(loader, prefetch=2) if in_thread else loader


def _exit_quietly_on_sigterm(worker_id: int) -> None:
    """A DataLoader worker of a process that stops itself on SIGTERM (the tools: `core/signals.py`)
    exits quietly on it, as torch's own worker handler does only when the parent sends it:
    `timeout`, SLURM and torchrun send it to the whole process group, and a worker killed by it
    made the loader print a traceback while the main process was writing its work."""
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))


def pinned(batches: list[dict[str, torch.Tensor]], device: torch.device) -> list[dict[str, torch.Tensor]]:
    """``batches`` in pinned host memory when they go to a CUDA ``device`` (once, before timing):
    each copy to the device is then one DMA transfer, as the loop's DataLoader gives its batches."""
    if device.type != "cuda":
        return batches
    return [{k: pinned_memory.pin(v) for k, v in b.items()} for b in batches]


def preprocessed_batches(dataset: SampleDataset, members: Sequence, ids: Sequence[str], limit: int,
                         batch_size: int, member_inputs: Callable | None = None) -> list[dict[str, torch.Tensor]]:
    """Preprocessed input batches of the first ``limit`` of ``ids``, held in memory, so throughput
    is timed on the same tensors for every member and committee, without data loading."""
    index = {sid: i for i, sid in enumerate(dataset.ids)}
    inputs = PoolInputs(dataset, {m.transform_key: m.transform for m in members}, member_inputs,
                        declared_input_shapes(members))
    chosen = [index[sid] for sid in list(ids)[:limit]]
    batches = [part.inputs for s in range(0, len(chosen), batch_size)
               for part in collate([inputs[i] for i in chosen[s:s + batch_size]]).parts()]
    return [b for b in batches if b]  # a batch of skipped samples only has nothing to time
