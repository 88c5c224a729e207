"""`tools/search.py` (`committee search`): search every ensemble and cascade of a pool from the
prediction cache.

Thresholds are chosen on the calibration split and every figure is reported on both splits;
for each single model: the committee matching its metric at the fewest MACs (similar accuracy)
and the best one within its MACs (similar cost), plus the Pareto front. Writes the JSON that
`tools/report.py` turns into paper-style tables and plots.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from committee_tasks.cli.arguments import (CONFIDENCE_HELP, add_cards_arg, add_data_args, add_execution_args,
                                           add_interval_args, add_split_args, bootstrap, calibration_options,
                                           check_outputs, data_options, execution_options, model_options, names,
                                           tool_main, tool_parser, write_cards)

GREEDY_ABOVE = 10  # keep in step with committee_tasks.api.searching.GREEDY_ABOVE (help text only)


def build_parser(prog: str = "tools/search.py") -> argparse.ArgumentParser:
    p = tool_parser(prog, __doc__)
    p.add_argument("--pool", type=names, required=True, help="members to search over: a,b,c,...")
    add_data_args(p)
    s = p.add_argument_group("search")
    s.add_argument("--references", type=names, help="single models to match (default: every pool member)")
    s.add_argument("--max-size", type=int, default=4, help="largest committee (members)")
    s.add_argument("--levels", type=int, default=20,
                   help="threshold levels (quantiles) per cascade stage; the last decision stage is swept exactly "
                        "unless --grid-only")
    s.add_argument("--grid-only", action="store_true",
                   help="the last decision stage on the grid too (the search before exact sweeps; coarser, not faster)")
    s.add_argument("--any-order", action="store_true", help="cascades in every member order, not only cheapest first")
    s.add_argument("--worst-case", action="store_true",
                   help="keep only committees whose worst-case MACs stay within the reference's")
    s.add_argument("--confidence", type=names,
                   help=f"confidence function(s) to compare, comma-separated (default: the task's, max_prob for "
                        f"the built-in ones): {CONFIDENCE_HELP}")
    s.add_argument("--temperature", action="store_true",
                   help="also compare each confidence after per-member temperature scaling")
    s.add_argument("--cascade-combine", choices=["mean", "last"], default="mean",
                   help="stage-k prediction: mean of members so far (default) or the last member only")
    s.add_argument("--greedy", action="store_true",
                   help=f"greedy cascade construction (Streeter 2018); automatic above {GREEDY_ABOVE} members")
    s.add_argument("--alpha", type=float, default=0.0, help="greedy: metric slack against the reference")
    add_split_args(s)
    add_execution_args(p)
    add_interval_args(p)
    p.add_argument("--json", type=Path, help="write the search result (input of tools/report.py)")
    p.add_argument("--front", type=int, default=12, help="Pareto points to print")
    add_cards_arg(p, "every committee chosen for a reference")
    return p


def run(args: argparse.Namespace, command: list[str]) -> int:
    from committee_tasks.api.options import at_least
    from committee_tasks.api.searching import SearchRequest, search_committees
    from committee_tasks.core.files import atomic_write_json
    from committee_tasks.reporting.search_text import render_search

    at_least(1, front=args.front)  # before the search, not when printing its result
    check_outputs({"--json": args.json}, {"--cards": args.cards})
    request = SearchRequest(
        pool=args.pool, task=args.task, references=args.references, max_size=args.max_size, levels=args.levels,
        exact_last=not args.grid_only, any_order=args.any_order, worst_case=args.worst_case, confidences=args.confidence,
        temperature=args.temperature, combine=args.cascade_combine, greedy=args.greedy, alpha=args.alpha,
        data=data_options(args), models_from=model_options(args), execution=execution_options(args),
        calibration=calibration_options(args), interval=bootstrap(args), command=command,
        config=getattr(args, "config_data", None))
    result = search_committees(request)
    print(render_search(result.report, args.front))
    if args.json:
        atomic_write_json(args.json, result.report, strict=True)
    write_cards(result, args.cards)
    return 0


main = tool_main(build_parser, run)  # tools/search.py and `committee search`
