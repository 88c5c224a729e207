"""Paper-style tables and figures from search results: the typed request behind `tools/report.py`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from committee_tasks.core.errors import CommitteeError

FORMATS = ("md", "tex", "csv", "json", "png")


@dataclass
class ReportRequest:
    results: Sequence[Path]  # tools/search.py --json outputs
    out: Path
    formats: Sequence[str] = FORMATS
    names: bool = False  # name the committees in the Markdown and LaTeX tables

    def __post_init__(self):
        self.formats = [f.strip().lower() for f in self.formats if f.strip()]
        for f in self.formats:
            if f not in FORMATS:
                raise CommitteeError(f"unknown format {f!r}; valid: {', '.join(FORMATS)}")
        if not self.formats:
            raise CommitteeError(f"--formats is empty; valid: {', '.join(FORMATS)}")
        if not self.results:
            raise CommitteeError("pass at least one RESULT.json (the --json output of tools/search.py)")


def load_result(path: Path) -> dict[str, Any]:
    """One search result, checked; errors name the file and what is wrong with it."""
    from committee_tasks.core.files import from_strict_json, parse_json, read_text
    from committee_tasks.reporting.search_tables import validate_result

    text = read_text(path, "search result", "pass the --json output of tools/search.py")
    return validate_result(from_strict_json(parse_json(text, str(path))), str(path))


def _plot_names(results: Sequence[dict], paths: Sequence[Path]) -> list[str]:
    from committee_tasks.reporting.plots import plot_filename

    seen: dict[str, Path] = {}
    for result, path in zip(results, paths):
        name = plot_filename(result)
        if name in seen:
            raise CommitteeError(f"{seen[name]} and {path} are both {result['task']} on {result['dataset']} "
                                 f"(one figure each, {name}); pass one of them, or leave png out of --formats")
        seen[name] = path
    return list(seen)


def write_reports(request: ReportRequest) -> str:
    """Write OUT/committees.{md,tex,csv,json} and one figure per result; returns the Markdown table.
    Every input is checked before anything is written: a bad file leaves no partial report."""
    from committee_tasks.core.files import atomic_write
    from committee_tasks.core.provenance import provenance
    from committee_tasks.reporting.search_tables import build_tables, to_csv, to_json, to_latex, to_markdown

    results = [load_result(path) for path in request.results]
    plots = _plot_names(results, request.results) if "png" in request.formats else []
    tables = build_tables(results)
    markdown = to_markdown(tables, names=request.names)
    out = Path(request.out)
    writers = {"md": lambda p: atomic_write(p, lambda f: f.write(markdown.encode())),
               "tex": lambda p: atomic_write(p, lambda f: f.write(to_latex(tables, names=request.names).encode())),
               "csv": lambda p: to_csv(tables, p), "json": lambda p: to_json(tables, p, provenance())}
    for fmt in request.formats:
        if fmt in writers:
            writers[fmt](out / f"committees.{fmt}")
    if plots:
        from committee_tasks.reporting.plots import plot_result

        for result, name in zip(results, plots):
            plot_result(result, out / name)
    return markdown
