"""What a cascade's thresholds are fitted for, as objects (never strings sniffed for numbers).

* `Match(reference)`: the cheapest setting whose metric on the calibration split is at least the
  reference model's (the paper's question).
* `Budget(reference=... | macs=...)`: the most accurate setting whose mean MACs are at most the
  reference's (or a number of MACs per sample).
* `Guarantee(reference, eps, delta)`: the cheapest setting that Learn-then-Test certifies to lose at
  most ``eps`` of the reference's metric on new data, with probability at least 1 - delta.

Each ``fit`` returns the fitted `Cascade`, or None when no setting meets the objective (which the
reports show as a row saying so).
"""
from __future__ import annotations

import numbers

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence, Union

from committee_tasks.core.errors import CommitteeError, require
from committee_tasks.core.units import format_macs, parse_macs

if TYPE_CHECKING:
    from committee_tasks.committees.predictions import PoolPredictions
    from committee_tasks.committees.scoring import Cascade
    from committee_tasks.core.task import Task


@dataclass(frozen=True)
class FitSettings:
    """How every objective searches: the cascade's confidence and combine rule, grid levels, and
    an optional bound on worst-case MACs."""

    confidence: str = "max_prob"
    combine: str = "mean"
    levels: int = 20
    macs_worst: float | None = None

    def __post_init__(self):
        if self.levels < 2:
            raise CommitteeError(f"--levels must be at least 2 threshold levels per stage, got {self.levels}")


def _reference_figures(calib: PoolPredictions, task: Task, reference: str):
    from committee_tasks.committees.scoring import Single

    return Single(reference).evaluate(calib, task)


class _Objective:
    reference: str | None
    LABEL = ""  # the objective in words, formatted with its fields (reports show it)

    @property
    def label(self) -> str:
        return self.LABEL.format(**vars(self))

    @property
    def models(self) -> tuple[str, ...]:
        """The models this objective names, which the pool must hold."""
        return (self.reference,) if self.reference else ()


def _fit_on_grid(calib: PoolPredictions, task: Task, members: Sequence[str], settings: FitSettings,
                 **objective: float) -> Cascade | None:
    from committee_tasks.search.fitting import fit_cascade

    return fit_cascade(calib, task, members, confidence=settings.confidence, combine=settings.combine,
                       levels=settings.levels, macs_worst=settings.macs_worst, **objective)


@dataclass(frozen=True)
class Match(_Objective):
    reference: str
    LABEL = "match {reference}"

    def fit(self, calib: PoolPredictions, task: Task, members: Sequence[str], settings: FitSettings) -> Cascade | None:
        return _fit_on_grid(calib, task, members, settings,
                            match=_reference_figures(calib, task, self.reference).metric)


@dataclass(frozen=True)
class Budget(_Objective):
    reference: str | None = None
    macs: float | None = None

    def __post_init__(self):
        if self.reference is not None and self.macs is None and parse_macs(self.reference) is not None:
            object.__setattr__(self, "macs", parse_macs(self.reference))  # Budget("50M"): MACs, as --budget reads it
            object.__setattr__(self, "reference", None)
        if isinstance(self.macs, str):  # Budget(macs="50M")
            if parse_macs(self.macs) is None:
                raise CommitteeError(f"a MACs budget must be a number of MACs per sample (2.5e8, 50M, 4.1G), got "
                                     f"{self.macs!r}")
            object.__setattr__(self, "macs", parse_macs(self.macs))
        if (self.reference is None) == (self.macs is None):
            raise CommitteeError("a budget is a reference model or a number of MACs per sample: give one of the two")
        if self.macs is not None and (isinstance(self.macs, bool) or not isinstance(self.macs, numbers.Real)):
            raise CommitteeError(f"a MACs budget must be a number of MACs per sample, got {self.macs!r}")
        if self.macs is not None and not 0 < self.macs < float("inf"):
            raise CommitteeError(f"a MACs budget must be a positive finite number of MACs per sample, got {self.macs}")

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``--budget MODEL``, or MACs per sample: ``--budget 2.5e8``, ``--budget 50M``."""
        try:
            return cls(macs=float(text))  # "inf" and "nan" too: refused as MACs, not looked up as models
        except ValueError:
            return cls(reference=text)  # "50M" becomes MACs in __post_init__, as Budget("50M") does

    @property
    def label(self) -> str:
        return f"budget {self.reference}" if self.reference else f"budget {format_macs(self.macs, 6)} MACs"

    def fit(self, calib: PoolPredictions, task: Task, members: Sequence[str], settings: FitSettings) -> Cascade | None:
        budget = self.macs if self.macs is not None else _reference_figures(calib, task, self.reference).macs_mean
        return _fit_on_grid(calib, task, members, settings, budget=budget)


@dataclass(frozen=True)
class Guarantee(_Objective):
    reference: str
    eps: float
    delta: float
    bound: str = "bernstein"
    LABEL = "guarantee {reference} eps={eps:g} delta={delta:g} ({bound})"

    def __post_init__(self):
        from committee_tasks.search.guarantee import BOUNDS

        require(0 < self.delta < 1, f"a guarantee's delta must be in (0, 1), got {self.delta}")
        require(0 <= self.eps < float("inf"), f"a guarantee's eps must be a finite number >= 0 (metric units), "
                                              f"got {self.eps}")
        require(self.bound in BOUNDS, f"unknown bound {self.bound!r}; valid: {list(BOUNDS)}")

    def fit(self, calib: PoolPredictions, task: Task, members: Sequence[str], settings: FitSettings) -> Cascade | None:
        from committee_tasks.search.fitting import fit_guaranteed_cascade

        cascade, _ = fit_guaranteed_cascade(calib, task, members, self.reference, self.eps, self.delta, self.bound,
                                            confidence=settings.confidence, combine=settings.combine)
        return cascade


Objective = Union[Match, Budget, Guarantee]
