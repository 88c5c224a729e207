"""Ensembles and cascades, computed from what the loop kept alone (no model is run).

Every metric is the task's metric of per-sample statistics summed over samples; a cascade takes,
per sample, the statistics of the stage at which that sample exits. Stages are read through
`PoolPredictions.stage`, the same for cached outputs and cached subset statistics.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from committee_tasks.committees.confidence import check_thresholds, get_confidence
from committee_tasks.committees.predictions import PoolPredictions
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.task import Task


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

    def __repr__(self) -> str:  # the figures, not every per-sample array (a notebook cell of 10,000 rows)
        from committee_tasks.core.units import format_macs

        exits = f", exit_fractions={[round(f, 4) for f in self.exit_fractions]}" if self.exit_fractions else ""
        thresholds = f", thresholds={self.thresholds}" if self.thresholds is not None else ""
        return (f"CommitteeResult({self.name!r}, kind={self.kind!r}, metric={self.metric:.4f}, samples={len(self.macs)}, "
                f"macs_mean={format_macs(self.macs_mean)}{thresholds}{exits})")

    @property
    def macs_worst(self) -> float:
        return float(self.worst_case_macs if self.worst_case_macs is not None else self.macs.max())


def member_result(preds: PoolPredictions, task: Task, name: str) -> CommitteeResult:
    stage = preds.stage([name], task)
    summed = stage.statistics.sum(axis=0)
    return CommitteeResult(name, "member", [name], task.metric(summed), preds.macs[name].astype(np.float64),
                           summed, combined=stage.prediction, sample_statistics=stage.statistics)


def member_names(members: Sequence[str] | str) -> list[str]:
    """A committee's member names from a list, or from "a,b" as the command line takes them (a
    string is never read letter by letter)."""
    if isinstance(members, str):
        return [n.strip() for n in members.split(",") if n.strip()]
    return list(members)


def check_unique(members: Sequence[str], what: str) -> None:
    """Refuse a member named twice: the same model again adds its cost but no new opinion (an
    ensemble would weigh it double, a cascade would run it twice)."""
    twice = sorted({m for m in members if list(members).count(m) > 1})
    if twice:
        raise CommitteeError(f"{what} lists {', '.join(map(repr, twice))} more than once ({list(members)}); "
                             "name each once")


class Single:
    """One member on its own, so members and committees share one code path."""

    kind = "member"

    def __init__(self, member: str):
        self.members = [member]
        self.name = member

    def evaluate(self, preds: PoolPredictions, task: Task) -> CommitteeResult:
        return member_result(preds, task, self.name)

    def __repr__(self) -> str:
        return f"Single({self.name!r})"


class Ensemble:
    """Run every member and average their outputs."""

    kind = "ensemble"

    def __init__(self, members: Sequence[str] | str):
        members = member_names(members)
        if len(members) < 2:
            raise CommitteeError(f"an ensemble needs at least 2 members, got {list(members)}")
        check_unique(members, "an ensemble")
        self.members = list(members)

    @property
    def name(self) -> str:
        return "ensemble(" + "+".join(self.members) + ")"

    def __repr__(self) -> str:
        return f"Ensemble({self.members})"

    def evaluate(self, preds: PoolPredictions, task: Task) -> CommitteeResult:
        stage = preds.stage(self.members, task)
        macs = sum(preds.macs[m].astype(np.float64) for m in self.members)
        summed = stage.statistics.sum(axis=0)
        return CommitteeResult(self.name, self.kind, self.members, task.metric(summed), macs, summed,
                               combined=stage.prediction, sample_statistics=stage.statistics)


def threshold_text(threshold: float) -> str:
    """A threshold as names and tables print it: the shortest text that reads back as the same
    threshold, so a cascade retyped from its name is the same committee. The confidences are
    float32 (and compared in float32), so a float32 value prints as float32's shortest text
    (0.50675964, where six digits, 0.50676, let samples at 0.50675964 through no more); other
    values as float64's. They are computed from the outputs as cached (float16 by default), so the
    same committee needs outputs of the same dtype (cards record it)."""
    if not np.isfinite(threshold):
        return f"{threshold:g}"
    if float(np.float32(threshold)) != threshold:
        return repr(float(threshold))
    return np.format_float_positional(np.float32(threshold), unique=True, trim="-")


class Cascade:
    """Run members in order; a sample exits at the first stage whose confidence reaches that
    stage's threshold (the last stage always exits).

    The prediction at stage k is the mean of the outputs of members 1..k (``combine="mean"``, the
    paper's rule) or member k's alone (``combine="last"``).
    """

    kind = "cascade"

    def __init__(self, members: Sequence[str] | str, thresholds: float | Sequence[float],
                 confidence: str | Callable[[np.ndarray], np.ndarray] = "max_prob", combine: str = "mean"):
        members = member_names(members)
        if len(members) < 2:
            raise CommitteeError(f"a cascade needs at least 2 members, got {members}")
        check_unique(members, "a cascade")
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
        # outside the confidence's range a finite threshold lets every sample exit, or none, which
        # says so better as -inf or +inf (+inf: a stage the search found no sample should exit at)
        thresholds = check_thresholds(thresholds, confidence, f"cascade of {members}", infinite=True)
        self.members = members
        self.thresholds = thresholds
        self.confidence = confidence
        self.confidence_fn = get_confidence(confidence)
        self.combine = combine

    @property
    def name(self) -> str:
        return "cascade(" + ">".join(self.members) + ")@" + ",".join(threshold_text(t) for t in self.thresholds)

    def __repr__(self) -> str:  # what builds it again
        confidence = self.confidence if isinstance(self.confidence, str) else getattr(self.confidence, "__name__", "?")
        thresholds = "[" + ", ".join(threshold_text(t) for t in self.thresholds) + "]"
        return (f"Cascade({self.members}, {thresholds}"
                + (f", confidence={confidence!r}" if confidence != "max_prob" else "")
                + (f", combine={self.combine!r}" if self.combine != "mean" else "") + ")")

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
        stats = combined = None
        for k, member in enumerate(self.members):
            active = exit_stage < 0
            macs[active] += preds.macs[member][active]
            stage = preds.stage(self.members[: k + 1] if self.combine == "mean" else [member], task)
            if k == len(self.members) - 1:
                stop = active  # the last stage always exits
            else:
                stop = active & (stage.confidence(self.confidence) >= self.thresholds[k])
            stats = _take(stats, stage.statistics, stop, np.float64)
            combined = _take(combined, stage.prediction, stop)
            exit_stage[stop] = k
        summed = stats.sum(axis=0)
        fractions = [float((exit_stage == k).mean()) for k in range(len(self.members))]
        worst = float(sum(preds.macs[m].astype(np.float64) for m in self.members).max())
        return CommitteeResult(self.name, self.kind, self.members, task.metric(summed), macs, summed,
                               exit_fractions=fractions, thresholds=self.thresholds, exit_stage=exit_stage,
                               combined=combined, worst_case_macs=worst, sample_statistics=stats)


def _take(into: np.ndarray | None, values: np.ndarray | None, rows: np.ndarray, dtype=None) -> np.ndarray | None:
    """``into`` (zeros like ``values`` at first) with ``rows`` taken from ``values``; None where
    ``values`` is (a prediction that was not kept)."""
    if values is None:
        return None
    if into is None:
        into = np.zeros_like(values, dtype=dtype)
    into[rows] = values[rows]
    return into


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
