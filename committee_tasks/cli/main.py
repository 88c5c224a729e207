"""The `committee` console command: one sub-command per tool (`committee eval|search|report ...`).

A sub-command's module is imported only when it is chosen, so `committee --help` loads neither
torch nor the tools' own parsers.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

# sub-command -> (module with main(argv) -> int, one line of help)
COMMANDS = {
    "eval": ("committee_tasks.cli.eval", "evaluate members and committees (ensembles, cascades): the table, "
             "measured speed, JSON/CSV/Markdown (tools/eval.py)"),
    "search": ("committee_tasks.cli.search", "search every ensemble and cascade of a pool from the prediction "
               "cache (tools/search.py)"),
    "report": ("committee_tasks.cli.report", "paper-style tables and figures from search results (tools/report.py)"),
}


def build_parser() -> argparse.ArgumentParser:
    from committee_tasks import __version__

    p = argparse.ArgumentParser(
        prog="committee", description="Ensembles and cascades of pretrained models (Wisdom of Committees).",
        epilog="`committee COMMAND --help` lists a command's options. Every command also takes --config FILE "
               "(JSON or YAML) holding any of its options by name; flags on the command line override it.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_line) in COMMANDS.items():
        commands.add_parser(name, help=help_line, add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        build_parser().parse_args(argv[:1])  # help, version, or the error naming the commands: exits
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:], prog=f"committee {argv[0]}")


if __name__ == "__main__":
    sys.exit(main())
