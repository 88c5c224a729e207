"""A cascade over a stream of batches, each later stage run on rows gathered across batches.

Run batch by batch (`run_early_exit`), a cascade's later stage gets only the rows of one batch
that did not exit: about 21 of 256 for CIFAR ResNet20 -> ResNet56 at 0.9, 46 for resnet18 ->
resnet152 with 82% exiting first. Small batches use a device less well than full ones (on the
CPU here ResNet56 ran 422 samples/s at 256 rows and 321 at 21; on a GPU the gap should be wider,
not yet measured), so the realized speedup fell short of the MACs-predicted one. Here the rows that go on wait, on the device, until a full batch of them has
gathered (or the stream ends), as a throughput-oriented deployment would batch them. Each sample
still runs exactly the members the per-batch cascade runs it through, with the same outputs,
exits and MACs: only which rows share a forward pass changes, and so the latency of a sample
that goes on (it waits for others).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from committee_tasks.committees.scoring import Cascade
from committee_tasks.core.devices import to_device
from committee_tasks.core.members import Member
from committee_tasks.core.task import Task


def join_outputs(parts: Sequence[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """Per-sample outputs of consecutive parts, in order: one array where every sample's output has
    one shape, else a list of one array per sample (segmentation maps of images of different
    sizes, as ADE20K's are, cannot be stacked)."""
    if len(parts) == 1:
        return parts[0]
    if len({p.shape[1:] for p in parts}) <= 1:
        return np.concatenate(parts)
    return [row for part in parts for row in part]


def _runs_of_one_shape(batches: Sequence[Mapping[str, torch.Tensor]]) -> list[list[int]]:
    """Indices of ``batches``, grouped into runs of consecutive batches whose inputs have one shape."""
    runs: list[list[int]] = []
    last = None
    for i, batch in enumerate(batches):
        shapes = {k: tuple(v.shape[1:]) for k, v in batch.items()}
        if shapes != last:
            runs.append([])
        runs[-1].append(i)
        last = shapes
    return runs


@dataclass
class _Rows:
    """Rows waiting for one stage: their places in the stream, the inputs later members take (on
    the device) and the outputs of the stages they went through."""

    places: np.ndarray
    inputs: dict[str, torch.Tensor]
    outputs: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.places)

    def rows(self, part: slice) -> _Rows:
        return _Rows(self.places[part], {k: v[part] for k, v in self.inputs.items()}, [o[part] for o in self.outputs])

    @staticmethod
    def join(parts: list[_Rows]) -> _Rows:
        if len(parts) == 1:
            return parts[0]
        return _Rows(np.concatenate([p.places for p in parts]),
                     {k: torch.cat([p.inputs[k] for p in parts]) for k in parts[0].inputs},
                     [np.concatenate(o) for o in zip(*(p.outputs for p in parts))])


class GatheredCascade:
    """Runs ``committee`` over a stream of batches (preprocessed inputs keyed by transform key),
    each stage on ``rows`` rows at a time where that many are waiting; ``runner`` is the
    executor's `MemberRunner`. Batches whose inputs differ in shape (images of different sizes)
    are never mixed: every waiting row finishes before such a batch starts, and each run of
    batches of one shape keeps its own outputs (see `join_outputs`). A stream of one
    batch with ``rows`` its size is the batch-by-batch cascade (`run_early_exit`)."""

    def __init__(self, committee: Cascade, task: Task, members: Sequence[Member], runner, rows: int):
        self.committee, self.task, self.members, self.runner = committee, task, list(members), runner
        self.rows = rows
        # the inputs a row must keep on the device while it waits for stage k: those of members k..
        self.keys_from = [{m.transform_key for m in self.members[k:]} for k in range(len(self.members))]

    @torch.no_grad()
    def run(self, batches: Sequence[Mapping[str, torch.Tensor]]
            ) -> tuple[np.ndarray | list[np.ndarray], np.ndarray, np.ndarray]:
        """Committee output (see `join_outputs`), exit stage and MACs of every sample of
        ``batches``, in their order."""
        sizes = [len(next(iter(b.values()))) for b in batches]
        self.exit_stage = np.full(sum(sizes), len(self.members) - 1, dtype=np.int64)
        self.macs = np.zeros(sum(sizes), dtype=np.float64)
        self.waiting: list[list[_Rows]] = [[] for _ in self.members]
        finished = []  # outputs of each run of consecutive batches of one input shape
        start = 0
        for run in _runs_of_one_shape(batches):
            self.first, self.combined = start, None  # the run's outputs, once one of its rows exits
            self.run_size = sum(sizes[i] for i in run)
            for i in run:
                inputs = {k: to_device(batches[i][k], self.runner.device) for k in self.keys_from[0]}
                self.waiting[0].append(_Rows(np.arange(start, start + sizes[i]), inputs, []))
                start += sizes[i]
                self._advance(drain=False)
            self._advance(drain=True)  # rows of another shape never join these
            finished.append(self.combined)
        return join_outputs(finished), self.exit_stage, self.macs

    def _advance(self, drain: bool) -> None:
        """Run every stage, first to last, on full batches of its waiting rows (and on what is left
        when ``drain``)."""
        for k in range(len(self.members)):
            while (waiting := sum(map(len, self.waiting[k]))) and (waiting >= self.rows or drain):
                self._run_stage(k, self._take(k, self.rows))

    def _take(self, stage: int, count: int) -> _Rows:
        parts, queue = [], self.waiting[stage]
        while count and queue:
            head = queue.pop(0)
            if len(head) > count:
                head, rest = head.rows(slice(None, count)), head.rows(slice(count, None))
                queue.insert(0, rest)
            parts.append(head)
            count -= len(head)
        return _Rows.join(parts)

    def _run_stage(self, k: int, rows: _Rows) -> None:
        member = self.members[k]
        probs, member_macs = self.runner(member, rows.inputs[member.transform_key])
        self.macs[rows.places] += member_macs
        outputs = [*rows.outputs, probs]
        combined = self.committee.stage_output(self.task, outputs)
        stop = self.committee.exits(k, combined)
        if stop.any():
            if self.combined is None:
                self.combined = np.zeros((self.run_size,) + combined.shape[1:], dtype=combined.dtype)
            self.combined[rows.places[stop] - self.first] = combined[stop]
            self.exit_stage[rows.places[stop]] = k
        if not stop.all():
            keep = np.flatnonzero(~stop)
            on = torch.from_numpy(keep)
            inputs = {key: rows.inputs[key][on.to(rows.inputs[key].device)] for key in self.keys_from[k + 1]}
            self.waiting[k + 1].append(_Rows(rows.places[keep], inputs, [o[keep] for o in outputs]))
