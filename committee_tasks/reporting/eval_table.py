"""Result rows of `tools/eval.py` and their rendering: Markdown table, JSON and CSV.

Each row's metric and its Δ against the reference carry a paired bootstrap interval; measured
throughput and speedup carry their spread over interleaved rounds; a row whose measurement is
implausible shows the reason instead of a figure; a fit that found no setting is a row that says so.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from committee_tasks.core.files import atomic_write, atomic_write_json
from committee_tasks.committees.scoring import CommitteeResult
from committee_tasks.search.intervals import Intervals
from committee_tasks.core.provenance import CSV_PROVENANCE, provenance_columns
from committee_tasks.reporting.search_tables import DASH, format_macs, format_number, format_with_interval, is_missing
from committee_tasks.engine.timing import Measured

MEASURED_COLUMNS = ("samples/s (IQR)", "speedup (measured, IQR)")  # vary by machine; the rest does not


def result_row(result: CommitteeResult, metric_name: str, reference: CommitteeResult,
               intervals: Intervals | None = None, measured: Measured | None = None,
               flag: str | None = None, published: dict | None = None) -> dict[str, Any]:
    """One member's or committee's figures, with intervals and speedups against the reference."""
    row = {
        "name": result.name, "kind": result.kind, "members": result.members,
        "metric_name": metric_name, "metric": result.metric,
        "delta_metric": result.metric - reference.metric,
        "macs_mean": result.macs_mean, "macs_worst": result.macs_worst,
        "speedup_macs": reference.macs_mean / result.macs_mean if result.macs_mean else None,
        "throughput": None, "speedup_measured": None,
        "reference": reference.name,
    }
    if intervals is not None:
        row["metric_ci"] = list(intervals.metric[result.name])
        row["delta_ci"] = list(intervals.delta[(result.name, reference.name)])
        row["delta_distinguishable"] = intervals.excludes_zero(result.name, reference.name)
    if measured is not None:
        row["measurement"] = {"throughput": measured.throughput, "speedup": measured.speedup,
                              "throughput_rounds": measured.throughputs, "noisy": measured.noisy}
        if flag:
            row["measurement_flag"] = flag
        else:
            row["throughput"] = measured.throughput["median"]
            row["speedup_measured"] = measured.speedup["median"]
    if result.exit_fractions is not None:
        row["exit_fractions"] = result.exit_fractions
        row["thresholds"] = result.thresholds
    if published:
        row["published"] = published
    return row


def unsatisfied_row(name: str, members: Sequence[str], metric_name: str, reference: str, fit: str) -> dict:
    """A fitted cascade whose objective no threshold setting met: a row without figures."""
    return {"name": name, "kind": "cascade", "members": list(members), "metric_name": metric_name, "metric": None,
            "delta_metric": None, "macs_mean": None, "macs_worst": None, "speedup_macs": None, "throughput": None,
            "speedup_measured": None, "reference": reference, "fit": fit,
            "fit_status": f"no threshold setting satisfies '{fit}' on the calibration split"}


def format_rate(value: float | None) -> str:
    """Samples/s: whole numbers, but three significant digits below 100 (videos on a CPU run < 1/s)."""
    if is_missing(value):
        return DASH
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _metric_cell(r: Mapping[str, Any]) -> str:
    return format_with_interval(r["metric"], r.get("metric_ci"), ".2f")


def _delta_cell(r: Mapping[str, Any]) -> str:
    if not is_missing(r["delta_metric"]) and r["name"] == r["reference"]:
        return "reference"
    return format_with_interval(r["delta_metric"], r.get("delta_ci"), "+.2f")


def _measured_cells(r: Mapping[str, Any]) -> list[str]:
    m = r.get("measurement")
    if m is None:
        return [DASH, DASH]
    if r.get("measurement_flag"):
        return ["noise (see below)", "noise (see below)"]
    tp, sp = m["throughput"], m["speedup"]
    return [f"{format_rate(tp['median'])} ({format_rate(tp['q1'])}–{format_rate(tp['q3'])})",
            f"{sp['median']:.2f}x ({sp['q1']:.2f}–{sp['q3']:.2f})"]


def markdown_table(rows: Sequence[dict[str, Any]], confidence: float = 0.95) -> str:
    metric = rows[0]["metric_name"] if rows else "metric"
    reference = rows[0]["reference"] if rows else "?"
    level = f"{100 * confidence:g}% CI"
    header = ["model / committee", "kind", f"{metric} ({level})", f"Δ vs {reference} ({level})", "MACs mean",
              "MACs worst", *MEASURED_COLUMNS[:1], "speedup (MACs)", *MEASURED_COLUMNS[1:], "exits per stage"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|"]
    for r in rows:
        exits = " / ".join(f"{100 * f:.1f}%" for f in r["exit_fractions"]) if r.get("exit_fractions") else ""
        name = r["name"] + (f" [{r['fit']}]" if r.get("fit_status") else "")
        throughput, speedup = _measured_cells(r)
        speedup_macs = format_number(r["speedup_macs"], ".2f", "x")
        cells = [name, r["kind"], _metric_cell(r), _delta_cell(r), format_macs(r["macs_mean"]),
                 format_macs(r["macs_worst"]), throughput, speedup_macs, speedup, r.get("fit_status") or exits]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_class_table(rows: Sequence[Mapping[str, Any]], classes: Sequence[str] | None) -> str:
    """The rows' first per-class figure (segmentation's IoU) as a Markdown table, a class per line
    and a column per row; "" where the rows have none. The JSON keeps every figure (IoU and Acc)."""
    scored = [r for r in rows if r.get("per_class")]
    if not scored or not classes:
        return ""
    figure = next(iter(scored[0]["per_class"]))
    header = [f"{figure} per class (%)", *(r["name"] for r in scored)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * len(scored)]
    for k, name in enumerate(classes):
        cells = [format_number(r["per_class"][figure][k], ".2f") for r in scored]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def fit_lines(rows: Sequence[Mapping[str, Any]], confidence: float = 0.95) -> list[str]:
    """For each fitted cascade: both splits against the reference (over-fitted thresholds show),
    and whether its Δ on the evaluation split is distinguishable from zero; or why it has no row."""
    reference = next(r for r in rows if r["name"] == rows[0]["reference"])
    level = f"{100 * confidence:g}%"
    lines = []
    for r in rows:
        if r.get("fit_status"):
            lines.append(f"  {r['name']} [{r['fit']}]: {r['fit_status']}")
        elif "fit" in r:
            c, rc = r["calibration"], reference["calibration"]
            lo, hi = r["delta_ci"]
            verdict = "distinguishable from 0" if r["delta_distinguishable"] else "not distinguishable from 0"
            # the model the fit aimed at, where it is not the table's reference (--budget resnet44 in a
            # table against resnet56 compared with resnet56 alone)
            target = next((t for t in rows if t["name"] == r.get("fit_target") and t is not reference), None)
            aimed = (f" (target {target['name']}: {target['calibration']['metric']:.2f}, "
                     f"{format_macs(target['calibration']['macs_mean'], 4)} MACs)"
                     if target is not None and "calibration" in target else "")
            lines.append(f"  {r['name']} [{r['fit']}]: calibration ({c['samples']} samples) {c['metric']:.2f} vs "
                         f"{reference['name']} {rc['metric']:.2f}, {format_macs(c['macs_mean'], 4)} MACs{aimed}; "
                         f"evaluation {r['metric']:.2f} vs {reference['metric']:.2f} (Δ {r['delta_metric']:+.2f}, "
                         f"{level} CI [{lo:+.2f}, {hi:+.2f}]: {verdict}), {format_macs(r['macs_mean'], 4)} MACs")
    return lines


CSV_FIELDS = ["name", "kind", "members", "metric_name", "metric", "metric_ci_low", "metric_ci_high", "delta_metric",
              "delta_ci_low", "delta_ci_high", "delta_distinguishable", "macs_mean", "macs_worst", "throughput",
              "throughput_q1", "throughput_q3", "measure_rounds", "speedup_macs", "speedup_measured",
              "speedup_measured_q1", "speedup_measured_q3", "measurement_flag", "exit_fractions", "thresholds",
              "reference", "fit", "fit_status", "calibration_metric", "calibration_macs_mean", "calibration_samples"]
def _csv_row(r: Mapping[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in r.items() if k in CSV_FIELDS}
    for key, target in (("metric_ci", "metric_ci"), ("delta_ci", "delta_ci")):
        if r.get(key):
            flat[f"{target}_low"], flat[f"{target}_high"] = r[key]
    m = r.get("measurement")
    if m:
        flat.update(throughput_q1=m["throughput"]["q1"], throughput_q3=m["throughput"]["q3"],
                    measure_rounds=m["throughput"]["rounds"])
        if not r.get("measurement_flag"):
            flat.update(speedup_measured_q1=m["speedup"]["q1"], speedup_measured_q3=m["speedup"]["q3"])
    if r.get("calibration"):
        flat.update(calibration_metric=r["calibration"]["metric"], calibration_macs_mean=r["calibration"]["macs_mean"],
                    calibration_samples=r["calibration"]["samples"])
    return {k: (";".join(map(str, v)) if isinstance(v, list) else v) for k, v in flat.items()}


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path, prov: Mapping[str, Any] | None = None) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS + (CSV_PROVENANCE if prov else []), extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({**_csv_row(r), **(provenance_columns(prov, r["members"]) if prov else {})})
    atomic_write(Path(path), lambda f: f.write(buffer.getvalue().encode()))


def write_json(report: dict[str, Any], path: str | Path) -> None:
    atomic_write_json(Path(path), json.loads(json.dumps(report, default=float)), strict=True)
