"""The evaluation report as a reader sees it in a terminal (`tools/eval.py`), and its files."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from committee_tasks.reporting.eval_table import fit_lines, markdown_table, per_class_table, write_csv, write_json

NOISY_NOTE = ("the machine was noisy: the measured speedup of {names} varied by more than {spread:.0f}% "
              "(interquartile range) between rounds; rerun on a quieter machine or with more --measure-rounds")


def skip_kinds(skipped: Mapping[str, str]) -> str:
    """How many samples were skipped for each kind of reason: what a reason says before its first
    colon (the error's type for an unreadable file, "wrong size" for a sample its members cannot take)."""
    kinds = Counter(reason.split(":", 1)[0] for reason in skipped.values())
    return ", ".join(f"{count} {kind}" for kind, count in kinds.most_common())


def rule_lines(rows) -> list[str]:
    """For each cascade of another confidence or combine rule than the defaults, which: its name
    says only its members and thresholds."""
    lines = []
    for r in rows:
        confidence, combine = r.get("confidence", "max_prob"), r.get("combine", "mean")
        parts = ([f"exits on confidence {confidence}"] if confidence != "max_prob" else []) + (
            ["a stage predicts with its last member alone"] if combine != "mean" else [])
        if parts:
            lines.append(f"{r['name']}: " + "; ".join(parts))
    return lines


def writer_lines(rows) -> list[str]:
    """Each member's loop throughput per writer, where several processes computed its outputs
    (torchrun ranks, --shard shares, earlier runs): each one device's speed, and over all of them."""
    lines = []
    for r in rows:
        by_writer = r.get("throughput_eval_loop_by_writer")
        if by_writer:
            overall = r.get("throughput_eval_loop")
            lines.append(f"{r['name']}: evaluation loop samples/s per writer: "
                         + ", ".join(f"{w} {v:.1f}" for w, v in sorted(by_writer.items()))
                         + (f" (over all: {overall:.1f})" if overall else ""))
    return lines


def heading(report: Mapping[str, Any]) -> str:
    """What the table is of: task, dataset, split and samples (and skips)."""
    split = " (evaluation split)" if any("calibration" in r for r in report["rows"]) else ""
    skipped = report["skipped"]
    return (f"{report['task']} on {report['dataset']}{split}: {report['samples']} samples"
            + (f" ({len(skipped)} skipped: {skip_kinds(skipped)})" if skipped else ""))


def render_eval_report(report: Mapping[str, Any]) -> str:
    """The table and every line under it, from an evaluation report's dict (``EvalReport.to_dict()``)."""
    rows = report["rows"]
    confidence = report["interval"]["confidence"]
    notes = report["notes"]
    skipped = report["skipped"]
    lines = ["", heading(report), markdown_table(rows, confidence)]
    lines += fit_lines(rows, confidence)
    lines += [f"  {line}" for line in rule_lines(rows)]
    lines += [f"  {line}" for line in writer_lines(rows)]
    lines += [f"  {r['name']}: {r['measurement_flag']}" for r in rows if r.get("measurement_flag")]
    noisy = [r["name"] for r in rows if (r.get("measurement") or {}).get("noisy") and not r.get("measurement_flag")]
    if noisy:
        spread = 100 * report["measurement"]["noisy_spread"]
        lines.append("  " + NOISY_NOTE.format(names=", ".join(noisy), spread=spread))
    lines += [f"  skipped {sid}: {reason}" for sid, reason in list(skipped.items())[:10]]
    if notes:
        lines.append(f"{len(notes)} samples handled specially (kept):")
        lines += [f"  {sid}: {note}" for sid, note in list(notes.items())[:10]]
    lines += [f"  {name}: {note}" for name, note in report["cost_notes"].items()]
    lines.append(report["note"])
    per_class = per_class_table(rows, report.get("classes"))
    if per_class:
        lines += ["", per_class]
    return "\n".join(lines)


def write_eval_files(report: Mapping[str, Any], json_path: Path | None = None, csv_path: Path | None = None,
                     markdown_path: Path | None = None) -> None:
    """The report as JSON, its rows as CSV (with provenance columns), its table as Markdown."""
    from committee_tasks.core.files import atomic_write
    from committee_tasks.core.provenance import short_line

    if json_path:
        write_json(dict(report), json_path)
    if csv_path:
        write_csv(report["rows"], csv_path, report["provenance"])
    if markdown_path:  # what the terminal shows around the table too: which split, the fits, the note
        confidence = report["interval"]["confidence"]
        fits = [f"- {line.strip()}" for line in [*fit_lines(report["rows"], confidence), *rule_lines(report["rows"]),
                                                   *writer_lines(report["rows"])]]
        parts = [f"**{heading(report)}**", markdown_table(report["rows"], confidence), "\n".join(fits),
                 report["note"], per_class_table(report["rows"], report.get("classes")),
                 "<!-- " + short_line(report["provenance"]) + " -->"]
        text = "\n\n".join(part for part in parts if part) + "\n"
        atomic_write(Path(markdown_path), lambda f: f.write(text.encode()))
