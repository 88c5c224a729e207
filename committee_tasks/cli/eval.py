"""`tools/eval.py` (`committee eval`): evaluate a pool once (cached), score committees from the
cache, measure them for real, print a paper-style table and write JSON/CSV/Markdown and cards.

Parses arguments (or a config file), calls `committee_tasks.api.evaluate`, prints.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from committee_tasks.cli.arguments import (CONFIDENCE_HELP, add_cards_arg, add_data_args, add_execution_args,
                                           add_interval_args, add_measure_args, add_split_args, bootstrap,
                                           calibration_options, check_outputs, data_options, execution_options, floats,
                                           model_options, names, tool_main, tool_parser, write_cards)


def build_parser(prog: str = "tools/eval.py") -> argparse.ArgumentParser:
    p = tool_parser(prog, __doc__)
    p.set_defaults(task=None)  # classification, or the task of the --committee cards (run: task_of_run)
    p.add_argument("--list-tasks", action="store_true", help="list registered tasks and exit")
    p.add_argument("--list-models", nargs="?", const="*", metavar="PATTERN",
                   help="list the task's models (optionally filtered by a wildcard) and exit")
    p.add_argument("--list-datasets", action="store_true", help="list the task's datasets and exit")
    add_data_args(p)
    models = p.add_argument_group("models and committees")
    models.add_argument("--models", type=names, default=[], help="members to report on their own: a,b,c")
    models.add_argument("--ensemble", type=names, action="append", default=[], help="an ensemble a,b (repeatable)")
    models.add_argument("--cascade", type=names, action="append", default=[],
                        help="a cascade a,b,c, cheapest first (repeatable)")
    models.add_argument("--thresholds", type=floats, action="append", default=[],
                        help="per-stage thresholds t1,t2 of each --cascade, one list per cascade in order "
                             "(one value: all stages); leave out to fit them")
    models.add_argument("--committee", type=Path, action="append", default=[], metavar="CARD.json",
                        help="evaluate a saved committee card (written by --cards; repeatable)")
    models.add_argument("--confidence", help=f"cascade confidence (default: the task's, max_prob for the "
                        f"built-in ones): {CONFIDENCE_HELP}")
    models.add_argument("--cascade-combine", choices=["mean", "last"], default="mean",
                        help="stage-k prediction: mean of members so far (default) or the last member only")
    models.add_argument("--reference", help="model the speedups are measured against (default: the model a fit "
                        "matches: --match, or a threshold-less cascade's last member; else the member with the "
                        "most MACs, the first listed on a tie)")
    fit = p.add_argument_group("fitting thresholds (calibration split -> evaluation split)")
    fit.add_argument("--match", metavar="MODEL", help="fit each --cascade to the cheapest setting whose metric "
                     "is at least MODEL's on the calibration split")
    fit.add_argument("--budget", metavar="MODEL|MACS", help="fit each --cascade to the most accurate setting "
                     "whose mean MACs are at most MODEL's (or this number of MACs per sample: 2.5e8, 250M, 4.1G)")
    fit.add_argument("--guarantee", type=floats, metavar="EPS,DELTA", help="fit each --cascade so that, with "
                     "probability >= 1-DELTA, its metric is at most EPS below --match MODEL's (or --reference's) "
                     "on new data (Learn-then-Test); EPS in the metric's own points (top-1 in %%: 0.5 is half a "
                     "point), DELTA a probability (0.05)")
    fit.add_argument("--bound", choices=["bernstein", "hoeffding", "binomial"], default="bernstein",
                     help="p-value of --guarantee")
    add_split_args(fit)
    fit.add_argument("--levels", type=int, default=20, help="threshold levels per stage (quantiles)")
    fit.add_argument("--temperature", action="store_true",
                     help="temperature-scale each member, fitted on the calibration split")
    fit.add_argument("--worst-case", action="store_true",
                     help="only settings whose worst-case MACs stay within the reference's")
    add_execution_args(p)
    add_measure_args(p.add_argument_group("measuring"))
    out = p.add_argument_group("output")
    add_interval_args(out)
    out.add_argument("--json", type=Path, help="write every figure as JSON")
    out.add_argument("--csv", type=Path, help="write one row per member/committee as CSV")
    out.add_argument("--markdown", type=Path, help="write the table as Markdown")
    add_cards_arg(out, "every ensemble and cascade row")
    return p


def run(args: argparse.Namespace, command: list[str]) -> int:
    if args.list_tasks:
        from committee_tasks.core.registry import list_tasks

        print("\n".join(list_tasks()))
        return 0
    from committee_tasks.api.evaluation import evaluate, prepare_task

    args.task = task_of_run(args.task, args.committee)
    task = prepare_task(args.task, model_options(args))
    if args.list_models:
        lines = model_lines(task, args.list_models)
        if not lines:  # say so, as grep does: an empty listing looks like an empty zoo
            wider = f"'*{args.list_models}*'" if not any(c in args.list_models for c in "*?[") else "another pattern"
            print(f"no {task.name} model matches {args.list_models!r} (a shell wildcard on the whole name): try "
                  f"{wider}", file=sys.stderr)
            return 1
        print("\n".join(lines))
        return 0
    if args.list_datasets:
        print("\n".join(dataset_lines(task)))
        return 0
    from committee_tasks.reporting.eval_text import render_eval_report, write_eval_files

    request = eval_request(args, command)
    check_outputs({"--json": args.json, "--csv": args.csv, "--markdown": args.markdown}, {"--cards": args.cards})
    report = evaluate(request, task)
    data = report.to_dict()
    print(render_eval_report(data))
    write_eval_files(data, args.json, args.csv, args.markdown)
    write_cards(report, args.cards)
    return 0


def dataset_lines(task) -> list[str]:
    """Each dataset on a line with what it is, then its options (``--data-option KEY=VALUE``) indented."""
    lines = []
    for name in task.list_datasets():
        lines.append(f"{name:12s} {task.describe_dataset(name)}".rstrip())
        lines.extend(f"    --data-option {option.describe()}" for option in task.dataset_options(name))
    return lines


def model_lines(task, pattern: str) -> list[str]:
    from committee_tasks.core.units import format_macs

    zoo = task.entries()
    lines = []
    for name in task.list_models(pattern):
        e = zoo[name]
        metric = e.metrics.get(task.metric_name)
        per = f" per {e.notes['macs_per']}" if e.notes.get("macs_per") else ""
        views = f" views={e.notes['views']}" if e.notes.get("views") else ""
        at = f" at {'x'.join(map(str, e.input_size))}" if len(e.input_size) > 1 else ""
        lines.append(f"{name:30s} {e.dataset:12s} MACs={format_macs(e.macs):>7}{per}{at}"
                     f"{views} {task.metric_name}={metric if metric is not None else '?'}")
    return lines


def eval_request(args: argparse.Namespace, command: list[str]):
    """The API request the command line (or config file) describes."""
    from committee_tasks.api.evaluation import CascadeRequest, EvalRequest
    from committee_tasks.api.options import MeasureOptions
    from committee_tasks.core.errors import CommitteeError

    if args.thresholds and len(args.thresholds) != len(args.cascade):
        raise CommitteeError(f"got {len(args.cascade)} --cascade but {len(args.thresholds)} --thresholds: pass one "
                             "--thresholds per --cascade, in the same order (or none, to fit them)")
    config = (getattr(args, "config_data", None) or {}).get("content", {})
    if "thresholds" in config and _given(command, "--cascade") and not _given(command, "--thresholds"):
        raise CommitteeError("--cascade on the command line replaces the config's cascades, but their --thresholds "
                             "would still come from the config: pass --thresholds for these cascades too (or "
                             "none, to fit them)")
    thresholds = args.thresholds or [None] * len(args.cascade)
    cascades = [CascadeRequest(tuple(m), t) for m, t in zip(args.cascade, thresholds)]
    return EvalRequest(
        task=args.task, models=args.models, ensembles=args.ensemble, cascades=cascades,
        objectives=objectives(args), confidence=args.confidence, combine=args.cascade_combine,
        reference=args.reference, levels=args.levels, temperature=args.temperature, worst_case=args.worst_case,
        data=data_options(args), models_from=model_options(args), execution=execution_options(args),
        calibration=calibration_options(args), interval=bootstrap(args),
        measure=MeasureOptions(args.measure_samples, args.measure_rounds, args.later_stages), command=command,
        config=getattr(args, "config_data", None), cards=tuple(args.committee))


def _given(command: list[str], flag: str) -> bool:
    """Whether the command line itself (not a config file) passes ``flag``."""
    return any(token == flag or token.startswith(flag + "=") for token in command[1:])


def objectives(args: argparse.Namespace) -> list:
    from committee_tasks.api.objectives import Budget, Guarantee, Match
    from committee_tasks.core.errors import CommitteeError

    found: list = [Match(args.match)] if args.match else []
    if args.budget:
        found.append(Budget.parse(args.budget))
    if args.guarantee is not None:
        if len(args.guarantee) != 2:
            raise CommitteeError(f"--guarantee takes EPS,DELTA, got {args.guarantee}")
        reference = args.match or args.reference
        if not reference:
            raise CommitteeError("--guarantee needs the model to compare with: pass --match MODEL or --reference MODEL")
        found.append(Guarantee(reference, *args.guarantee, args.bound))
    return found



def task_of_run(given: str | None, cards) -> str:
    """``--task`` as given, else the task the --committee cards name (a card of a plugin's task,
    evaluated without --task, ran as classification and said its members were unknown), else
    classification."""
    if given or not cards:
        return given or "classification"
    from committee_tasks.committees.cards import CommitteeCard  # (imports torch: not for a listing)

    named = {CommitteeCard.load(path).task for path in cards}
    return named.pop() if len(named) == 1 else "classification"  # several: task_of names the clash


main = tool_main(build_parser, run)  # tools/eval.py and `committee eval`
