"""A committee card as a runnable torch module, with real early exit.

`load_committee` builds the card's members (or takes the caller's built ones), refuses any whose
fingerprint differs from the card's, and returns a `CommitteeModule`. The module runs the same
early-exit routine as `CommitteeExecutor` (member outputs rounded to the card's output dtype), so
its outputs, exits and MACs equal the executor's and the cache's bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.in_memory import AsTensor
from committee_tasks.core.registry import get_task
from committee_tasks.core.members import Member
from committee_tasks.core.task import Task
from committee_tasks.core.samples import Sample
from committee_tasks.committees.scoring import Cascade
from committee_tasks.engine.executor import MemberRunner, batch_misfit, run_early_exit
from committee_tasks.engine.gathered import GatheredCascade
from committee_tasks.engine.inputs import Batch, collate, declared_input_shapes, wrong_shape
from committee_tasks.engine.loop import LoopOptions, non_finite_rows
from committee_tasks.core.device_preprocessing import device_splits
from committee_tasks.core.devices import to_device

if TYPE_CHECKING:
    from committee_tasks.committees.cards import CardMember, CommitteeCard


@dataclass
class CommitteeOutput:
    probs: torch.Tensor | list[torch.Tensor]  # (N, C, ...) committee output, float32, on the CPU (combined as
    # the cache is); from predict_samples, a list of one (C, ...) tensor per sample where their shapes differ
    exit_stage: torch.Tensor  # (N,) int64: the stage (0-based) at which each sample stopped
    macs: torch.Tensor  # (N,) float64: the MACs each sample cost (members actually run)


class CommitteeModule(torch.nn.Module):
    """Runs a card's committee: only the samples not yet confident go on to the next member.

    The device is fixed when it is built (``device``, ``amp`` as in `CommitteeExecutor`)."""

    def __init__(self, card: CommitteeCard, members: Mapping[str, Member], task: Task | None = None,
                 device: str = "auto", amp: str | bool = "auto"):
        super().__init__()
        check_members(card, members)
        self.card = card
        self.committee = card.committee()
        self.task = task_of(card, task)
        self.members = [members[name] for name in card.member_names]
        self.runner = MemberRunner(device, amp, card.output_dtype, card.temperatures)
        self.runner.place(self.members)
        self.stages = torch.nn.ModuleList([m.module for m in self.members])  # parameters(), state_dict()
        # what every batch is keyed and checked by, fixed with the members (not worked out per batch)
        self.input_keys = list(dict.fromkeys(m.transform_key for m in self.members))
        self.as_tensor_keys = {m.transform_key for m in self.members if isinstance(m.transform, AsTensor)}
        self.device_parts = {key: split.device for key, split in device_splits(self.members, self.runner.device,
                                                                               "on").items()}
        # predict_samples preprocesses as the loop does on this device: on CUDA the pixels are
        # finished there (CUDA divides by a scalar through its reciprocal: inputs 1 ulp apart)
        self.host_parts = {key: split.host for key, split in device_splits(self.members, self.runner.device,
                                                                           "auto").items()}
        self.input_shapes = declared_input_shapes(self.members)
        self.value_ranges: dict[tuple[str, int], tuple[float, float]] = {}  # (key, channels) -> normalised range
        self.eval()  # as its members run (and `training` says so)

    def train(self, mode: bool = True) -> CommitteeModule:
        return super().train(False)  # members run in eval mode, as when the card's figures were measured

    def forward(self, inputs: torch.Tensor | Mapping[str, torch.Tensor]) -> CommitteeOutput:
        """``inputs``: preprocessed batches keyed by member transform key (as the executor gets
        them), or one tensor when every member shares one preprocessing."""
        return self._run(self._keyed(inputs), "the batch")

    def _run(self, batch: Mapping[str, torch.Tensor], where: str, ids: Sequence[int] | None = None) -> CommitteeOutput:
        combined, exit_stage, macs = run_early_exit(self.committee, self.task, self.members, batch, self.runner)
        refuse_non_finite(combined, where, batch, ids)
        return CommitteeOutput(torch.from_numpy(combined), torch.from_numpy(exit_stage), torch.from_numpy(macs))

    def predict_samples(self, raw_items: Sequence[Any], batch_size: int = LoopOptions.batch_size) -> CommitteeOutput:
        """Run on decoded samples (what the task's dataset yields as ``Sample.data``, or its
        `Sample`s themselves), ``batch_size`` at a time (the evaluation loop's default), each
        decoded as the task's datasets decode theirs (`Task.decode`: an image as 8-bit RGB, a
        palette image through its palette, alpha dropped) and preprocessed by each member's own
        preprocessing. Samples whose inputs differ in size (segmentation images) run in batches of
        one size each; their outputs come back in the given order, ``probs`` a list of one tensor
        per sample where their shapes differ."""
        if not hasattr(raw_items, "__len__") or not hasattr(raw_items, "__getitem__") or isinstance(raw_items, str):
            raise CommitteeError(f"predict_samples takes a list of samples, got one {type(raw_items).__name__}: "
                                 "pass [item]")
        if not len(raw_items):
            raise CommitteeError("no samples given: pass at least one")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise CommitteeError(f"batch_size {batch_size!r}: pass a positive number of samples")
        outs, ids = [], []
        for start in range(0, len(raw_items), batch_size):  # decoded and preprocessed a batch at a time
            for part in self._preprocessed(raw_items, start, min(start + batch_size, len(raw_items))):
                part_ids = [int(sid) for sid in part.ids]
                outs.append(self._run(self._keyed(part.inputs, preprocessed_here=True), f"the {len(raw_items)} given",
                                      part_ids))
                ids.extend(part_ids)
        if len(outs) == 1:
            return outs[0]
        order = torch.argsort(torch.tensor(ids))  # back to the given order
        if len({tuple(o.probs.shape[1:]) for o in outs}) == 1:
            probs = torch.cat([o.probs for o in outs])[order]
        else:
            rows = [row for o in outs for row in o.probs]
            probs = [rows[i] for i in order.tolist()]
        return CommitteeOutput(probs, torch.cat([o.exit_stage for o in outs])[order],
                               torch.cat([o.macs for o in outs])[order])

    def _preprocessed(self, raw_items: Sequence[Any], start: int, stop: int) -> list[Batch]:
        """Items ``start:stop`` decoded and preprocessed by each member, as batches of one input
        shape each (`Batch.parts`), their ids the items' indices."""
        transforms = {m.transform_key: self.host_parts.get(m.transform_key, m.transform) for m in self.members}
        items = []
        for i in range(start, stop):
            item = raw_items[i]
            data = item.data if isinstance(item, Sample) else item  # a dataset's own items
            decoded = self._decoded(data, i, len(raw_items))
            try:
                inputs, _ = self.task.member_inputs(decoded, transforms)
            except CommitteeError as err:  # a preprocessing's refusal (an array in the other channel order)
                raise CommitteeError(f"sample {i} of {len(raw_items)}: {err}") from None
            reason = wrong_shape(inputs, self.input_shapes)
            if reason:  # never run a member at another size than its own
                raise CommitteeError(f"sample {i} of {len(raw_items)}: {reason}")
            items.append((str(i), None, inputs, []))
        return collate(items).parts()

    def _decoded(self, data: Any, index: int, count: int) -> Any:
        try:
            return self.task.decode(data)
        except ValueError as err:  # an image the datasets would skip (a float image)
            raise CommitteeError(f"sample {index} of {count}: {err}") from None

    def predict_stream(self, batches: Iterable[torch.Tensor | Mapping[str, torch.Tensor]],
                       max_wait: int | None = None) -> Iterator[CommitteeOutput]:
        """The output of each batch of ``batches`` (as `forward` takes them), in order, for
        throughput over a stream such as a DataLoader: a cascade's first stage runs on each batch as
        it comes, its later stages on rows gathered across batches until a full batch of them (the
        largest batch seen so far) is waiting (`GatheredCascade`), so a batch comes back once its
        last row has exited. Rows that reach
        a late stage rarely may wait many batches; ``max_wait`` bounds that, in batches (0: each
        batch on its own, as `forward`). Each sample's output, exit and MACs equal `forward`'s."""
        keyed = (self._keyed(b) for b in batches)
        if isinstance(self.committee, Cascade) and len(self.members) > 1:
            results = GatheredCascade(self.committee, self.task, self.members, self.runner).stream(keyed, max_wait)
        else:
            results = (run_early_exit(self.committee, self.task, self.members, b, self.runner) for b in keyed)
        for index, (combined, exit_stage, macs) in enumerate(results):
            refuse_non_finite(combined, f"batch {index} of the stream")
            yield CommitteeOutput(torch.from_numpy(combined), torch.from_numpy(exit_stage), torch.from_numpy(macs))

    def _keyed(self, inputs: torch.Tensor | Mapping[str, torch.Tensor],
               preprocessed_here: bool = False) -> Mapping[str, torch.Tensor]:
        """``inputs`` keyed by transform key, checked and as the members take them.
        ``preprocessed_here``: made by `predict_samples` from the members' own preprocessing, each
        sample's shape checked there: not checked again for size, nor scanned for raw pixels."""
        keys = self.input_keys
        if isinstance(inputs, torch.Tensor):
            if len(keys) > 1:
                raise CommitteeError(f"the members of {self.committee.name} preprocess their inputs in {len(keys)} "
                                     f"ways ({keys}): pass a dict transform key -> batch, or raw data to "
                                     "predict_samples")
            inputs = {keys[0]: inputs}
        if not isinstance(inputs, Mapping):
            raise CommitteeError(f"inputs of type {type(inputs).__name__}: pass a tensor, or a dict transform key -> "
                                 "tensor (from a DataLoader of (inputs, targets) pairs: (x for x, _ in loader))")
        missing = [k for k in keys if k not in inputs]
        if missing:
            users = [m.name for m in self.members if m.transform_key == missing[0]]
            raise CommitteeError(f"no input batch for the preprocessing {missing[0]!r} of {users}; inputs hold "
                                 f"{list(inputs)}: pass one batch per key of {keys}, or raw data to predict_samples")
        if not len(inputs[keys[0]]):
            raise CommitteeError("the batch is empty: pass at least one sample")
        reason = None if preprocessed_here else batch_misfit(inputs, self.input_shapes)  # before any conversion
        if reason:  # never run a member at another size than its own (predict_samples refuses it too)
            raise CommitteeError(f"the batch does not fit: {reason}")
        return {k: self._as_evaluated(k, inputs[k], check_range=not preprocessed_here) for k in keys}

    def _as_evaluated(self, key: str, batch: torch.Tensor, check_range: bool = True) -> torch.Tensor:
        """``batch`` as the pool's evaluation gave it to the members of ``key``: `AsTensor` (a
        `Member.from_module` without a transform) made float32 of any numeric array, so here too;
        uint8 pixels (resized and cropped as the preprocessing does) are converted and normalised
        on the device where the preprocessing splits (`core/device_preprocessing.py`; members whose
        preprocessing gives uint8, segmentation's, take them as they are);
        other preprocessing made the tensors the members take, and another floating dtype is refused
        by name where it would fail inside a convolution (float64 anywhere, half precision on the
        CPU; CUDA's autocast takes float16 and bfloat16), as is any integer dtype but uint8 (int64
        pixels, a bool mask)."""
        if key in self.as_tensor_keys:
            return batch.to(torch.float32)
        if not batch.is_floating_point() and batch.dtype != torch.uint8:
            raise CommitteeError(f"a {batch.dtype} batch for {key!r}: pass uint8 pixels (x.to(torch.uint8), values "
                                 "0..255) or the float32 inputs its members' preprocessing gives")
        if batch.dtype == torch.uint8 and key in self.device_parts:  # pixels: finished on the device, as the loop does
            return self.device_parts[key](to_device(batch, self.runner.device))
        half_on_cuda = self.runner.device.type == "cuda" and batch.dtype in (torch.float16, torch.bfloat16)
        if batch.is_floating_point() and batch.dtype != torch.float32 and not half_on_cuda:
            raise CommitteeError(f"a {batch.dtype} batch for {key!r}: its members' preprocessing gives float32 "
                                 "tensors: pass batch.float()")
        if check_range and key in self.device_parts and batch.dim() >= 3:
            self._check_normalised(key, batch)
        return batch

    def _check_normalised(self, key: str, batch: torch.Tensor) -> None:
        """Refuse float pixels 0..255 given as if normalised (they ran, and predicted garbage): an
        image preprocessing that ends in a normalisation gives values within what it makes of
        pixels 0 and 255, give or take what resizing overshoots."""
        channels = batch.shape[-3]
        if (key, channels) not in self.value_ranges:
            self.value_ranges[key, channels] = _normalised_range(self.device_parts[key], channels)
        low, high = self.value_ranges[key, channels]
        least, most = (float(v) for v in torch.aminmax(batch.detach().float()))
        if least < low - NORMALISED_SLACK or most > high + NORMALISED_SLACK:
            raise CommitteeError(
                f"a float batch for {key!r} with values {least:.3g}..{most:.3g}, where its members' preprocessing "
                f"gives {low:.3g}..{high:.3g} (normalised): pass uint8 pixels (resized and cropped; the committee "
                "normalises them) or inputs as the preprocessing makes them, not float pixels 0..255")


NORMALISED_SLACK = 1.0  # in normalised units (about a quarter of the pixel range): bicubic resizing overshoots


def _normalised_range(device_part, channels: int) -> tuple[float, float]:
    """The least and greatest value the device part of an image preprocessing makes of pixels
    (it normalises each channel: the extremes come from pixels 0 and 255)."""
    ends = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, channels, 1, 1)
    values = device_part(ends.contiguous()).float()
    return float(values.min()), float(values.max())


def refuse_non_finite(combined: np.ndarray, where: str, batch: Mapping[str, torch.Tensor] | None = None,
                      ids: Sequence[int] | None = None) -> None:
    """Refuse NaN or inf committee outputs, naming their samples (by ``ids`` where given, else by
    row): they would pass as class 0, exiting at the last stage; the evaluation loop refuses them
    too (`loop._check_finite`). The outputs are on the host already (each member's is copied there
    as it runs): no further device sync. ``batch``: its inputs, to tell whether they were the cause."""
    bad = non_finite_rows(combined)
    if not bad.any():
        return
    rows = np.flatnonzero(bad)
    on = torch.from_numpy(rows)
    named = [ids[r] for r in rows[:10]] if ids is not None else rows[:10].tolist()
    inputs_bad = batch is not None and any(v.is_floating_point() and not torch.isfinite(v[on.to(v.device)]).all()
                                           for v in batch.values())
    fix = ("their inputs hold NaN or inf values: pass finite inputs" if inputs_bad else
           "check the inputs for NaN or inf values (torch.isfinite), else the members' weights (or load the card "
           "with amp='off' if they overflow in float16)")
    raise CommitteeError(f"samples {named} of {where} ({len(rows)} in a batch of {len(bad)}) got NaN or inf "
                         f"committee outputs: {fix}")


def check_members(card: CommitteeCard, members: Mapping[str, Member]) -> None:
    """Refuse a missing member, or one whose weights or preprocessing differ from the card's."""
    for chosen in card.members:
        if chosen.name not in members:
            raise CommitteeError(f"member {chosen.name!r} of the card ({card.name}) was not given; pass it as "
                                 f"members={{{chosen.name!r}: member}}")
        actual = members[chosen.name].fingerprint
        if actual != chosen.fingerprint:
            raise CommitteeError(
                f"member {chosen.name!r} has fingerprint {actual[:16]}, but the card ({card.name}) was chosen with "
                f"{chosen.fingerprint[:16]}: {_what_changed(chosen, members[chosen.name])}. The card's figures do not "
                "hold for it: re-run the search or fit with this member to get a new card, or pass the original "
                "weights (weights_dir=, or members= with the original member)")


def _what_changed(chosen: CardMember, member: Member) -> str:
    parts = (("weights", chosen.weights, member.weights_sha256), ("preprocessing", chosen.preprocessing,
                                                                    member.transform_key))
    changed = [f"its {what} changed ({before[:60]!r} -> {now[:60]!r})" + (
               " (other weights, or the same ones digested another way: Member.from_module hashes the state dict "
               "in memory, a zoo or zoo-file model its weight file)" if what == "weights" else "")
               for what, before, now in parts if before is not None and before != now]
    if changed:
        return "; ".join(changed)
    if chosen.weights is None or chosen.preprocessing is None:
        return "its weights or its preprocessing changed (the card keeps only the fingerprint)"
    return "its number of classes changed"


def load_committee(card_or_path: CommitteeCard | str | Path | Mapping[str, Any], task: Task | None = None,
                   members: Mapping[str, Member] | Sequence[Member] | None = None, weights_dir: str | Path | None = None,
                   device: str = "auto", amp: str | bool = "auto") -> CommitteeModule:
    """The card's committee as a module. Members come from ``members`` (built ones, e.g. in-memory
    modules; a mapping by name or a list) or are built by zoo name from the card's task (weights from
    ``weights_dir`` or the zoo)."""
    from committee_tasks.committees.cards import CommitteeCard

    if isinstance(card_or_path, Mapping):  # a card's JSON already read
        card = CommitteeCard.from_dict(card_or_path, "the card given as a dict")
    elif isinstance(card_or_path, (CommitteeCard, str, Path)):
        card = card_or_path if isinstance(card_or_path, CommitteeCard) else CommitteeCard.load(card_or_path)
    else:
        raise CommitteeError(f"load_committee takes a CommitteeCard, a path to one or its JSON as a dict, got "
                             f"{type(card_or_path).__name__}")
    task = task_of(card, task)
    given = dict(members or {}) if isinstance(members, Mapping) or members is None else {m.name: m for m in members}
    built = {m.name: given[m.name] if m.name in given else _build(task, m, weights_dir) for m in card.members}
    return CommitteeModule(card, built, task, device, amp)


def task_of(card: CommitteeCard, task: Task | None = None) -> Task:
    """The card's task: ``task`` if it is that one, else the registered one."""
    if task is None:
        return get_task(card.task)
    if task.name != card.task:
        raise CommitteeError(f"the card is for task {card.task!r}, not {task.name!r}; pass that task or none")
    return task


def _build(task: Task, chosen: CardMember, weights_dir: str | Path | None) -> Member:
    if chosen.name not in task.entries():
        why = ("the card holds its full zoo entry, which load_committee does not build yet" if chosen.entry is not None
               else f"it is not in the zoo of task {task.name!r}")
        raise CommitteeError(f"member {chosen.name!r} of the card cannot be built: {why}. A model of a zoo file: pass "
                             "the task that read it, load_committee(card, task=task) after task.add_zoo_file(path) "
                             "(get_task makes a new task each call); or build it yourself and pass it: "
                             f"load_committee(card, members={{{chosen.name!r}: member}})")
    return task.build_member(chosen.name, weights_dir)
