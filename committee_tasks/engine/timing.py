"""Throughput measured like a benchmark, on a machine that may be busy.

Every row (member or committee) runs over the same preprocessed batches once per round, all rows
in every round (the starting row rotates from round to round), so load that comes and goes hits
every row alike; each row's speedup is the median of its per-round ratios to the reference's
throughput in the same round (paired). Figures carry their spread over rounds, a wide spread says
the machine was noisy, and a committee measured faster than a member it must run in full (any
member of an ensemble, a cascade's first) is flagged as noise, never reported as a result.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from committee_tasks.core.errors import CommitteeError

CASCADE_SLACK = 0.02  # a cascade may measure this much faster than its first member before it is flagged
NOISY_SPREAD = 0.10  # relative interquartile range of a row's per-round speedups that counts as noisy


def spread(values: Sequence[float]) -> dict[str, float | int]:
    """Median, quartiles and range of per-round figures."""
    v = np.asarray(values, dtype=np.float64)
    q1, median, q3 = np.percentile(v, [25, 50, 75])
    return {"median": float(median), "q1": float(q1), "q3": float(q3), "min": float(v.min()),
            "max": float(v.max()), "rounds": int(len(v))}


def relative_iqr(summary: Mapping[str, float]) -> float:
    return (summary["q3"] - summary["q1"]) / summary["median"] if summary["median"] else float("inf")


@dataclass
class Measured:
    """One row's throughput (samples/s) per round and its speedup over the reference per round."""

    name: str
    throughputs: list[float]
    speedups: list[float]

    @property
    def throughput(self) -> dict:
        return spread(self.throughputs)

    @property
    def speedup(self) -> dict:
        return spread(self.speedups)

    @property
    def noisy(self) -> bool:
        return relative_iqr(self.speedup) > NOISY_SPREAD


def measure_interleaved(runs: Mapping[str, Callable[[], tuple[int, float]]], reference: str,
                        rounds: int = 5) -> dict[str, Measured]:
    """Time every row ``rounds`` times, interleaved. ``runs[name]()`` runs that row once over the
    timed batches and returns (samples, seconds); warm-up is the caller's."""
    if rounds < 1:
        raise CommitteeError(f"--measure-rounds must be at least 1, got {rounds}")
    if reference not in runs:
        raise CommitteeError(f"the reference {reference!r} is not among the measured rows {list(runs)}")
    names = list(runs)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples, seconds = runs[name]()
            rates[name].append(samples / seconds if seconds > 0 else float("nan"))
    ref = rates[reference]
    return {name: Measured(name, rates[name], [t / rt for t, rt in zip(rates[name], ref)]) for name in names}


def implausible(kind: str, members: Sequence[str], own: Measured, measured: Mapping[str, Measured]) -> str | None:
    """Why a committee's measured throughput cannot be right, or None: it runs every member of an
    ensemble, and a cascade's first member on every sample, so it cannot be faster than they are.
    A cascade whose samples nearly all exit at its first stage runs about as fast as that member,
    so it is flagged only when faster by more than the spread of the two measurements (or 2%)."""
    must_run = list(members) if kind == "ensemble" else list(members[:1]) if kind == "cascade" else []
    mine = own.throughput["median"]
    for member in must_run:
        if member not in measured:
            continue
        theirs = measured[member].throughput
        slack = 0.0 if kind == "ensemble" else max(CASCADE_SLACK, relative_iqr(own.throughput), relative_iqr(theirs))
        if mine > theirs["median"] * (1 + slack):
            return (f"measured faster than its member {member} ({mine:.0f} vs "
                    f"{measured[member].throughput['median']:.0f} samples/s), which it runs in full on every "
                    "sample: timing noise, not a result; rerun on a quieter machine or with more --measure-rounds")
    return None
