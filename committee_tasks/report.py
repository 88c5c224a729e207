"""Result rows and their paper-style rendering: Markdown table, JSON and CSV."""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Sequence

from .cache import atomic_write, atomic_write_json
from .committees import CommitteeResult
from .tables import format_macs


def result_row(result: CommitteeResult, metric_name: str, reference: CommitteeResult,
               throughput: float | None = None, reference_throughput: float | None = None,
               published: dict | None = None) -> dict[str, Any]:
    """One member's or committee's figures, with speedups against the reference model."""
    row = {
        "name": result.name, "kind": result.kind, "members": result.members,
        "metric_name": metric_name, "metric": result.metric,
        "delta_metric": result.metric - reference.metric,
        "macs_mean": result.macs_mean, "macs_worst": result.macs_worst,
        "speedup_macs": reference.macs_mean / result.macs_mean if result.macs_mean else None,
        "throughput": throughput,
        "speedup_measured": (throughput / reference_throughput
                             if throughput and reference_throughput else None),
        "reference": reference.name,
    }
    if result.exit_fractions is not None:
        row["exit_fractions"] = result.exit_fractions
        row["thresholds"] = result.thresholds
    if published:
        row["published"] = published
    return row


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _fmt_rate(value: float | None) -> str:
    """Samples/s: whole numbers, but three significant digits below 100 (videos on a CPU run < 1/s)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    metric = rows[0]["metric_name"] if rows else "metric"
    reference = rows[0]["reference"] if rows else "?"
    header = ["model / committee", "kind", metric, f"Δ vs {reference}", "MACs mean", "MACs worst",
              "samples/s", "speedup (MACs)", "speedup (measured)", "exits per stage"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|"]
    for r in rows:
        exits = " / ".join(f"{100 * f:.1f}%" for f in r["exit_fractions"]) if r.get("exit_fractions") else ""
        cells = [r["name"], r["kind"], f"{r['metric']:.2f}", f"{r['delta_metric']:+.2f}", format_macs(r["macs_mean"]),
                 format_macs(r["macs_worst"]), _fmt_rate(r["throughput"]), _fmt(r["speedup_macs"], ".2f") + "x",
                 _fmt(r["speedup_measured"], ".2f") + ("x" if r["speedup_measured"] else ""), exits]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


CSV_FIELDS = ["name", "kind", "members", "metric_name", "metric", "delta_metric", "macs_mean", "macs_worst",
              "throughput", "speedup_macs", "speedup_measured", "exit_fractions", "thresholds", "reference"]


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (";".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()})
    atomic_write(Path(path), lambda f: f.write(buffer.getvalue().encode()))


def write_json(report: dict[str, Any], path: str | Path) -> None:
    atomic_write_json(Path(path), json.loads(json.dumps(report, default=float)))
