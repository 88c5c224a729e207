"""A search result as a reader sees it in a terminal (`tools/search.py`)."""
from __future__ import annotations

from typing import Any, Mapping

from committee_tasks.reporting.search_tables import format_macs, format_with_interval


def _both(m: Mapping[str, float], ci: Mapping[str, Any]) -> str:
    return f"{m['calibration']:.2f} / " + format_with_interval(m["evaluation"], ci["evaluation"], ".2f")


def _reference_line(r: Mapping[str, Any]) -> str:
    cost, acc = r["similar_cost"], r["similar_accuracy"]
    cells = [r["reference"], _both(r["metric"], r["metric_ci"]), format_macs(r["macs_mean"])]
    cells += ([cost["name"], _both(cost["metric"], cost["metric_ci"]),
               format_with_interval(cost["delta"], cost["delta_ci"], "+.2f"),
               # both splits: the budget holds on calibration, where it was chosen
               " / ".join(format_macs(cost["macs_mean"][s]) for s in ("calibration", "evaluation"))]
              if cost else ["–"] * 4)
    cells += ([acc["name"], _both(acc["metric"], acc["metric_ci"]),
               format_with_interval(acc["delta"], acc["delta_ci"], "+.2f"),
               format_macs(acc["macs_mean"]["evaluation"]), f"{acc['speedup']:.2f}x"] if acc else ["–"] * 5)
    return "| " + " | ".join(cells) + " |"


def spread(count: int, shown: int) -> list[int]:
    """Up to ``shown`` of ``count`` positions, evenly spread, the first and the last among them (the
    cheapest and the most accurate point of a front)."""
    if count <= shown:
        return list(range(count))
    if shown <= 1:
        return [count - 1][:shown]
    return sorted({round(i * (count - 1) / (shown - 1)) for i in range(shown)})


def _front_lines(report: Mapping[str, Any], shown: int) -> list[str]:
    points = {p["name"]: p for p in report["points"]}
    members = {m["name"]: m for m in report["members"]}
    front = report["front"]
    chosen = [front[i] for i in spread(len(front), shown)]
    lines = [f"\nPareto front chosen on the calibration split ({len(front)} models and committees; {len(chosen)} "
             "shown, cheapest first; MACs and figures calibration / evaluation):"]
    for name in chosen:
        p = points.get(name) or members[name]
        lines.append(f"  {format_macs(p['macs_mean']['calibration']):>8s}  {p['metric']['calibration']:.2f} / "
                     f"{p['metric']['evaluation']:.2f}  {name}")
    return lines


def _comparison_lines(report: Mapping[str, Any]) -> list[str]:
    metric = report["metric_name"]
    lines = ["\nconfidence functions against the most expensive model:"]
    for c in report["comparison"]:
        name = c["confidence"] + (" + temperature" if c["temperature"] else "")
        speed = f"{c['speedup']:.2f}x" if c["speedup"] else "–"
        delta_text = f"{c['delta_at_cost']:+.2f}" if c["delta_at_cost"] is not None else "–"
        lines.append(f"  {name:28s} speedup at similar {metric}: {speed:>7s}   Δ{metric} at similar cost: {delta_text}")
        picks = c.get("picks", {})  # absent from reports written before committees were named here
        for key, what in (("similar_accuracy", f"similar {metric}"), ("similar_cost", "similar cost")):
            if key in picks:
                lines.append(f"      {what}: {picks[key]['name']}")
        if c.get("temperatures"):
            lines.append("      temperatures: " + ", ".join(f"{m} {t:.3g}" for m, t in c["temperatures"].items()))
    return lines


def _swept(report: Mapping[str, Any]) -> str:
    thresholds = report.get("thresholds")  # absent from reports written before exact sweeps
    if not thresholds or report["method"] != "exhaustive":
        return ""
    return f"; thresholds: {thresholds['levels']} levels per stage, swept exactly: {thresholds['swept_exactly']}"


def _counted(method: str) -> str:
    """What the search's count counts."""
    return "candidates: the members and the cascades built" if method == "greedy" else "settings searched"


def render_search(report: Mapping[str, Any], front: int = 12) -> str:
    """The references table, the Pareto front (``front`` points shown), the confidence comparison
    and the search's timings."""
    metric = report["metric_name"]
    split = report["split"]
    level = f"{100 * report['interval']['confidence']:g}%"
    lines = [f"\n{report['task']} on {report['dataset']}: thresholds fitted on {split['calibration']} calibration "
             f"samples, figures as calibration / evaluation ({split['evaluation']} samples) with {level} intervals on "
             f"the evaluation split; {report['configurations']:,} {_counted(report['method'])} ({report['method']}"
             f"{_swept(report)}, confidence {report['confidence']})",
             f"| reference | {metric} | MACs | similar cost: committee | {metric} | Δ | MACs | similar accuracy: "
             f"committee | {metric} | Δ | MACs | speedup |",
             "|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    lines += [_reference_line(r) for r in report["references"]]
    lines += _front_lines(report, front)
    if report.get("comparison"):
        lines += _comparison_lines(report)
    lines.append("search time: " + ", ".join(f"{k} {v:.2f} s" for k, v in report["timings"].items()))
    return "\n".join(lines)
