"""`tools/report.py` (`committee report`): paper-style tables and figures from `tools/search.py
--json` results.

One result per task; writes OUT/committees.{md,tex,csv,json} (the cross-task table) and
OUT/<task>-<dataset>.png (one figure per result), and prints the Markdown table.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from committee_tasks.cli.arguments import check_outputs, tool_main

FORMATS = ("md", "tex", "csv", "json", "png")  # committee_tasks.api.reports.FORMATS (checked there)


def build_parser(prog: str = "tools/report.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="*", type=Path, metavar="RESULT.json", help="tools/search.py --json outputs")
    p.add_argument("--out", type=Path, required=True, help="folder to write the reports into")
    p.add_argument("--formats", default=",".join(FORMATS),
                   help=f"comma-separated subset of {','.join(FORMATS)} (default: all)")
    p.add_argument("--names", action="store_true", help="name the committees in the Markdown and LaTeX tables")
    return p


def run(args: argparse.Namespace, command: list[str]) -> int:
    from committee_tasks.api.reports import ReportRequest, write_reports

    request = ReportRequest(args.results, args.out, args.formats.split(","), args.names)
    check_outputs({}, {"--out": args.out})
    markdown = write_reports(request)
    print(markdown, end="")
    return 0


main = tool_main(build_parser, run, log=False)  # tools/report.py and `committee report`
