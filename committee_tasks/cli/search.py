"""`tools/search.py`: search every ensemble and cascade of a pool from the prediction cache.

Thresholds are chosen on the calibration split and every figure is reported on both splits;
for each single model: the committee matching its metric at the fewest MACs (similar accuracy)
and the best one within its MACs (similar cost), plus the Pareto front. Writes the JSON that
`tools/report.py` turns into paper-style tables and plots.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from committee_tasks.cli.eval import (_names, add_data_args, add_execution_args, add_interval_args, add_split_args,
                  calibration_and_evaluation, command_line, load_pool, prepare_task)
from committee_tasks.committees.scoring import Cascade, Ensemble, PoolPredictions, Single
from committee_tasks.committees.confidence import confidence_names, get_confidence
from committee_tasks.core.errors import CommitteeError, run_tool
from committee_tasks.search.greedy import greedy_cascade
from committee_tasks.engine.cache import atomic_write_json
from committee_tasks.search.intervals import Bootstrap, bootstrap_intervals
from committee_tasks.core.provenance import SCHEMA_VERSION, provenance
from committee_tasks.search.exhaustive import Candidate, search, subset_table
from committee_tasks.reporting.search_tables import format_macs, format_with_interval
from committee_tasks.core.task import Task
from committee_tasks.committees.temperature import fit_temperature

log = logging.getLogger("committee_tasks")
GREEDY_ABOVE = 10  # members: beyond this, exhaustive search gives way to greedy construction


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tools/search.py", description=__doc__)
    p.add_argument("--task", default="classification")
    p.add_argument("--pool", type=_names, required=True, help="members to search over: a,b,c,...")
    add_data_args(p)
    s = p.add_argument_group("search")
    s.add_argument("--references", type=_names, help="single models to match (default: every pool member)")
    s.add_argument("--max-size", type=int, default=4, help="largest committee (members)")
    s.add_argument("--levels", type=int, default=20, help="threshold levels per cascade stage")
    s.add_argument("--any-order", action="store_true", help="cascades in every member order, not only cheapest first")
    s.add_argument("--worst-case", action="store_true",
                   help="keep only committees whose worst-case MACs stay within the reference's")
    s.add_argument("--confidence", type=_names, default=["max_prob"],
                   help=f"confidence function(s) to compare: {confidence_names()}")
    s.add_argument("--temperature", action="store_true",
                   help="also compare each confidence after per-member temperature scaling")
    s.add_argument("--cascade-combine", choices=["mean", "last"], default="mean")
    s.add_argument("--greedy", action="store_true",
                   help=f"greedy cascade construction (Streeter 2018); automatic above {GREEDY_ABOVE} members")
    s.add_argument("--alpha", type=float, default=0.0, help="greedy: metric slack against the reference")
    add_split_args(s)
    add_execution_args(p)
    add_interval_args(p)
    p.add_argument("--json", help="write the search result (input of tools/report.py)")
    p.add_argument("--front", type=int, default=12, help="Pareto points to print")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command = command_line(parser, argv)
    return run_tool(run, args)


def run(args: argparse.Namespace) -> int:
    task = prepare_task(args)
    if len(set(args.pool)) != len(args.pool):
        raise CommitteeError(f"a member is listed twice in --pool {args.pool}")
    for name in args.confidence:
        get_confidence(name)  # an unknown name fails before anything runs
    for name in args.pool:
        task.model_entry(name)
    args.references = args.references or args.pool
    outside = [r for r in args.references if r not in args.pool]
    if outside:
        raise CommitteeError(f"references {outside} are not in the pool {args.pool}: add them to --pool")
    if args.max_size < 1 or args.levels < 2:
        raise CommitteeError(f"--max-size must be >= 1 and --levels >= 2, got {args.max_size} and {args.levels}")
    bootstrap = Bootstrap(args.interval_level, args.resamples)
    loaded = load_pool(task, args, args.pool)
    calib, evaluation = calibration_and_evaluation(task, args, loaded)

    variants = [(c, False) for c in args.confidence] + ([(c, True) for c in args.confidence] if args.temperature else [])
    summaries = []
    primary = None
    for confidence, temper in variants:
        cal, ev, temps = calib, evaluation, {}
        if temper:
            calib.require_outputs("temperature scaling (--temperature)")
            temps = {m: fit_temperature(calib.outputs[m], calib.targets) for m in args.pool}
            cal, ev = calib.tempered(temps), evaluation.tempered(temps)
        result = search_variant(task, args, cal, ev, confidence, bootstrap)
        result.update(confidence=confidence, temperatures=temps)
        summaries.append(result)
        primary = primary or result
    report = {"schema_version": SCHEMA_VERSION,
              "provenance": provenance(args.device, None, loaded.preds.fingerprints, args.command),
              "task": task.name, "dataset": loaded.dataset.name, "dataset_title": loaded.dataset.describe(),
              "metric_name": task.metric_name, "worst_case": args.worst_case,
              "split": {"calibration": len(calib.ids), "evaluation": len(evaluation.ids)},
              "interval": {"confidence": bootstrap.confidence, "resamples": bootstrap.resamples,
                           "seed": bootstrap.seed, "split": "evaluation",
                           "method": "percentile bootstrap over samples, paired across rows"}, **primary}
    if len(summaries) > 1:
        report["comparison"] = [compare_line(s) for s in summaries]
    print_search(report, args)
    if args.json:
        atomic_write_json(Path(args.json), report)
    return 0


class _Figures:
    """Each spec's figures on both splits, computed once; keeps the evaluation split's per-sample
    statistics for the intervals."""

    def __init__(self, task: Task, cal: PoolPredictions, ev: PoolPredictions):
        self.task, self.cal, self.ev = task, cal, ev
        self.evaluation_statistics: dict[str, Any] = {}
        self._figures: dict[str, dict[str, Any]] = {}

    def __call__(self, spec) -> dict[str, Any]:
        if spec.name not in self._figures:
            rc, re_ = spec.evaluate(self.cal, self.task), spec.evaluate(self.ev, self.task)
            self.evaluation_statistics[spec.name] = re_.sample_statistics
            self._figures[spec.name] = {
                "name": spec.name, "kind": spec.kind, "members": list(spec.members),
                "thresholds": getattr(spec, "thresholds", None),
                "metric": {"calibration": rc.metric, "evaluation": re_.metric},
                "macs_mean": {"calibration": rc.macs_mean, "evaluation": re_.macs_mean},
                "macs_worst": max(rc.macs_worst, re_.macs_worst), "exit_fractions": re_.exit_fractions}
        return dict(self._figures[spec.name])


def _committee(c: Candidate, confidence: str, combine: str):
    if c.kind == "member":
        return Single(c.members[0])
    if c.kind == "ensemble":
        return Ensemble(c.members)
    return Cascade(c.members, c.thresholds, confidence=confidence, combine=combine)


def search_variant(task: Task, args, cal: PoolPredictions, ev: PoolPredictions, confidence: str,
                   bootstrap: Bootstrap) -> dict:
    figures = _Figures(task, cal, ev)
    members = {m: figures(Single(m)) for m in args.pool}
    timings: dict[str, float] = {}
    picks: dict[str, dict[str, Any]] = {}
    points: dict[str, dict[str, Any]] = {}
    greedy = args.greedy or len(args.pool) > GREEDY_ABOVE
    if greedy:
        t0 = time.perf_counter()
        for ref in args.references:
            cascade = greedy_cascade(cal, task, args.pool, ref, args.alpha, confidence, args.levels)
            picks[ref] = {"similar_accuracy": cascade, "similar_cost": None}
        timings["greedy"] = time.perf_counter() - t0
        front_specs = [p["similar_accuracy"] for p in picks.values() if p["similar_accuracy"] is not None]
        configurations = len(args.pool)
    else:
        t0 = time.perf_counter()
        table = subset_table(cal, args.pool, task, confidence, max_size=args.max_size)
        timings["subsets"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = search(table, task, args.max_size, args.levels, args.any_order, args.cascade_combine)
        timings["settings"] = time.perf_counter() - t0
        configurations = result.configurations
        for ref in args.references:
            r = members[ref]
            worst = r["macs_worst"] if args.worst_case else None
            match = result.cheapest_matching(r["metric"]["calibration"], worst)
            within = result.best_within(r["macs_mean"]["calibration"], worst)
            picks[ref] = {key: None if i is None else _committee(result.candidate(i), confidence, args.cascade_combine)
                          for key, i in (("similar_accuracy", match), ("similar_cost", within))}
        front_specs = [_committee(result.candidate(i), confidence, args.cascade_combine) for i in result.pareto()]
        for subset in (s for s in table.statistics if len(s) > 1):  # every ensemble, for the plots
            spec = Ensemble([args.pool[i] for i in subset])
            points[spec.name] = figures(spec) | {"pareto": False}
    front_names = {spec.name for spec in front_specs}
    for spec in front_specs:
        if spec.kind != "member":
            points[spec.name] = figures(spec) | {"pareto": True}
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
    add_intervals(task, references, figures.evaluation_statistics, deltas, bootstrap)
    front = sorted(front_specs, key=lambda spec: figures(spec)["macs_mean"]["calibration"])
    return {"members": [{"name": m, "metric": v["metric"], "macs_mean": v["macs_mean"],
                         "macs_worst": v["macs_worst"], "throughput": None} for m, v in members.items()],
            "points": [p for p in points.values() if p["kind"] != "member"],
            "front": [spec.name for spec in front],
            "references": references, "configurations": configurations, "timings": timings,
            "method": "greedy" if greedy else "exhaustive"}


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
    """How a confidence variant does against the most expensive single model."""
    ref = max(summary["references"], key=lambda r: r["macs_mean"])
    acc, cost = ref["similar_accuracy"], ref["similar_cost"]
    return {"confidence": summary["confidence"], "temperature": bool(summary["temperatures"]),
            "reference": ref["reference"], "speedup": acc["speedup"] if acc else None,
            "delta_at_cost": cost["delta"] if cost else None}


def print_search(report: dict, args) -> None:
    metric = report["metric_name"]
    split = report["split"]
    level = f"{100 * report['interval']['confidence']:g}%"
    print(f"\n{report['task']} on {report['dataset']}: thresholds fitted on {split['calibration']} calibration "
          f"samples, figures as calibration / evaluation ({split['evaluation']} samples) with {level} intervals on "
          f"the evaluation split; {report['configurations']:,} settings searched ({report['method']}, confidence "
          f"{report['confidence']})")
    print(f"| reference | {metric} | MACs | similar cost: committee | {metric} | Δ | similar accuracy: committee "
          f"| {metric} | Δ | MACs | speedup |")
    print("|---|---:|---:|---|---:|---:|---|---:|---:|---:|---:|")

    def both(m, ci):
        return f"{m['calibration']:.2f} / " + format_with_interval(m["evaluation"], ci["evaluation"], ".2f")

    def delta(c):
        return format_with_interval(c["delta"], c["delta_ci"], "+.2f")

    for r in report["references"]:
        cost, acc = r["similar_cost"], r["similar_accuracy"]
        cells = [r["reference"], both(r["metric"], r["metric_ci"]), format_macs(r["macs_mean"])]
        cells += [cost["name"], both(cost["metric"], cost["metric_ci"]), delta(cost)] if cost else ["–"] * 3
        cells += ([acc["name"], both(acc["metric"], acc["metric_ci"]), delta(acc),
                   format_macs(acc["macs_mean"]["evaluation"]), f"{acc['speedup']:.2f}x"] if acc else ["–"] * 5)
        print("| " + " | ".join(cells) + " |")
    points = {p["name"]: p for p in report["points"]}
    members = {m["name"]: m for m in report["members"]}
    front = report["front"]
    print(f"\nPareto front chosen on the calibration split ({len(front)} models and committees; {args.front} shown, "
          "cheapest first; MACs and figures calibration / evaluation):")
    for name in front[:: max(1, -(-len(front) // args.front))]:
        p = points.get(name) or members[name]
        print(f"  {format_macs(p['macs_mean']['calibration']):>8s}  {p['metric']['calibration']:.2f} / "
              f"{p['metric']['evaluation']:.2f}  {name}")
    if report.get("comparison"):
        print("\nconfidence functions against the most expensive model:")
        for c in report["comparison"]:
            name = c["confidence"] + (" + temperature" if c["temperature"] else "")
            speed = f"{c['speedup']:.2f}x" if c["speedup"] else "–"
            delta_text = f"{c['delta_at_cost']:+.2f}" if c["delta_at_cost"] is not None else "–"
            print(f"  {name:28s} speedup at similar {metric}: {speed:>7s}   Δ{metric} at similar cost: {delta_text}")
    t = report["timings"]
    print("search time: " + ", ".join(f"{k} {v:.2f} s" for k, v in t.items()))
