"""One search of a pool for one confidence function: committees for every reference (similar
accuracy, similar cost), the Pareto front and every ensemble, with each figure on both splits
and evaluation-split intervals. `committee_tasks.api.search_committees` calls it per variant."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from committee_tasks.committees.predictions import PoolPredictions, RememberedStages
from committee_tasks.committees.scoring import Cascade, CommitteeResult, Ensemble, Single
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.task import Task
from committee_tasks.search.exhaustive import Candidate, SubsetTable, search, subset_table
from committee_tasks.search.greedy import greedy_cascade
from committee_tasks.search.intervals import Bootstrap, bootstrap_intervals


GREEDY_ABOVE = 10  # members: beyond this, exhaustive search gives way to greedy construction


@dataclass
class SearchSettings:
    """What one search of a pool asks: the members, the references to match, committee sizes,
    the threshold grid, and how the evaluation split's intervals are computed."""

    pool: Sequence[str]
    references: Sequence[str] | None = None  # default: every pool member
    max_size: int = 4
    levels: int = 20  # grid levels at every decision stage but a cascade's last (unless exact_last is off)
    exact_last: bool = True  # every useful threshold of a cascade's last decision stage (exhaustive search)
    any_order: bool = False  # cascades in every member order, not only cheapest first
    worst_case: bool = False  # only committees whose worst-case MACs stay within the reference's
    combine: str = "mean"
    greedy: bool = False  # automatic above GREEDY_ABOVE members
    alpha: float = 0.0  # greedy: metric slack against the reference
    interval: Bootstrap = field(default_factory=Bootstrap)

    def __post_init__(self):
        from committee_tasks.committees.scoring import check_unique, member_names

        self.pool = member_names(self.pool)  # a list, or "a,b,c"
        if len(set(self.pool)) != len(self.pool):
            raise CommitteeError(f"a member is listed twice in --pool {self.pool}")
        self.references = member_names(self.references or self.pool)
        outside = [r for r in self.references if r not in self.pool]
        if outside:
            raise CommitteeError(f"references {outside} are not in the pool {self.pool}: add them to --pool")
        check_unique(self.references, "--references")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not (
                math.isfinite(self.alpha) and self.alpha >= 0):
            raise CommitteeError(f"--alpha must be a finite number >= 0 (the metric slack a greedy cascade may give "
                                 f"up against the reference, in metric units), got {self.alpha!r}")
        if self.max_size < 1 or self.levels < 2:
            raise CommitteeError(f"--max-size must be >= 1 and --levels >= 2, got {self.max_size} and {self.levels}")
        if self.combine not in ("mean", "last"):
            raise CommitteeError(f"unknown cascade combine rule {self.combine!r}; valid: 'mean', 'last'")
        if self.worst_case and self.uses_greedy:
            why = "--greedy" if self.greedy else f"a pool of more than {GREEDY_ABOVE} members (searched greedily)"
            raise CommitteeError(f"--worst-case with {why}: a greedy cascade ends with its reference, so its worst "
                                 "case always exceeds the reference's and no committee could qualify; search "
                                 f"exhaustively (at most {GREEDY_ABOVE} members, without --greedy) for --worst-case")

    @property
    def uses_greedy(self) -> bool:
        return self.greedy or len(self.pool) > GREEDY_ABOVE


class _Figures:
    """Each spec's figures on both splits, computed once; keeps the evaluation split's per-sample
    statistics for the intervals."""

    def __init__(self, task: Task, cal: PoolPredictions, ev: PoolPredictions, confidence: str):
        # every front committee re-reads a few stages: each stage's mean is formed once per split
        self.task, self.cal, self.ev = task, RememberedStages(cal, confidence), RememberedStages(ev, confidence)
        self.evaluation_statistics: dict[str, Any] = {}
        self._figures: dict[str, dict[str, Any]] = {}
        self._tables: tuple[SubsetTable, SubsetTable] | None = None

    def use_tables(self, calibration: SubsetTable, evaluation: SubsetTable) -> None:
        """Ensembles' figures from the search's subset tables of both splits (the same sums, in the
        same member order, as `Ensemble.evaluate`), instead of forming every ensemble's mean again."""
        self._tables = calibration, evaluation

    def _evaluate(self, spec) -> tuple[CommitteeResult, CommitteeResult]:
        if spec.kind == "ensemble" and self._tables is not None:
            subset = tuple(self._tables[0].members.index(m) for m in spec.members)
            if subset in self._tables[0].statistics and list(subset) == sorted(subset):  # sums in the same order
                return tuple(_ensemble_result(spec, subset, table, self.task) for table in self._tables)
        return spec.evaluate(self.cal, self.task), spec.evaluate(self.ev, self.task)

    def __call__(self, spec) -> dict[str, Any]:
        if spec.name not in self._figures:
            rc, re_ = self._evaluate(spec)
            self.evaluation_statistics[spec.name] = re_.sample_statistics
            self._figures[spec.name] = {
                "name": spec.name, "kind": spec.kind, "members": list(spec.members),
                "thresholds": getattr(spec, "thresholds", None),
                "metric": {"calibration": rc.metric, "evaluation": re_.metric},
                "macs_mean": {"calibration": rc.macs_mean, "evaluation": re_.macs_mean},
                "macs_worst": max(rc.macs_worst, re_.macs_worst), "exit_fractions": re_.exit_fractions}
        return dict(self._figures[spec.name])


def _ensemble_result(spec: Ensemble, subset: tuple[int, ...], table: SubsetTable, task: Task) -> CommitteeResult:
    statistics = table.statistics[subset]
    macs = sum(table.macs[i] for i in subset)  # float64, member by member, as Ensemble.evaluate adds them
    summed = statistics.sum(axis=0)
    return CommitteeResult(spec.name, spec.kind, list(spec.members), task.metric(summed), macs, summed,
                           sample_statistics=statistics)


def _committee(c: Candidate, confidence: str, combine: str):
    if c.kind == "member":
        return Single(c.members[0])
    if c.kind == "ensemble":
        return Ensemble(c.members)
    return Cascade(c.members, c.thresholds, confidence=confidence, combine=combine)


def _greedy_picks(task: Task, cal: PoolPredictions, s: SearchSettings, confidence: str, timings: dict,
                  figures: _Figures) -> tuple[dict, list, int]:
    """Picks per reference and the front among what the greedy construction considers: the members
    and one cascade built per reference. Like the exhaustive search, a pick is the cheapest
    candidate matching the reference's calibration metric (within ``alpha``, the construction's
    slack) and the most accurate within its MACs, so a greedy cascade costlier than its reference
    is not its match (the reference is), and the front holds only points none dominates."""
    t0 = time.perf_counter()
    built = [greedy_cascade(cal, task, s.pool, ref, s.alpha, confidence, s.levels, max_stages=s.max_size,
                            combine=s.combine)
             for ref in s.references] if s.max_size >= 2 else []  # --max-size 1: members only
    built = [c for c in built if c is not None]  # a reference no member helps: its picks are members
    timings["greedy"] = time.perf_counter() - t0
    candidates = list({c.name: c for c in [*(Single(m) for m in s.pool), *built]}.values())
    figs = {c.name: figures(c) for c in candidates}
    cost = {n: f["macs_mean"]["calibration"] for n, f in figs.items()}
    metric = {n: f["metric"]["calibration"] for n, f in figs.items()}
    picks = {}
    for ref in s.references:  # the reference itself is always a candidate: both picks exist
        allowed = [c for c in candidates if not s.worst_case  # --worst-case: within its worst-case MACs too
                   or figs[c.name]["macs_worst"] <= figs[ref]["macs_worst"] * (1 + 1e-9)]
        matching = [c for c in allowed if metric[c.name] >= metric[ref] - s.alpha - 1e-9]
        within = [c for c in allowed if cost[c.name] <= cost[ref] * (1 + 1e-9)]
        picks[ref] = {"similar_accuracy": min(matching, key=lambda c: (cost[c.name], -metric[c.name])),
                      "similar_cost": max(within, key=lambda c: (metric[c.name], -cost[c.name]))}
    front = [c for c in candidates if not any(
        cost[o.name] <= cost[c.name] and metric[o.name] >= metric[c.name]
        and (cost[o.name], metric[o.name]) != (cost[c.name], metric[c.name]) for o in candidates)]
    # of points tied on both (a cascade whose later stages no calibration sample reaches ties its
    # first member), the front keeps the one of fewest members: the others add nothing there
    tied: dict[tuple[float, float], Any] = {}
    for c in sorted(front, key=lambda c: len(c.members)):
        tied.setdefault((cost[c.name], metric[c.name]), c)
    front = [c for c in front if tied[cost[c.name], metric[c.name]] is c]
    return picks, front, len(candidates)  # what it chose among: the members and the cascades it built


def _exhaustive(task: Task, cal: PoolPredictions, ev: PoolPredictions, s: SearchSettings, confidence: str,
                figures: _Figures, timings: dict) -> tuple[dict, list, int, dict]:
    """Picks per reference, the front, the number of settings searched, and every ensemble's figures."""
    t0 = time.perf_counter()
    table = subset_table(cal, s.pool, task, confidence, max_size=s.max_size)
    timings["subsets"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = search(table, task, s.max_size, s.levels, s.any_order, s.combine, exact=s.exact_last)
    timings["settings"] = time.perf_counter() - t0
    picks = {}
    for ref in s.references:
        r = figures(Single(ref))
        worst = r["macs_worst"] if s.worst_case else None
        match = result.cheapest_matching(r["metric"]["calibration"], worst)
        within = result.best_within(r["macs_mean"]["calibration"], worst)
        picks[ref] = {key: None if i is None else _committee(result.candidate(i), confidence, s.combine)
                      for key, i in (("similar_accuracy", match), ("similar_cost", within))}
    front = [_committee(result.candidate(i), confidence, s.combine) for i in result.pareto()]
    t0 = time.perf_counter()
    figures.use_tables(table, subset_table(ev, s.pool, task, confidence, max_size=s.max_size))
    timings["subsets_evaluation"] = time.perf_counter() - t0
    ensembles = {}
    for subset in (sub for sub in table.statistics if len(sub) > 1):  # every ensemble, for the plots
        spec = Ensemble([s.pool[i] for i in subset])
        ensembles[spec.name] = figures(spec) | {"pareto": False}
    return picks, front, result.configurations, ensembles


def _reference_entries(picks: dict, members: dict, figures: _Figures, points: dict, front_names: set):
    references, deltas = [], []
    for ref, pick in picks.items():
        r = members[ref]
        entry = {"reference": ref, "metric": r["metric"], "macs_mean": r["macs_mean"]["evaluation"],
                 "throughput": None}
        for key, spec in pick.items():
            if spec is None or spec.kind == "member" and spec.name == ref:
                entry[key] = None
                continue
            figs = points.setdefault(spec.name, figures(spec) | {"pareto": spec.name in front_names})
            e_macs = figs["macs_mean"]["evaluation"]
            entry[key] = {"name": spec.name, "metric": figs["metric"], "macs_mean": figs["macs_mean"],
                          "speedup": r["macs_mean"]["evaluation"] / e_macs if e_macs else None,
                          "delta": figs["metric"]["evaluation"] - r["metric"]["evaluation"]}
            deltas.append((spec.name, ref))
        references.append(entry)
    return references, deltas


def search_variant(task: Task, cal: PoolPredictions, ev: PoolPredictions, confidence: str,
                   s: SearchSettings) -> dict:
    figures = _Figures(task, cal, ev, confidence)
    members = {m: figures(Single(m)) for m in s.pool}
    timings: dict[str, float] = {}
    points: dict[str, dict[str, Any]] = {}
    if s.uses_greedy:
        picks, front_specs, configurations = _greedy_picks(task, cal, s, confidence, timings, figures)
    else:
        picks, front_specs, configurations, points = _exhaustive(task, cal, ev, s, confidence, figures, timings)
    front_names = {spec.name for spec in front_specs}
    for spec in front_specs:
        if spec.kind != "member":
            points[spec.name] = figures(spec) | {"pareto": True}
    references, deltas = _reference_entries(picks, members, figures, points, front_names)
    add_intervals(task, references, figures.evaluation_statistics, deltas, s.interval)
    front = sorted(front_specs, key=lambda spec: figures(spec)["macs_mean"]["calibration"])
    exact = s.exact_last and not s.uses_greedy
    for point in points.values():
        if point["kind"] == "cascade":  # which decision stages were swept exactly (0-based)
            point["exact_stages"] = [len(point["members"]) - 2] if exact else []
    return {"thresholds": {"levels": s.levels, "swept_exactly": "last decision stage of each cascade" if exact
                           else "none (grid at every stage)"},
            "members": [{"name": m, "metric": v["metric"], "macs_mean": v["macs_mean"],
                         "macs_worst": v["macs_worst"], "throughput": None} for m, v in members.items()],
            "points": [p for p in points.values() if p["kind"] != "member"],
            "front": [spec.name for spec in front],
            "references": references, "configurations": configurations, "timings": timings,
            "method": "greedy" if s.uses_greedy else "exhaustive"}


def add_intervals(task: Task, references: list[dict], statistics: dict, deltas: list, bootstrap: Bootstrap) -> None:
    """Evaluation-split intervals of each reference's metric, its committees' metrics and their Δs."""
    names = {e["reference"] for e in references} | {a for a, _ in deltas}
    intervals = bootstrap_intervals(task, {n: statistics[n] for n in names}, list(dict.fromkeys(deltas)), bootstrap)
    for entry in references:
        entry["metric_ci"] = {"evaluation": list(intervals.metric[entry["reference"]])}
        for key in ("similar_accuracy", "similar_cost"):
            pick = entry.get(key)
            if pick:
                pick["metric_ci"] = {"evaluation": list(intervals.metric[pick["name"]])}
                pick["delta_ci"] = list(intervals.delta[(pick["name"], entry["reference"])])
                pick["delta_distinguishable"] = intervals.excludes_zero(pick["name"], entry["reference"])


def compare_line(summary: dict) -> dict:
    """How a confidence variant does against the most expensive single model: its figures, the
    committees that make them (``picks``: each with the point that builds it, so its card can be
    written) and the temperatures they run with."""
    ref = max(summary["references"], key=lambda r: r["macs_mean"])
    acc, cost = ref["similar_accuracy"], ref["similar_cost"]
    points = {p["name"]: p for p in summary["points"]}
    picks = {key: pick | {"point": points.get(pick["name"])} for key, pick in
             (("similar_accuracy", acc), ("similar_cost", cost)) if pick}
    return {"confidence": summary["confidence"], "temperature": bool(summary["temperatures"]),
            "temperatures": dict(summary["temperatures"]),
            "reference": ref["reference"], "speedup": acc["speedup"] if acc else None,
            "delta_at_cost": cost["delta"] if cost else None, "picks": picks}
