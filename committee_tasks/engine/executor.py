"""Real early-exit execution of a committee on live batches.

Only the samples not yet confident go on to the next member. Member outputs are rounded to the
cache's output dtype and combined with the same code (`Task.combine`, `Cascade.exits`) as the
cache-based computation, so both give the same exits and predictions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from committee_tasks.committees.scoring import Cascade, Ensemble, Single
from committee_tasks.core.devices import (Stopwatch, autocast, cudnn_autotuner, place_module, resolve_device,
                                          to_device, use_amp)
from committee_tasks.core.errors import CommitteeError
from committee_tasks.engine.gathered import GatheredCascade, join_outputs, row_shapes
from committee_tasks.engine.inputs import InputShapes, declared_input_shapes, wrong_shape
from committee_tasks.engine.loop import output_dtype as cached_dtype
from committee_tasks.core.members import Member, check_eval_mode
from committee_tasks.core.task import Task
from committee_tasks.committees.temperature import tempered_numpy


@dataclass
class ExecutionResult:
    combined: np.ndarray | list[np.ndarray] | None  # per-sample committee output (a list where shapes
    # differ: join_outputs; None when run without keeping outputs)
    exit_stage: np.ndarray  # per sample (ensembles: last stage)
    macs: np.ndarray  # per sample, members actually run
    seconds: float  # wall time of the timed batches (device work included)

    @property
    def throughput(self) -> float:
        return len(self.exit_stage) / self.seconds if self.seconds > 0 else float("nan")


class MemberRunner:
    """Runs one member on a device (autocast as configured) and rounds its outputs to the cache's
    dtype, then applies its temperature, exactly as the cache-based computation sees them."""

    def __init__(self, device: str = "auto", amp: str | bool = "auto", output_dtype: str = "float16",
                 temperatures: Mapping[str, float] | None = None):
        self.out_dtype = cached_dtype(output_dtype)
        self.device = resolve_device(device)
        self.amp = use_amp(self.device, amp)
        self.temperatures = dict(temperatures or {})

    def place(self, members: Sequence[Member]) -> None:
        for m in members:
            m.module = place_module(m.module, self.device)

    def __call__(self, member: Member, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        check_eval_mode(member)
        try:
            with autocast(self.device, self.amp):
                probs, macs = member.predict_with_cost(to_device(x, self.device))  # no copy when already there
        except RuntimeError as err:
            if x.is_floating_point():
                raise
            # raw pixels where the member takes its preprocessing's floats fail deep in a layer, on its dtype
            raise CommitteeError(f"member {member.name!r} failed on a {x.dtype} batch of shape {tuple(x.shape)} "
                                 f"({str(err).splitlines()[0]}); if it takes the float inputs its preprocessing "
                                 "makes, pass those (member.transform of each sample), or raw samples to "
                                 "predict_samples") from err
        rounded = probs.cpu().numpy().astype(self.out_dtype)  # as the cache stores them
        temperature = self.temperatures.get(member.name, 1.0)
        return (rounded if temperature == 1.0 else tempered_numpy(rounded, temperature)), macs


@torch.no_grad()
def run_early_exit(committee: Cascade | Ensemble | Single, task: Task, members: Sequence[Member],
                   inputs: Mapping[str, torch.Tensor], runner: MemberRunner
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Committee output, exit stage and MACs of each sample of one batch of preprocessed inputs
    (keyed by transform key); only the samples not yet confident go on to the next member."""
    n = len(next(iter(inputs.values())))
    if isinstance(committee, Cascade):  # one batch is a stream of one, each stage on what is left of it
        return GatheredCascade(committee, task, members, runner, rows=n).run([inputs])
    on_device: dict[str, torch.Tensor] = {}  # each preprocessing's batch copied once
    outputs, macs = [], np.zeros(n, dtype=np.float64)
    for member in members:
        key = member.transform_key
        if key not in on_device:
            on_device[key] = to_device(inputs[key], runner.device)
        probs, member_macs = runner(member, on_device[key])
        macs += member_macs
        outputs.append(probs)
    return task.combine(outputs), np.full(n, len(members) - 1, dtype=np.int64), macs


def batch_misfit(inputs: Mapping[str, torch.Tensor], shapes: InputShapes) -> str | None:
    """Why a batch (keyed by transform key) does not fit the input ``shapes`` its members declare
    (`declared_input_shapes`), naming the fix; None if it fits. Checked on the shapes alone, before
    any conversion: a member never runs at another size than its own. Give it a batch of at least
    one sample (its first row is read)."""
    for key, (shape, names) in shapes.items():
        if key not in inputs:
            continue
        got = tuple(inputs[key].shape)
        if got == shape:
            return f"got one sample of shape {got}, not a batch: add a batch dimension (x.unsqueeze(0))"
        if len(got) != len(shape) + 1:
            return f"got shape {got}: {names} take batches of shape (N, {', '.join(map(str, shape))})"
        if got[1:] == shape[1:] + shape[:1] and got[1:] != shape:  # (N, H, W, C): images as numpy holds them
            return f"got {got}: channels last; pass x.permute(0, 3, 1, 2) for (N, {', '.join(map(str, shape))})"
        if got[2:] == shape[1:] and got[1] != shape[0]:  # grayscale for RGB members would be broadcast
            return (f"got {got[1]} channel(s) in {got} but {names} take {shape[0]}: pass images with "
                    f"{shape[0]} channel(s)" + (" (grayscale: x.expand(-1, 3, -1, -1))" if got[1] == 1 else ""))
        reason = wrong_shape({key: inputs[key][0]}, {key: (shape, names)})
        if reason:
            return reason.replace("its input has", "each input has")
    return None


LATER_STAGES = ("gathered", "per-batch")


def _members_of(committee, members: Mapping[str, Member] | Sequence[Member]) -> list[Member]:
    """The committee's members in its order, from a mapping by name or a list of members (a list
    raised a TypeError and a missing member a bare KeyError)."""
    if not isinstance(members, Mapping):
        members = list(members)
        if not all(isinstance(m, Member) for m in members):
            raise CommitteeError(f"members: give a dict name -> Member or a list of Members, got {members!r:.200}")
        members = {m.name: m for m in members}
    missing = [name for name in committee.members if name not in members]
    if missing:
        raise CommitteeError(f"{committee.name} needs member(s) {missing}, not among those given: {sorted(members)}")
    return [members[name] for name in committee.members]


class CommitteeExecutor:
    """Runs an `Ensemble` or `Cascade` of built members on batches of preprocessed inputs, timed.

    ``later_stages``: how `run` feeds a cascade's later stages. "gathered" (the default): the rows
    that go on wait until a full batch of them has gathered across batches (`GatheredCascade`),
    as a throughput-oriented deployment batches them; "per-batch": each batch's remaining rows run
    on their own, as `run_batch` (and a loaded card) runs one batch. Outputs, exits and MACs are
    the same either way. Batches must hold at least one sample each, of the input shape the
    members declare (`batch_misfit`), as a loaded card's module requires."""

    def __init__(self, committee: Cascade | Ensemble, members: Mapping[str, Member], task: Task,
                 device: str = "auto", amp: str | bool = "auto", output_dtype: str = "float16",
                 temperatures: Mapping[str, float] | None = None, autotune: bool = True,
                 later_stages: str = "gathered"):
        if later_stages not in LATER_STAGES:
            raise CommitteeError(f"later stages {later_stages!r}: choose one of {', '.join(LATER_STAGES)}")
        self.committee = committee
        self.gathered = later_stages == "gathered" and isinstance(committee, Cascade) and len(committee.members) > 1
        self.autotune = autotune  # cuDNN's autotuner on CUDA (core/devices.py: cudnn_autotuner)
        self.members = _members_of(committee, members)
        self.task = task
        self.runner = MemberRunner(device, amp, output_dtype, temperatures)
        self.device = self.runner.device
        self.runner.place(self.members)
        self.input_shapes = declared_input_shapes(self.members)

    def run_batch(self, inputs: Mapping[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Committee output, exit stage and MACs of each sample of one batch."""
        self._check([inputs])
        return self._run_checked(inputs)

    def _run_checked(self, inputs: Mapping[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with cudnn_autotuner(self.device, self.autotune):
            return run_early_exit(self.committee, self.task, self.members, inputs, self.runner)

    def warm_up(self, batches: Sequence[Mapping[str, torch.Tensor]]) -> None:
        """Run untimed before timing: the allocator, kernels, MACs counting per input shape; on
        CUDA every batch, so that each row count a later stage meets is tuned (`cudnn_autotuner`)
        and has its kernel plans before the timed rounds; on the CPU the first batch of each input
        shape (images of different sizes each count their MACs once, untimed)."""
        if self.device.type != "cuda":
            first_of_shape: dict[tuple, Mapping[str, torch.Tensor]] = {}
            for b in batches:
                first_of_shape.setdefault(row_shapes(b), b)
            batches = list(first_of_shape.values())
        self.run(batches, warmup=0, keep_outputs=False)

    def run(self, batches: Sequence[Mapping[str, torch.Tensor]], warmup: int = 1,
            keep_outputs: bool = True) -> ExecutionResult:
        """Run over preprocessed batches (`pinned` ones on CUDA); the first ``warmup`` batches
        run once untimed first (see `warm_up` for a warm-up that suits timing). Without
        ``keep_outputs`` (timing only), each batch's outputs are dropped once made and
        ``combined`` is None: segmentation maps are large (8 Cityscapes images' are 1.3 GB).
        No batches, or an empty one, is refused: a result of no samples has no output shape to
        give (a segmentation map's is its image's) and no throughput."""
        self._check(batches)
        for inputs in batches[:warmup]:
            self._run_checked(inputs)
        watch = Stopwatch(self.device)
        parts = []

        def keep(result):
            parts.append(result if keep_outputs else (None, *result[1:]))

        if self.gathered:
            rows = max(len(next(iter(b.values()))) for b in batches)
            stream = GatheredCascade(self.committee, self.task, self.members, self.runner, rows)
            with cudnn_autotuner(self.device, self.autotune), watch.section():
                for result in stream.stream(batches):
                    keep(result)
        else:
            for inputs in batches:
                with watch.section():
                    result = self._run_checked(inputs)
                keep(result)
        combined, stages, macs = zip(*parts)  # joined untimed, as a deployment hands each batch's on
        return ExecutionResult(join_outputs(combined) if keep_outputs else None, np.concatenate(stages),
                               np.concatenate(macs), watch.seconds)

    def _check(self, batches: Sequence[Mapping[str, torch.Tensor]]) -> None:
        """Refuse what would fail deep inside or run wrong: no batches, a batch that is not keyed
        by transform key, an empty one, or one whose inputs do not fit the members' sizes."""
        if not len(batches):
            raise CommitteeError("no batches given: pass at least one (dicts transform key -> batch)")
        for i, inputs in enumerate(batches):
            which = f"batch {i} of {len(batches)}"
            if not isinstance(inputs, Mapping):
                raise CommitteeError(f"{which} is a {type(inputs).__name__}: pass a dict transform key -> batch "
                                     "(the keys: its members' transform_key)")
            if not len(next(iter(inputs.values()))):
                raise CommitteeError(f"{which} is empty: pass batches of at least one sample")
            reason = batch_misfit(inputs, self.input_shapes)
            if reason:
                raise CommitteeError(f"{which} does not fit: {reason}")
