"""What the evaluation loop kept of a pool, and the one way committees and the search read it.

The loop keeps one of two things per task:

* `OutputPredictions`: each member's probabilities (classification, video), so any combination
  and any confidence can be computed afterwards;
* `StatisticsPredictions`: per-sample statistics and confidences of every member subset's mean
  prediction (segmentation, whose C x H x W maps are too big to keep), computed by the loop while
  the outputs were in memory.

Consumers ask either kind the same questions (`PoolPredictions.stage`, `stage_statistics`,
`stage_confidence`, `subset_columns`) and never branch on which kind they hold.
``PoolPredictions(ids, targets, outputs, macs, ..., subsets=None)``, the one-class signature,
still builds the kind its arguments describe.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from committee_tasks.committees.confidence import get_confidence, get_torch_confidence
from committee_tasks.committees.subset_columns import SubsetColumns, subset_columns
from committee_tasks.committees.subsets import member_subsets
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.task import Task

Confidence = str | Callable[[np.ndarray], np.ndarray]


@dataclass
class SubsetRecord:
    """Per-sample statistics and confidences of one member subset's combined prediction, as the
    loop computed them for a statistics-caching task."""

    statistics: np.ndarray  # (N, K) additive statistics
    confidence: dict[str, np.ndarray]  # confidence name -> (N,)

    def subset(self, mask: np.ndarray) -> SubsetRecord:
        return SubsetRecord(self.statistics[mask], {k: v[mask] for k, v in self.confidence.items()})


@dataclass
class Stage:
    """A member subset's combined prediction on a pool's samples (or on some rows of them)."""

    members: tuple[str, ...]
    statistics: np.ndarray  # (N, K) per-sample additive statistics
    prediction: np.ndarray | None  # (N, C, ...) combined probabilities; None where only statistics were kept
    _confidence: Callable[[Confidence], np.ndarray] = field(repr=False)

    def confidence(self, confidence: Confidence) -> np.ndarray:
        """(N,) confidence of the combined prediction: a registered name, or (outputs kept) a callable."""
        return self._confidence(confidence)


class RememberedStages:
    """A pool read through a memo of each stage's statistics and one confidence, without its
    combined outputs: committees that share stages (the search's Pareto front, thousands of
    cascades over a few member prefixes) then form each stage's mean once. Committees evaluated
    through it give the pool's own figures, less `CommitteeResult.combined`."""

    def __init__(self, preds: PoolPredictions, confidence: Confidence):
        self.preds, self.confidence = preds, confidence
        self.ids, self.macs = preds.ids, preds.macs
        self._stages: dict[tuple[str, ...], Stage] = {}

    def check_members(self, names: Sequence[str]) -> None:
        self.preds.check_members(names)

    def stage(self, members: Sequence[str], task: Task, rows: np.ndarray | None = None) -> Stage:
        if rows is not None:
            return self.preds.stage(members, task, rows)
        key = tuple(members)
        if key not in self._stages:
            full = self.preds.stage(members, task)
            kept = full.confidence(self.confidence)  # computed now: the combined outputs are let go

            def confidence(name: Confidence, members=key, kept=kept) -> np.ndarray:
                return kept if name == self.confidence else self.preds.stage(members, task).confidence(name)

            self._stages[key] = Stage(key, full.statistics, None, confidence)
        return self._stages[key]


class _Kinds(abc.ABCMeta):
    def __call__(cls, *args, **kwargs):
        if cls is PoolPredictions:  # the one-class signature: build the kind the arguments describe
            return _from_arguments(*args, **kwargs)
        return super().__call__(*args, **kwargs)


@dataclass
class PoolPredictions(metaclass=_Kinds):
    """What the loop kept of a pool of members on the same samples (rows aligned by sample id)."""

    ids: np.ndarray
    macs: dict[str, np.ndarray]  # member -> (N,) MACs per sample
    skipped: dict[str, str] = field(default_factory=dict, kw_only=True)  # sample id -> why it was skipped
    notes: dict[str, str] = field(default_factory=dict, kw_only=True)  # sample id -> how it was handled
    # where the predictions come from: {"dataset": {"name", "fingerprint"}, "members": {name: fingerprint}}
    fingerprints: dict = field(default_factory=dict, kw_only=True)

    def __post_init__(self):
        for name, macs in self.macs.items():
            if len(macs) != len(self.ids):
                raise CommitteeError(f"member {name!r} has {len(macs)} MAC counts for {len(self.ids)} samples")

    @property
    def members(self) -> list[str]:
        return list(self.macs)

    def check_members(self, names: Sequence[str]) -> None:
        missing = [n for n in names if n not in self.macs]
        if missing:
            raise CommitteeError(f"no cached outputs for {missing}; evaluated members: {self.members}")

    # ---- the questions every kind answers ----------------------------------------------------
    @abc.abstractmethod
    def stage(self, members: Sequence[str], task: Task, rows: np.ndarray | None = None) -> Stage:
        """The members' mean prediction (its statistics, confidences and, where kept, itself),
        on every sample or on ``rows``."""

    def stage_statistics(self, members: Sequence[str], task: Task) -> np.ndarray:
        """(N, K) per-sample statistics of the members' mean prediction."""
        return self.stage(members, task).statistics

    def stage_confidence(self, members: Sequence[str], confidence: Confidence, task: Task) -> np.ndarray:
        """(N,) confidence of the members' mean prediction."""
        return self.stage(members, task).confidence(confidence)

    @abc.abstractmethod
    def subset_columns(self, members: Sequence[str], confidence: Confidence, task: Task, max_size: int,
                       chunk: int | None = None) -> SubsetColumns:
        """Per-sample confidence (float32) and statistics (float64) of the mean prediction of every
        subset of up to ``max_size`` of ``members``, keyed by sorted member-index tuples."""

    @property
    @abc.abstractmethod
    def num_classes(self) -> int: ...

    def require_outputs(self, what: str) -> None:
        """Refuse ``what`` unless the members' probabilities were kept (``outputs``, which is
        empty where only statistics were kept)."""

    @abc.abstractmethod
    def subset(self, mask: np.ndarray) -> PoolPredictions:
        """The same pool restricted to the samples where ``mask`` is True."""

    @abc.abstractmethod
    def tempered(self, temperatures: Mapping[str, float]) -> PoolPredictions:
        """Outputs after per-member temperature scaling (members not named stay as they are)."""

    def _kept(self, mask: np.ndarray) -> dict:
        """The fields every kind shares, restricted to the samples where ``mask`` is True."""
        return dict(ids=self.ids[mask], macs={m: c[mask] for m, c in self.macs.items()}, skipped=dict(self.skipped),
                    notes={sid: self.notes[sid] for sid in self.ids[mask].tolist() if sid in self.notes},
                    fingerprints=self.fingerprints)

    @classmethod
    def from_members(cls, arrays: Mapping[str, Mapping[str, np.ndarray]],
                     skipped: Mapping[str, str] | None = None, notes: Mapping[str, str] | None = None,
                     subsets: dict[frozenset, SubsetRecord] | None = None,
                     num_classes: int | None = None) -> PoolPredictions:
        """A pool from each member's ``ids`` and ``macs`` arrays (and ``targets`` and ``outputs``
        where outputs are kept), which must cover the same samples in the same order; with
        ``subsets`` (the loop's statistics of member subsets), a `StatisticsPredictions`."""
        names = list(arrays)
        first = arrays[names[0]]
        for name in names[1:]:
            _check_same_samples(names[0], first, name, arrays[name])
        common = dict(ids=first["ids"], macs={n: a["macs"] for n, a in arrays.items()},
                      skipped=dict(skipped or {}), notes=dict(notes or {}))
        if subsets is not None:
            return StatisticsPredictions(**common, subsets=subsets, classes=num_classes)
        without = [n for n, a in arrays.items() if "outputs" not in a]
        if without:
            raise CommitteeError(f"members {without} kept no outputs (their task caches statistics of member "
                                 "subsets): pass those statistics as subsets")
        return OutputPredictions(**common, targets=first["targets"], outputs={n: a["outputs"] for n, a in arrays.items()})


def _check_same_samples(first_name: str, first: Mapping[str, np.ndarray], name: str,
                        arrays: Mapping[str, np.ndarray]) -> None:
    ids = arrays["ids"]
    if len(ids) != len(first["ids"]) or not np.array_equal(ids, first["ids"]):
        only_first = sorted(set(first["ids"].tolist()) - set(ids.tolist()))[:3]
        only_this = sorted(set(ids.tolist()) - set(first["ids"].tolist()))[:3]
        raise CommitteeError(
            f"members {first_name!r} and {name!r} cover different samples ({len(first['ids'])} vs {len(ids)}; "
            f"only in the first e.g. {only_first}, only in the second e.g. {only_this}, or another order): "
            "evaluate them on the same dataset and sample list"
        )
    if "targets" in first and "targets" in arrays and not np.array_equal(arrays["targets"], first["targets"]):
        raise CommitteeError(f"members {first_name!r} and {name!r} disagree on the targets of the same samples")


def _from_arguments(ids, targets, outputs, macs, skipped=None, notes=None, subsets=None,
                    fingerprints=None) -> PoolPredictions:
    common = dict(skipped=dict(skipped or {}), notes=dict(notes or {}), fingerprints=dict(fingerprints or {}))
    if subsets is None:
        return OutputPredictions(ids, macs, targets, outputs, **common)
    if outputs:
        raise CommitteeError("a pool keeps either its members' outputs or statistics of member subsets, not both")
    return StatisticsPredictions(ids, macs, subsets, **common)


@dataclass
class OutputPredictions(PoolPredictions):
    """Each member's probabilities were kept: any combination and confidence can be computed."""

    targets: np.ndarray
    outputs: dict[str, np.ndarray]  # member -> (N, C, ...) probabilities

    def __post_init__(self):
        super().__post_init__()
        shapes = {}
        for name in self.macs:
            out = self.outputs.get(name)
            if out is None or len(out) != len(self.ids):
                count = "no" if out is None else len(out)
                raise CommitteeError(f"member {name!r} has {count} outputs for {len(self.ids)} samples")
            shapes[name] = out.shape[1:]
        if len(set(shapes.values())) > 1:
            listing = ", ".join(f"{m}: {s[0] if s else '?'}" for m, s in shapes.items())
            raise CommitteeError(
                f"members output different numbers of classes ({listing}); a committee needs "
                "members trained on the same label set"
            )

    @property
    def num_classes(self) -> int:
        return int(next(iter(self.outputs.values())).shape[1])

    def stage(self, members: Sequence[str], task: Task, rows: np.ndarray | None = None) -> Stage:
        self.check_members(members)
        pick = slice(None) if rows is None else rows
        combined = task.combine([self.outputs[m][pick] for m in members])
        statistics = task.sample_statistics(combined, self.targets[pick])
        return Stage(tuple(members), statistics, combined, lambda c: get_confidence(c)(combined))

    def subset_columns(self, members: Sequence[str], confidence: Confidence, task: Task, max_size: int,
                       chunk: int | None = None) -> SubsetColumns:
        """`committees.subset_columns`: means on candidate classes where that is exact, else on
        every class, in worker threads; equal to the committees' figures (`stage`)."""
        self.check_members(members)
        return subset_columns([self.outputs[m] for m in members], np.asarray(self.targets), confidence, task,
                              max_size, chunk)

    def subset(self, mask: np.ndarray) -> OutputPredictions:
        return OutputPredictions(targets=self.targets[mask], outputs={m: o[mask] for m, o in self.outputs.items()},
                                 **self._kept(mask))

    def tempered(self, temperatures: Mapping[str, float]) -> OutputPredictions:
        from committee_tasks.committees.temperature import tempered_numpy

        outputs = {m: tempered_numpy(o, temperatures[m]) if temperatures.get(m, 1.0) != 1.0 else o
                   for m, o in self.outputs.items()}
        return OutputPredictions(self.ids, self.macs, self.targets, outputs, skipped=dict(self.skipped),
                                 notes=dict(self.notes), fingerprints=self.fingerprints)


@dataclass
class StatisticsPredictions(PoolPredictions):
    """Only per-sample statistics and confidences of member subsets were kept (the loop computed
    them while the outputs were in memory); a confidence is available only if the task listed it
    in ``cached_confidences`` when the pool was evaluated."""

    subsets: dict[frozenset, SubsetRecord]  # frozenset of member names -> that subset's record
    classes: int | None = None  # the members' number of classes, where the loop said

    @property
    def outputs(self) -> dict[str, np.ndarray]:
        return {}  # no probabilities were kept

    @property
    def num_classes(self) -> int:
        if self.classes is None:
            raise CommitteeError("this pool of cached statistics does not record its number of classes; "
                                 "evaluate it with the loop (evaluate_pool), which records it")
        return self.classes

    def require_outputs(self, what: str) -> None:
        raise CommitteeError(f"{what} needs cached probabilities; this task caches per-sample statistics of "
                             "member subsets instead")

    def tempered(self, temperatures: Mapping[str, float]) -> PoolPredictions:
        self.require_outputs("temperature scaling (--temperature)")
        raise AssertionError("not reached: require_outputs refuses")

    def record(self, members: Sequence[str]) -> SubsetRecord:
        """The cached statistics of a subset's combined prediction."""
        key = frozenset(members)
        if key not in self.subsets:
            largest = max((len(k) for k in self.subsets), default=0)
            raise CommitteeError(
                f"no cached statistics for the combination {'+'.join(members)}: this task caches statistics "
                f"of member subsets of up to {largest} members of the evaluated pool {self.members}; evaluate "
                "a pool holding all of them"
            )
        return self.subsets[key]

    def stage(self, members: Sequence[str], task: Task, rows: np.ndarray | None = None) -> Stage:
        self.check_members(members)
        record = self.record(members)
        pick = slice(None) if rows is None else rows
        return Stage(tuple(members), record.statistics[pick], None,
                     lambda c: self._cached_confidence(record, c, members, task)[pick])

    def subset_columns(self, members: Sequence[str], confidence: Confidence, task: Task, max_size: int,
                       chunk: int | None = None) -> SubsetColumns:
        self.check_members(members)
        conf, stats = {}, {}
        for s in member_subsets(len(members), max_size):
            names = [members[i] for i in s]
            record = self.record(names)
            conf[s] = self._cached_confidence(record, confidence, names, task).astype(np.float32)
            stats[s] = np.asarray(record.statistics, dtype=np.float64)
        return conf, stats

    @staticmethod
    def _cached_confidence(record: SubsetRecord, confidence: Confidence, members: Sequence[str],
                           task: Task) -> np.ndarray:
        """The one place a confidence the loop did not compute is refused."""
        if isinstance(confidence, str) and confidence in record.confidence:
            return record.confidence[confidence]
        if isinstance(confidence, str):
            get_torch_confidence(confidence)  # an unknown name: the registry's error names the valid ones
        what = repr(confidence) if isinstance(confidence, str) else f"given as a function ({confidence!r})"
        raise CommitteeError(
            f"confidence {what} of {'+'.join(members)} was not computed by the evaluation loop: this pool kept "
            f"statistics of member subsets, not outputs, and the loop computed only "
            f"{', '.join(record.confidence) or 'no confidence'}. Register it (register_confidence), list its name "
            f"in the {task.name} task's cached_confidences ({type(task).__name__}.cached_confidences) and "
            "evaluate the pool again"
        )

    def subset(self, mask: np.ndarray) -> StatisticsPredictions:
        return StatisticsPredictions(subsets={k: r.subset(mask) for k, r in self.subsets.items()},
                                     classes=self.classes, **self._kept(mask))
