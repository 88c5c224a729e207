"""A cascade over a stream of batches, each later stage run on rows gathered across batches.

Run batch by batch (`run_early_exit`), a cascade's later stage gets only the rows of one batch
that did not exit: about 21 of 256 for CIFAR ResNet20 -> ResNet56 at 0.9, 46 for resnet18 ->
resnet152 with 82% exiting first. Small batches use a device less well than full ones (on the
CPU here ResNet56 ran 422 samples/s at 256 rows and 321 at 21; on a GPU the gap should be wider,
not yet measured), so the realized speedup fell short of the MACs-predicted one. Here the rows
that go on wait, on the device, until a full batch of them has gathered (or the stream ends, or,
with ``max_wait``, the oldest has waited that many batches), as a throughput-oriented deployment
batches them; each batch's results come back in order once its last row has exited. Each sample
still runs exactly the members the per-batch cascade runs it through, with the same outputs,
exits and MACs: only which rows share a forward pass changes, and so the latency of a sample
that goes on (it waits for others).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from committee_tasks.committees.scoring import Cascade
from committee_tasks.core.devices import to_device
from committee_tasks.core.errors import CommitteeError
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


def row_shapes(batch: Mapping[str, torch.Tensor]) -> tuple:
    """The shape of one row of each of a batch's inputs, with its transform key (hashable): batches
    with the same row shapes can share a forward pass."""
    return tuple((k, tuple(v.shape[1:])) for k, v in batch.items())


@dataclass
class _Rows:
    """Rows waiting for one stage: the batch each came in and its row there, the inputs later
    members take (on the device) and the outputs of the stages they went through."""

    batch: np.ndarray
    row: np.ndarray
    inputs: dict[str, torch.Tensor]
    outputs: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.row)

    def rows(self, part: slice) -> _Rows:
        return _Rows(self.batch[part], self.row[part], {k: v[part] for k, v in self.inputs.items()},
                     [o[part] for o in self.outputs])

    @staticmethod
    def join(parts: list[_Rows]) -> _Rows:
        if len(parts) == 1:
            return parts[0]
        return _Rows(np.concatenate([p.batch for p in parts]), np.concatenate([p.row for p in parts]),
                     {k: torch.cat([p.inputs[k] for p in parts]) for k in parts[0].inputs},
                     [np.concatenate(o) for o in zip(*(p.outputs for p in parts))])


@dataclass
class _Outcome:
    """One batch's results, filled in as its rows exit."""

    exit_stage: np.ndarray
    macs: np.ndarray
    left: int  # rows not exited yet
    combined: np.ndarray | None = None

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.combined, self.exit_stage, self.macs


class GatheredCascade:
    """Runs ``committee`` over a stream of batches (preprocessed inputs keyed by transform key):
    the first stage on each batch as it comes, each later stage on ``rows`` rows at a time where
    that many are waiting (None: the largest batch seen so far, so a small first batch, a warm-up
    request, does not set the size for the rest of the stream); ``runner`` is the executor's
    `MemberRunner`. Batches whose inputs differ in shape (images of different sizes) are never
    mixed: every waiting row finishes before such a batch starts. A stream of one batch is the
    batch-by-batch cascade (`run_early_exit`)."""

    def __init__(self, committee: Cascade, task: Task, members: Sequence[Member], runner, rows: int | None = None):
        self.committee, self.task, self.members, self.runner = committee, task, list(members), runner
        self.rows = rows or 0  # grows to the largest batch seen (`stream`)
        # the inputs a row must keep on the device while it waits for stage k: those of members k..
        self.keys_from = [{m.transform_key for m in self.members[k:]} for k in range(len(self.members))]

    @torch.no_grad()
    def stream(self, batches: Iterable[Mapping[str, torch.Tensor]], max_wait: int | None = None
               ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Committee output, exit stage and MACs of each batch's samples, batch by batch in order,
        each once all its rows have exited. A row that goes on waits for a full batch of others;
        with ``max_wait``, a stage also runs on what is waiting once its oldest row came in
        ``max_wait`` batches ago, so each batch comes back at most ``max_wait`` batches late
        (a stage few rows reach would otherwise hold them back for many batches)."""
        if max_wait is not None and max_wait < 0:
            raise CommitteeError(f"max_wait {max_wait}: pass a number of batches, at least 0 (or None: no bound)")
        self.waiting: list[list[_Rows]] = [[] for _ in self.members]
        self.open: dict[int, _Outcome] = {}
        self.max_wait = max_wait
        done, shapes = 0, None
        for index, batch in enumerate(batches):
            self.current = index
            n = len(next(iter(batch.values())))
            self.rows = max(self.rows, n)
            batch_shapes = row_shapes(batch)
            if shapes is not None and batch_shapes != shapes:
                self._advance(drain=True)  # rows of another shape never join these
            shapes = batch_shapes
            self.open[index] = _Outcome(np.full(n, len(self.members) - 1, dtype=np.int64),
                                        np.zeros(n, dtype=np.float64), n)
            inputs = {k: to_device(batch[k], self.runner.device) for k in self.keys_from[0]}
            self._run_stage(0, _Rows(np.full(n, index), np.arange(n), inputs, []))  # a batch is full as it came
            self._advance(drain=False)
            while done in self.open and not self.open[done].left:
                yield self.open.pop(done).result()
                done += 1
        self._advance(drain=True)
        for index in sorted(self.open):
            yield self.open.pop(index).result()

    def run(self, batches: Sequence[Mapping[str, torch.Tensor]]
            ) -> tuple[np.ndarray | list[np.ndarray], np.ndarray, np.ndarray]:
        """Committee output (see `join_outputs`), exit stage and MACs of every sample of ``batches``."""
        combined, stages, macs = zip(*self.stream(batches))
        return join_outputs(combined), np.concatenate(stages), np.concatenate(macs)

    def _advance(self, drain: bool) -> None:
        """Run every later stage, second to last, on full batches of its waiting rows, and on what
        is left when ``drain`` or when its oldest row is overdue (`_overdue`)."""
        for k in range(1, len(self.members)):
            while (waiting := sum(map(len, self.waiting[k]))) and (waiting >= self.rows or drain or self._overdue(k)):
                self._run_stage(k, self._take(k, self.rows))

    def _overdue(self, stage: int) -> bool:
        """The stage's oldest waiting row came in ``max_wait`` batches ago (or more)."""
        return self.max_wait is not None and int(self.waiting[stage][0].batch.min()) <= self.current - self.max_wait

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
        outputs = [*rows.outputs, probs]
        combined = self.committee.stage_output(self.task, outputs)
        stop = self.committee.exits(k, combined)
        for index in np.unique(rows.batch):  # a few batches' rows share a gathered stage
            mine = rows.batch == index
            outcome, exiting = self.open[index], mine & stop
            outcome.macs[rows.row[mine]] += member_macs[mine]
            if exiting.any():
                if outcome.combined is None:
                    outcome.combined = np.zeros((len(outcome.macs),) + combined.shape[1:], dtype=combined.dtype)
                outcome.combined[rows.row[exiting]] = combined[exiting]
                outcome.exit_stage[rows.row[exiting]] = k
                outcome.left -= int(exiting.sum())
        if not stop.all():
            keep = np.flatnonzero(~stop)
            on = torch.from_numpy(keep)
            inputs = {key: rows.inputs[key][on.to(rows.inputs[key].device)] for key in self.keys_from[k + 1]}
            self.waiting[k + 1].append(_Rows(rows.batch[keep], rows.row[keep], inputs, [o[keep] for o in outputs]))
