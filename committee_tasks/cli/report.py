"""`tools/report.py`: paper-style tables and figures from `tools/search.py --json` results.

One result per task; writes OUT/committees.{md,tex,csv,json} (the cross-task table) and
OUT/<task>-<dataset>.png (one figure per result), and prints the Markdown table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from committee_tasks.engine.cache import atomic_write
from committee_tasks.core.errors import CommitteeError, run_tool
from committee_tasks.core.provenance import provenance
from committee_tasks.reporting.search_tables import build_tables, to_csv, to_json, to_latex, to_markdown, validate_result

FORMATS = ("md", "tex", "csv", "json", "png")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tools/report.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="*", type=Path, metavar="RESULT.json", help="tools/search.py --json outputs")
    p.add_argument("--out", type=Path, required=True, help="folder to write the reports into")
    p.add_argument("--formats", default=",".join(FORMATS),
                   help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    p.add_argument("--names", action="store_true", help="name the committees in the Markdown and LaTeX tables")
    return p


def parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    for f in formats:
        if f not in FORMATS:
            raise CommitteeError(f"unknown format {f!r}; valid: {', '.join(FORMATS)}")
    if not formats:
        raise CommitteeError(f"--formats is empty; valid: {', '.join(FORMATS)}")
    return formats


def load_result(path: Path) -> dict[str, Any]:
    """One search result, checked; errors name the file and what is wrong with it."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CommitteeError(f"{path}: no such file; pass the --json output of tools/search.py") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as err:
        raise CommitteeError(f"{path}: cannot read it ({err})") from None
    try:
        result = json.loads(text)
    except json.JSONDecodeError as err:
        raise CommitteeError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    return validate_result(result, str(path))


def main(argv: Sequence[str] | None = None) -> int:
    return run_tool(run, build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    formats = parse_formats(args.formats)
    if not args.results:
        raise CommitteeError("pass at least one RESULT.json (the --json output of tools/search.py)")
    # every input is checked before anything is written: a bad file leaves no partial report
    results = [load_result(path) for path in args.results]
    plots: dict[str, Path] = {}
    if "png" in formats:
        from committee_tasks.reporting.plots import plot_filename

        for result, path in zip(results, args.results):
            name = plot_filename(result)
            if name in plots:
                raise CommitteeError(f"{plots[name]} and {path} are both {result['task']} on {result['dataset']} "
                                     f"(one figure each, {name}); pass one of them, or leave png out of --formats")
            plots[name] = path
    tables = build_tables(results)
    markdown = to_markdown(tables, names=args.names)
    out: Path = args.out
    writers = {"md": lambda p: atomic_write(p, lambda f: f.write(markdown.encode())),
               "tex": lambda p: atomic_write(p, lambda f: f.write(to_latex(tables, names=args.names).encode())),
               "csv": lambda p: to_csv(tables, p), "json": lambda p: to_json(tables, p, provenance())}
    for fmt in formats:
        if fmt in writers:
            writers[fmt](out / f"committees.{fmt}")
    if "png" in formats:
        from committee_tasks.reporting.plots import plot_result

        for result, name in zip(results, plots):
            plot_result(result, out / name)
    print(markdown, end="")
    return 0
