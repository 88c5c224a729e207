"""The paper's cross-task table (Wang et al. 2022, Tables 2/3) from search results.

Input: the JSON `tools/search.py` writes, one per task. For every reference model the table shows
its metric and MACs, the committee at similar cost (its metric and the gain Δ) and the committee
at similar accuracy (its metric, MACs and speedup). Table cells are evaluation-split figures (the
calibration split is where thresholds were fitted, so its figures flatter the committees); the
CSV and JSON keep both splits.

`build_tables(results)` returns plain JSON data (what `to_json` writes and reads back the same);
every renderer takes that.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from committee_tasks.core.files import atomic_write, atomic_write_json
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.provenance import CSV_PROVENANCE, SCHEMA_VERSION, check_schema, provenance_columns, short_line
from committee_tasks.core.units import DASH, format_macs, is_missing  # noqa: F401 (re-exported)

SPLITS = ("calibration", "evaluation")
GROUPS = ("similar_cost", "similar_accuracy")
REQUIRED = ("task", "dataset", "metric_name", "members", "points", "references")
REQUIRED_MEMBER = ("name", "metric", "macs_mean")
REQUIRED_POINT = ("name", "kind", "metric", "macs_mean")
REQUIRED_REFERENCE = ("reference", "metric", "macs_mean")
REQUIRED_COMMITTEE = ("name", "metric", "macs_mean")


# ---------------------------------------------------------------- validation

def _require(obj: Any, keys: Sequence[str], where: str, source: str) -> None:
    if not isinstance(obj, Mapping):
        raise CommitteeError(f"{source}: {where or 'the top level'} must be a JSON object, got "
                             f"{type(obj).__name__}; is this a tools/search.py --json result?")
    for key in keys:
        if key not in obj:
            at = f"{where}.{key}" if where else key
            raise CommitteeError(f"{source}: missing required key {at!r}; is this a tools/search.py --json result?")


def _require_split(value: Any, where: str, source: str) -> None:
    """A per-split figure: {"calibration": x, "evaluation": y}, or one number for both splits."""
    if isinstance(value, Mapping):
        if "evaluation" not in value:
            raise CommitteeError(f"{source}: missing required key {where + '.evaluation'!r} "
                                 "(tables report evaluation-split figures)")
    elif not isinstance(value, (int, float)) or isinstance(value, bool):
        raise CommitteeError(f"{source}: {where} must be a number or {{'calibration': .., 'evaluation': ..}}, "
                             f"got {value!r}")


def validate_result(result: Any, source: str = "<result>") -> dict[str, Any]:
    """Check the schema version and the keys tables and plots read; the error names the file
    (`source`) and the key path."""
    _require(result, (), "", source)
    check_schema(result, source)
    _require(result, REQUIRED, "", source)
    for list_key, required in (("members", REQUIRED_MEMBER), ("points", REQUIRED_POINT),
                               ("references", REQUIRED_REFERENCE)):
        items = result[list_key]
        if not isinstance(items, list):
            raise CommitteeError(f"{source}: {list_key!r} must be a list, got {type(items).__name__}")
        for i, item in enumerate(items):
            where = f"{list_key}[{i}]"
            _require(item, required, where, source)
            _require_split(item["metric"], f"{where}.metric", source)
            _require_split(item["macs_mean"], f"{where}.macs_mean", source)
            for group in GROUPS if list_key == "references" else ():
                committee = item.get(group)
                if committee is not None:
                    _require(committee, REQUIRED_COMMITTEE, f"{where}.{group}", source)
                    _require_split(committee["metric"], f"{where}.{group}.metric", source)
                    _require_split(committee["macs_mean"], f"{where}.{group}.macs_mean", source)
    return result


def split_value(value: Any, split: str = "evaluation") -> float | None:
    """One split's figure of a per-split dict; a plain number holds for both splits."""
    if isinstance(value, Mapping):
        value = value.get(split)
    return None if value is None else float(value)


# ---------------------------------------------------------------- building

def _interval(value: Any) -> list[float] | None:
    """An evaluation-split interval ([low, high]) of a per-split interval dict, or None."""
    bounds = value.get("evaluation") if isinstance(value, Mapping) else value
    return [float(b) for b in bounds] if bounds else None


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _row(ref: Mapping[str, Any]) -> dict[str, Any]:
    """One reference model's flat row: every figure, both splits, None where absent."""
    macs = split_value(ref["macs_mean"])
    row: dict[str, Any] = {"reference": ref["reference"]}
    for s in SPLITS:
        row[f"metric_{s}"] = split_value(ref["metric"], s)
    row["metric_ci"] = _interval(ref.get("metric_ci"))
    row["macs_mean"] = macs
    row["throughput"] = ref.get("throughput")
    for group in GROUPS:
        c = ref.get(group) or {}
        row[f"{group}_name"] = c.get("name")
        for s in SPLITS:
            row[f"{group}_metric_{s}"] = split_value(c.get("metric"), s)
        for s in SPLITS:
            row[f"{group}_macs_{s}"] = split_value(c.get("macs_mean"), s)
        c_metric, c_macs = row[f"{group}_metric_evaluation"], row[f"{group}_macs_evaluation"]
        # search.py writes both; recomputed (same definitions) when an older file lacks them
        delta = c.get("delta")
        if delta is None and c_metric is not None and row["metric_evaluation"] is not None:
            delta = c_metric - row["metric_evaluation"]
        row[f"{group}_metric_ci"] = _interval(c.get("metric_ci"))
        row[f"{group}_delta"] = delta
        row[f"{group}_delta_ci"] = list(c["delta_ci"]) if c.get("delta_ci") else None
        row[f"{group}_speedup"] = c.get("speedup") if c.get("speedup") is not None else _ratio(macs, c_macs)
    return row


def build_tables(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The cross-task table: one block per result (task), one row per reference model.

    `throughput` says whether any reference has a measured samples/s (the column is shown then).
    """
    blocks = []
    for result in results:
        validate_result(result)
        split = result.get("split") or {}
        blocks.append({"task": result["task"], "dataset": result["dataset"], "metric_name": result["metric_name"],
                       "dataset_title": result.get("dataset_title") or result["dataset"],
                       "split": {s: split.get(s) for s in SPLITS},
                       "interval": result.get("interval"), "provenance": result.get("provenance"),
                       "settings": search_settings(result),
                       "rows": [_row(ref) for ref in result["references"]],
                       "variants": _variants(result)})
    throughput = any(r["throughput"] is not None for b in blocks for r in b["rows"])
    levels = {b["interval"]["confidence"] for b in blocks if b["interval"]}
    return {"schema_version": SCHEMA_VERSION, "blocks": blocks, "throughput": throughput,
            "interval_level": levels.pop() if len(levels) == 1 else None}


def _variants(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The search's confidence variants (``--confidence a,b``, ``--temperature``) against its most
    expensive model, when it compared more than one: the tables are the first variant's."""
    comparison = result.get("comparison") or []
    if len(comparison) < 2:
        return []
    rows = []
    for c in comparison:
        picks = c.get("picks", {})
        rows.append({"confidence": c["confidence"], "temperature": bool(c["temperature"]),
                     "reference": c["reference"], "speedup": c["speedup"], "delta_at_cost": c["delta_at_cost"],
                     "similar_accuracy": (picks.get("similar_accuracy") or {}).get("name"),
                     "similar_cost": (picks.get("similar_cost") or {}).get("name")})
    return rows


def _variant_lines(block: Mapping[str, Any]) -> list[str]:
    metric = block["metric_name"]
    lines = [f"Confidence variants of {block_title(block)}, against {block['variants'][0]['reference']} "
             "(the table above is the first one's):", "",
             f"| confidence | speedup at similar {metric} | committee | Δ{metric} at similar cost | committee |",
             "|---|---:|---|---:|---|"]
    for v in block["variants"]:
        name = v["confidence"] + (" + temperature" if v["temperature"] else "")
        lines.append(f"| {name} | {format_number(v['speedup'], '.2f', 'x')} | {v['similar_accuracy'] or '–'} | "
                     f"{format_number(v['delta_at_cost'], '+.2f')} | {v['similar_cost'] or '–'} |")
    return lines


# ---------------------------------------------------------------- formatting

def format_number(value: Any, spec: str, suffix: str = "") -> str:
    return DASH if is_missing(value) else format(value, spec) + suffix


def format_with_interval(value: Any, bounds: Sequence[float] | None, spec: str) -> str:
    """A figure and, when known, its interval: "93.51 [93.02, 94.00]"."""
    if is_missing(value):
        return DASH
    return format(value, spec) + (f" [{format(bounds[0], spec)}, {format(bounds[1], spec)}]" if bounds else "")


def _cells(row: Mapping[str, Any], throughput: bool, names: bool, times: str = "x") -> list[str]:
    cells = [row["reference"], format_with_interval(row["metric_evaluation"], row.get("metric_ci"), ".2f"),
             format_macs(row["macs_mean"])]
    if throughput:
        cells.append(format_number(row["throughput"], ".0f"))
    for g in ("similar_cost_", "similar_accuracy_"):
        cells += [row[g + "name"] or DASH] if names else []
        cells += [format_with_interval(row[g + "metric_evaluation"], row.get(g + "metric_ci"), ".2f"),
                  format_with_interval(row[g + "delta"], row.get(g + "delta_ci"), "+.2f"),
                  format_macs(row[g + "macs_evaluation"])]  # at similar cost too: how much of the budget it takes
        if g == "similar_accuracy_":
            cells.append(format_number(row[g + "speedup"], ".2f", times))
    return cells


def _columns(throughput: bool, names: bool) -> tuple[list[str], list[str], list[str]]:
    """(single-model columns, similar-cost columns, similar-accuracy columns)."""
    single = ["model", "metric", "MACs"] + (["samples/s"] if throughput else [])
    cost = (["committee"] if names else []) + ["metric", "Δ", "MACs"]
    accuracy = (["committee"] if names else []) + ["metric", "Δ", "MACs", "speedup"]
    return single, cost, accuracy


def search_settings(result: Mapping[str, Any]) -> str:
    """What a search asked beyond the defaults, in words (a block of a greedy, worst-case or
    any-order search looked like an exhaustive one's)."""
    parts = []
    if result.get("method") == "greedy":
        parts.append("greedy search")
    if result.get("worst_case"):
        parts.append("committees within the model's worst-case MACs")
    if result.get("any_order"):
        parts.append("cascades in any member order")
    if result.get("confidence", "max_prob") != "max_prob":
        parts.append(f"confidence {result['confidence']}")
    if result.get("combine", "mean") != "mean":
        parts.append("a stage predicts with its last member")
    return "; ".join(parts)


def block_title(block: Mapping[str, Any]) -> str:
    n = (block.get("split") or {}).get("evaluation")
    samples = f" on {n:,} evaluation samples" if n else ""
    settings = f" ({block['settings']})" if block.get("settings") else ""
    return (f"{block['task']}: {block.get('dataset_title') or block['dataset']} — {block['metric_name']}{samples}"
            f"{settings}")


def _notes(tables: Mapping[str, Any]) -> str:
    level = tables.get("interval_level")
    interval = (f" [low, high]: {100 * level:g}% bootstrap interval over the evaluation samples (paired for Δ)."
                if level else "")
    return ("MACs: mean multiply-adds per sample. ≈ cost: the most accurate committee within the model's MACs "
            "on the calibration split (Δ = its metric − the model's; MACs: its own); ≈ accuracy: the cheapest "
            "committee matching the model's metric "
            "(speedup = model MACs / committee MACs). Evaluation-split figures; thresholds fitted on the "
            "calibration split." + interval)


def provenance_footer(tables: Mapping[str, Any]) -> list[str]:
    """One line per result the tables come from: version, commit, libraries, device, date."""
    return [short_line(b["provenance"]) for b in tables["blocks"] if b.get("provenance")]


def to_markdown(tables: Mapping[str, Any], names: bool = False, footer: bool = True) -> str:
    """One Markdown table; each task opens with a bold row naming task, dataset and metric.

    `names=True` adds the committees' names to both cascade groups; `footer` the provenance of
    each result as HTML comments.
    """
    single, cost, accuracy = _columns(tables["throughput"], names)
    header = single + [f"≈ cost: {c}" for c in cost] + [f"≈ accuracy: {c}" for c in accuracy]
    align = ["---"] + ["---:"] * (len(single) - 1)
    align += ["---" if c == "committee" else "---:" for c in cost + accuracy]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for block in tables["blocks"]:
        lines.append("| " + " | ".join([f"**{block_title(block)}**"] + [""] * (len(header) - 1)) + " |")
        for row in block["rows"]:
            lines.append("| " + " | ".join(_cells(row, tables["throughput"], names)) + " |")
    for block in tables["blocks"]:
        if block.get("variants"):
            lines += ["", *_variant_lines(block)]
    comments = "".join(f"\n<!-- {line} -->" for line in provenance_footer(tables)) if footer else ""
    return "\n".join(lines) + "\n\n" + _notes(tables) + "\n" + comments + ("\n" if comments else "")


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                   "<": r"\textless{}", ">": r"\textgreater{}", "–": "--", "Δ": r"$\Delta$", "×": r"$\times$",
                   "≈": r"$\approx$", "—": "---"}


def latex_escape(text: str) -> str:
    """Text safe in a pdflatex tabular cell (names hold `_`, `>`, `+`, `@`, ...)."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def to_latex(tables: Mapping[str, Any], names: bool = False) -> str:
    """A complete booktabs `tabular`: \\multicolumn group headers for the two cascade groups, one
    \\midrule-separated block per task. Needs `\\usepackage{booktabs}`."""
    single, cost, accuracy = _columns(tables["throughput"], names)
    ncols = len(single) + len(cost) + len(accuracy)
    spec = "l" + "r" * (len(single) - 1) + "".join("l" if c == "committee" else "r" for c in cost + accuracy)
    c0, c1 = len(single) + 1, len(single) + len(cost)
    a0, a1 = c1 + 1, ncols
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join([""] * len(single) + [rf"\multicolumn{{{len(cost)}}}{{c}}{{Cascade, similar cost}}",
                                              rf"\multicolumn{{{len(accuracy)}}}{{c}}{{Cascade, similar accuracy}}"])
             + r" \\",
             rf"\cmidrule(lr){{{c0}-{c1}}} \cmidrule(lr){{{a0}-{a1}}}",
             " & ".join(latex_escape(c[0].upper() + c[1:]) for c in single + cost + accuracy) + r" \\"]
    for block in tables["blocks"]:
        lines.append(r"\midrule")
        lines.append(rf"\multicolumn{{{ncols}}}{{l}}{{\textit{{{latex_escape(block_title(block))}}}}} \\")
        for row in block["rows"]:
            cells = _cells(row, tables["throughput"], names, times="×")
            # a typeset minus, not a hyphen: -5.60 -> $-$5.60, [-1.40, ...] -> [$-$1.40, ...]
            lines.append(" & ".join(re.sub(r"(?<![\w.])-(?=\d)", "$-$", latex_escape(c)) for c in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    comments = [f"% {_notes(tables)}"] + [f"% {line}" for line in provenance_footer(tables)]
    return "\n".join(lines) + "\n" + "\n".join(comments) + "\n"


# ---------------------------------------------------------------- files

CSV_BLOCK_FIELDS = ["task", "dataset", "metric_name", "calibration_samples", "evaluation_samples"]
CSV_INTERVALS = ("metric_ci", "delta_ci")  # [low, high] in the tables, two columns in the CSV


def csv_fields() -> list[str]:
    fields = CSV_BLOCK_FIELDS + ["reference"] + [f"metric_{s}" for s in SPLITS] + ["metric_ci_low", "metric_ci_high",
                                                                                   "macs_mean", "throughput"]
    for group in GROUPS:
        fields += [f"{group}_name"] + [f"{group}_metric_{s}" for s in SPLITS]
        fields += [f"{group}_metric_ci_low", f"{group}_metric_ci_high"]
        fields += [f"{group}_macs_{s}" for s in SPLITS]
        fields += [f"{group}_delta", f"{group}_delta_ci_low", f"{group}_delta_ci_high", f"{group}_speedup"]
    return fields + CSV_PROVENANCE


def _flat(row: Mapping[str, Any]) -> dict[str, Any]:
    flat = {}
    for key, value in row.items():
        if key.endswith(CSV_INTERVALS):
            flat[f"{key}_low"], flat[f"{key}_high"] = value or (None, None)
        else:
            flat[key] = value
    return flat


def to_csv(tables: Mapping[str, Any], path: str | Path) -> Path:
    """One row per task x reference with every figure of both splits (empty cell = none)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=csv_fields(), lineterminator="\n")
    writer.writeheader()
    for block in tables["blocks"]:
        meta = {k: block[k] for k in ("task", "dataset", "metric_name")}
        meta.update({f"{s}_samples": block["split"].get(s) for s in SPLITS})
        if block.get("provenance"):
            meta.update(provenance_columns(block["provenance"], block["provenance"]["fingerprints"].get("members", {})))
        for row in block["rows"]:
            writer.writerow({k: ("" if v is None else v) for k, v in {**meta, **_flat(row)}.items()})
    path = Path(path)
    atomic_write(path, lambda f: f.write(buffer.getvalue().encode()))
    return path


def to_json(tables: Mapping[str, Any], path: str | Path, report_provenance: Mapping[str, Any] | None = None) -> Path:
    """The tables as built (`json.load` of the file gives them back), with the provenance of the
    report itself, when given, beside each block's."""
    path = Path(path)
    extra = {"provenance": dict(report_provenance)} if report_provenance else {}
    atomic_write_json(path, json.loads(json.dumps({**tables, **extra})), strict=True)
    return path
