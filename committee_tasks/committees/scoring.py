"""Ensembles and cascades, computed from cached member outputs alone (no model is run).

Every metric is the task's metric of per-sample statistics summed over samples; a cascade takes,
per sample, the statistics of the stage at which that sample exits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from committee_tasks.committees.confidence import get_confidence
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.task import Task


@dataclass
class SubsetRecord:
    """Per-sample statistics and confidences of one member subset's combined prediction, for
    tasks whose outputs are too big to cache (segmentation: C x H x W per image). The loop
    computes them while the outputs are in memory; committees and the search read them."""

    statistics: np.ndarray  # (N, K) additive statistics
    confidence: dict[str, np.ndarray]  # confidence name -> (N,)

    def subset(self, mask: np.ndarray) -> SubsetRecord:
        return SubsetRecord(self.statistics[mask], {k: v[mask] for k, v in self.confidence.items()})

    def confidence_of(self, name, members) -> np.ndarray:
        if not isinstance(name, str) or name not in self.confidence:
            raise CommitteeError(
                f"confidence {name!r} of {'+'.join(members)} was not computed by the evaluation loop "
                f"(this task caches statistics, not outputs); available: {', '.join(self.confidence)}"
            )
        return self.confidence[name]


@dataclass
class PoolPredictions:
    """Cached outputs of a pool of members on the same samples (rows aligned by sample id).

    For tasks that cache statistics instead of outputs, ``outputs`` is empty and ``subsets``
    holds a `SubsetRecord` per member subset (keyed by the frozenset of member names)."""

    ids: np.ndarray
    targets: np.ndarray
    outputs: dict[str, np.ndarray]
    macs: dict[str, np.ndarray]
    skipped: dict[str, str] = field(default_factory=dict)  # sample id -> why it was skipped
    notes: dict[str, str] = field(default_factory=dict)  # sample id -> how it was handled (kept samples)
    subsets: dict[frozenset, SubsetRecord] | None = None
    # where the predictions come from: {"dataset": {"name", "fingerprint"}, "members": {name: fingerprint}}
    fingerprints: dict = field(default_factory=dict)

    def record(self, members: Sequence[str]) -> SubsetRecord:
        """The cached statistics of a subset's combined prediction (statistics-caching tasks)."""
        key = frozenset(members)
        if self.subsets is None or key not in self.subsets:
            largest = max((len(k) for k in self.subsets or {}), default=0)
            raise CommitteeError(
                f"no cached statistics for the combination {'+'.join(members)}: this task caches statistics "
                f"of member subsets of up to {largest} members of the evaluated pool {self.members}; evaluate "
                "a pool holding all of them"
            )
        return self.subsets[key]

    def __post_init__(self):
        n = len(self.ids)
        shapes = {}
        for name, out in self.outputs.items():
            if len(out) != n or len(self.macs[name]) != n:
                raise CommitteeError(f"member {name!r} has {len(out)} outputs for {n} samples")
            shapes[name] = out.shape[1:]
        if len(set(shapes.values())) > 1:
            listing = ", ".join(f"{m}: {s[0] if s else '?'}" for m, s in shapes.items())
            raise CommitteeError(
                f"members output different numbers of classes ({listing}); a committee needs "
                "members trained on the same label set"
            )

    @classmethod
    def from_members(cls, arrays: Mapping[str, Mapping[str, np.ndarray]],
                     skipped: Mapping[str, str] | None = None,
                     notes: Mapping[str, str] | None = None) -> PoolPredictions:
        """A pool from each member's ``ids``, ``targets``, ``outputs`` and ``macs`` arrays, which
        must cover the same samples in the same order."""
        names = list(arrays)
        first = arrays[names[0]]
        for name in names[1:]:
            ids = arrays[name]["ids"]
            if len(ids) != len(first["ids"]) or not np.array_equal(ids, first["ids"]):
                only_first = sorted(set(first["ids"].tolist()) - set(ids.tolist()))[:3]
                only_this = sorted(set(ids.tolist()) - set(first["ids"].tolist()))[:3]
                raise CommitteeError(
                    f"members {names[0]!r} and {name!r} cover different samples ({len(first['ids'])} vs {len(ids)}; "
                    f"only in the first e.g. {only_first}, only in the second e.g. {only_this}, or another order): "
                    "evaluate them on the same dataset and sample list"
                )
            if not np.array_equal(arrays[name]["targets"], first["targets"]):
                raise CommitteeError(f"members {names[0]!r} and {name!r} disagree on the targets of the same samples")
        return cls(first["ids"], first["targets"], {n: a["outputs"] for n, a in arrays.items() if "outputs" in a},
                   {n: a["macs"] for n, a in arrays.items()}, dict(skipped or {}), dict(notes or {}))

    @property
    def members(self) -> list[str]:
        return list(self.macs)

    def subset(self, mask: np.ndarray) -> PoolPredictions:
        """The same pool restricted to the samples where ``mask`` is True."""
        subsets = None if self.subsets is None else {k: r.subset(mask) for k, r in self.subsets.items()}
        return PoolPredictions(self.ids[mask], self.targets[mask], {m: o[mask] for m, o in self.outputs.items()},
                               {m: c[mask] for m, c in self.macs.items()}, dict(self.skipped),
                               {sid: self.notes[sid] for sid in self.ids[mask].tolist() if sid in self.notes},
                               subsets, self.fingerprints)

    def mean_statistics(self, members: Sequence[str], task: Task) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-sample statistics of the members' mean prediction, and that prediction (None where
        the task caches statistics instead of outputs)."""
        if self.subsets is not None:
            return self.record(members).statistics, None
        combined = task.combine([self.outputs[m] for m in members])
        return task.sample_statistics(combined, self.targets), combined

    def require_outputs(self, what: str) -> None:
        if self.subsets is not None:
            raise CommitteeError(f"{what} needs cached probabilities; this task caches per-sample statistics of "
                                 "member subsets instead")

    def tempered(self, temperatures: Mapping[str, float]) -> PoolPredictions:
        """Outputs after per-member temperature scaling (members not named stay as they are)."""
        from committee_tasks.committees.temperature import tempered_numpy

        self.require_outputs("temperature scaling (--temperature)")

        outputs = {m: tempered_numpy(o, temperatures[m]) if temperatures.get(m, 1.0) != 1.0 else o
                   for m, o in self.outputs.items()}
        return PoolPredictions(self.ids, self.targets, outputs, self.macs, dict(self.skipped), dict(self.notes),
                               fingerprints=self.fingerprints)

    def check_members(self, names: Sequence[str]) -> None:
        missing = [n for n in names if n not in self.macs]
        if missing:
            raise CommitteeError(f"no cached outputs for {missing}; evaluated members: {self.members}")


@dataclass
class CommitteeResult:
    """A member's or committee's figures on one set of samples."""

    name: str
    kind: str  # "member" | "ensemble" | "cascade"
    members: list[str]
    metric: float
    macs: np.ndarray  # per sample
    statistics: np.ndarray  # summed
    exit_fractions: list[float] | None = None
    thresholds: list[float] | None = None
    exit_stage: np.ndarray | None = None  # per sample, cascades only
    combined: np.ndarray | None = None  # per-sample combined output (not serialised)
    worst_case_macs: float | None = None
    sample_statistics: np.ndarray | None = None  # per-sample statistics (not serialised)

    @property
    def macs_mean(self) -> float:
        return float(self.macs.mean())

    @property
    def macs_worst(self) -> float:
        return float(self.worst_case_macs if self.worst_case_macs is not None else self.macs.max())


def member_result(preds: PoolPredictions, task: Task, name: str) -> CommitteeResult:
    preds.check_members([name])
    stats, combined = preds.mean_statistics([name], task)
    summed = stats.sum(axis=0)
    return CommitteeResult(name, "member", [name], task.metric(summed), preds.macs[name].astype(np.float64),
                           summed, combined=combined, sample_statistics=stats)


class Single:
    """One member on its own, so members and committees share one code path."""

    kind = "member"

    def __init__(self, member: str):
        self.members = [member]
        self.name = member

    def evaluate(self, preds: PoolPredictions, task: Task) -> CommitteeResult:
        return member_result(preds, task, self.name)


class Ensemble:
    """Run every member and average their outputs."""

    kind = "ensemble"

    def __init__(self, members: Sequence[str]):
        if len(members) < 2:
            raise CommitteeError(f"an ensemble needs at least 2 members, got {list(members)}")
        self.members = list(members)

    @property
    def name(self) -> str:
        return "ensemble(" + "+".join(self.members) + ")"

    def evaluate(self, preds: PoolPredictions, task: Task) -> CommitteeResult:
        preds.check_members(self.members)
        macs = sum(preds.macs[m].astype(np.float64) for m in self.members)
        stats, combined = preds.mean_statistics(self.members, task)
        summed = stats.sum(axis=0)
        return CommitteeResult(self.name, self.kind, self.members, task.metric(summed), macs, summed,
                               combined=combined, sample_statistics=stats)


class Cascade:
    """Run members in order; a sample exits at the first stage whose confidence reaches that
    stage's threshold (the last stage always exits).

    The prediction at stage k is the mean of the outputs of members 1..k (``combine="mean"``, the
    paper's rule) or member k's alone (``combine="last"``).
    """

    kind = "cascade"

    def __init__(self, members: Sequence[str], thresholds: float | Sequence[float],
                 confidence: str | Callable[[np.ndarray], np.ndarray] = "max_prob", combine: str = "mean"):
        members = list(members)
        if len(members) < 2:
            raise CommitteeError(f"a cascade needs at least 2 members, got {members}")
        thresholds = [float(t) for t in np.atleast_1d(thresholds)]
        if len(thresholds) == 1:  # one value for every stage
            thresholds = thresholds * (len(members) - 1)
        if len(thresholds) != len(members) - 1:
            raise CommitteeError(
                f"a cascade of {len(members)} members needs {len(members) - 1} thresholds (one per stage "
                f"but the last) or a single one for all stages; got {len(thresholds)}: {thresholds}"
            )
        if combine not in ("mean", "last"):
            raise CommitteeError(f"unknown cascade combine rule {combine!r}; valid: 'mean', 'last'")
        self.members = members
        self.thresholds = thresholds
        self.confidence = confidence
        self.confidence_fn = get_confidence(confidence)
        self.combine = combine

    @property
    def name(self) -> str:
        return "cascade(" + ">".join(self.members) + ")@" + ",".join(f"{t:g}" for t in self.thresholds)

    def stage_output(self, task: Task, outputs: Sequence[np.ndarray]) -> np.ndarray:
        """The prediction after the stages whose member outputs are given (in order)."""
        return task.combine(outputs if self.combine == "mean" else outputs[-1:])

    def exits(self, stage: int, combined: np.ndarray) -> np.ndarray:
        """Which samples stop at ``stage`` (0-based) given that stage's combined output."""
        if stage == len(self.members) - 1:
            return np.ones(len(combined), dtype=bool)
        return self.confidence_fn(combined) >= self.thresholds[stage]

    def evaluate(self, preds: PoolPredictions, task: Task) -> CommitteeResult:
        preds.check_members(self.members)
        n = len(preds.ids)
        exit_stage = np.full(n, -1, dtype=np.int64)
        macs = np.zeros(n, dtype=np.float64)
        stats = None
        combined_out = None
        for k, member in enumerate(self.members):
            active = exit_stage < 0
            macs[active] += preds.macs[member][active]
            stage = self.members[: k + 1] if self.combine == "mean" else [member]
            stage_stats, combined = preds.mean_statistics(stage, task)
            if k == len(self.members) - 1:
                stop_here = np.ones(n, dtype=bool)  # the last stage always exits
            elif combined is None:  # statistics cached per member subset, and so is their confidence
                stop_here = preds.record(stage).confidence_of(self.confidence, stage) >= self.thresholds[k]
            else:
                stop_here = self.exits(k, combined)
            if stats is None:
                stats = np.zeros_like(stage_stats, dtype=np.float64)
                combined_out = None if combined is None else np.zeros_like(combined)
            stop = active & stop_here
            exit_stage[stop] = k
            stats[stop] = stage_stats[stop]
            if combined_out is not None:
                combined_out[stop] = combined[stop]
        summed = stats.sum(axis=0)
        fractions = [float((exit_stage == k).mean()) for k in range(len(self.members))]
        worst = float(sum(preds.macs[m].astype(np.float64) for m in self.members).max())
        return CommitteeResult(self.name, self.kind, self.members, task.metric(summed), macs, summed,
                               exit_fractions=fractions, thresholds=self.thresholds, exit_stage=exit_stage,
                               combined=combined_out, worst_case_macs=worst, sample_statistics=stats)


def parse_committees(ensembles: Sequence[Sequence[str]], cascades: Sequence[Sequence[str]],
                     thresholds: Sequence[Sequence[float] | float], **cascade_options) -> list:
    """Committee objects from member lists (the CLI's and config files' shape)."""
    committees: list = [Ensemble(m) for m in ensembles]
    if len(thresholds) not in (0, 1, len(cascades)):
        raise CommitteeError(f"got {len(cascades)} cascades but {len(thresholds)} threshold lists")
    for i, members in enumerate(cascades):
        if not thresholds:
            raise CommitteeError(
                f"cascade {','.join(members)} needs thresholds: pass --thresholds T (one per stage but the last)"
            )
        t = thresholds[i] if len(thresholds) == len(cascades) else thresholds[0]
        committees.append(Cascade(members, t, **cascade_options))
    return committees
