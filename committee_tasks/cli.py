"""`tools/eval.py`: evaluate a pool once (cached), score committees from the cache, measure them
for real, print a paper-style table and write JSON/CSV."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .cache import PredictionCache
from .committees import Cascade, Ensemble, Single, parse_committees
from .confidence import CONFIDENCES
from .devices import resolve_device
from .errors import CommitteeError
from .executor import CommitteeExecutor
from .inputs import preprocessed_batches
from .loop import LoopOptions, evaluate_pool
from .registry import get_task, list_tasks
from .report import markdown_table, result_row, write_csv, write_json
from .task import Member, Task

log = logging.getLogger("committee_tasks")


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated model names, got {text!r}")
    return names


def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from err


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tools/eval.py", description=__doc__)
    p.add_argument("--config", type=Path, help="JSON run definition (task, dataset, models, committees); "
                   "command-line flags override it")
    p.add_argument("--task", help="task plugin name (see --list-tasks); default: classification")
    p.add_argument("--list-tasks", action="store_true", help="list registered tasks and exit")
    p.add_argument("--list-models", nargs="?", const="*", metavar="PATTERN",
                   help="list the task's models (optionally filtered by a wildcard) and exit")
    p.add_argument("--list-datasets", action="store_true", help="list the task's datasets and exit")
    data = p.add_argument_group("data")
    data.add_argument("--dataset", help="dataset name of the task")
    data.add_argument("--data-root", type=Path, help="where the dataset is on disk")
    data.add_argument("--split", help="dataset split (e.g. ImageNet 'val')")
    data.add_argument("--class-list", type=Path, help="ImageNet: wnids in class-index order (for a subset of classes)")
    data.add_argument("--label-file", type=Path, help="ImageNet flat folder: val.txt or LOC_val_solution.csv")
    data.add_argument("--limit", type=int, help="evaluate an evenly spaced subset of N samples (quick runs)")
    models = p.add_argument_group("models and committees")
    models.add_argument("--weights-dir", type=Path, help="folder holding weight files (checked before the torch.hub cache)")
    models.add_argument("--models", type=_names, default=None, help="members to report on their own: a,b,c")
    models.add_argument("--ensemble", type=_names, action="append", default=None, help="an ensemble a,b (repeatable)")
    models.add_argument("--cascade", type=_names, action="append", default=None,
                        help="a cascade a,b,c, cheapest first (repeatable)")
    models.add_argument("--thresholds", type=_floats, action="append", default=None,
                        help="per-stage thresholds t1,t2 of each --cascade, in order (one value: all stages)")
    models.add_argument("--confidence", choices=sorted(CONFIDENCES), help="cascade confidence (default max_prob)")
    models.add_argument("--cascade-combine", choices=["mean", "last"],
                        help="stage-k prediction: mean of members so far (default) or the last member only")
    models.add_argument("--reference", help="model the speedups are measured against (default: the member "
                        "with the most MACs)")
    run = p.add_argument_group("execution")
    run.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    run.add_argument("--amp", choices=["auto", "on", "off"], default="auto", help="mixed precision (auto: on CUDA)")
    run.add_argument("--batch-size", type=int, default=128)
    run.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    run.add_argument("--cache-dir", type=Path, help="prediction cache root (default ~/.cache/committee_tasks/predictions "
                     "or $COMMITTEE_TASKS_CACHE)")
    run.add_argument("--output-dtype", choices=["float16", "float32"], default="float16",
                     help="dtype of cached probabilities")
    run.add_argument("--measure-samples", type=int, default=2048,
                     help="measure throughput of every row on this many samples (0: do not measure)")
    run.add_argument("--no-progress", action="store_true")
    out = p.add_argument_group("output")
    out.add_argument("--json", type=Path, help="write every figure as JSON")
    out.add_argument("--csv", type=Path, help="write one row per member/committee as CSV")
    out.add_argument("--markdown", type=Path, help="write the table as Markdown")
    return p


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill unset flags from --config, then defaults."""
    config: dict[str, Any] = {}
    if args.config:
        try:
            config = json.loads(args.config.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CommitteeError(f"cannot read config {args.config}: {err}") from err
        if "data_root" in config:  # relative to the config file's folder
            config["data_root"] = (args.config.parent / config["data_root"]).resolve()
    cascades = config.get("cascades", [])
    defaults = {
        "task": "classification", "dataset": None, "data_root": None, "models": [],
        "ensemble": config.get("ensembles", []),
        "cascade": [c["members"] for c in cascades],
        "thresholds": [c["thresholds"] for c in cascades if "thresholds" in c],
        "confidence": "max_prob", "cascade_combine": "mean", "reference": None, "limit": None,
    }
    for key, default in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, config.get(key, default))
    return args


def build_members(task: Task, names: Sequence[str], weights_dir: Path | None) -> dict[str, Member]:
    members = {}
    for name in names:
        log.info("building %s", name)
        members[name] = task.build_member(name, weights_dir)
    return members


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return run(resolve_args(args))
    except CommitteeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    if args.list_tasks:
        print("\n".join(list_tasks()))
        return 0
    task = get_task(args.task)
    if args.list_models:
        for name in task.list_models(args.list_models):
            e = task.model_entry(name)
            top1 = e.metrics.get(task.metric_name)
            print(f"{name:45s} {e.dataset:10s} MACs={e.macs or '?'!s:>12} "
                  f"{task.metric_name}={top1 if top1 is not None else '?'}")
        return 0
    if args.list_datasets:
        print("\n".join(task.list_datasets()))
        return 0

    committees = parse_committees(args.ensemble, args.cascade, args.thresholds,
                                  confidence=args.confidence, combine=args.cascade_combine)
    pool = list(dict.fromkeys([*args.models, *(m for c in committees for m in c.members)]))
    if not pool:
        raise CommitteeError("nothing to evaluate: pass --models, --ensemble or --cascade (or --config)")
    if args.dataset is None:
        raise CommitteeError(f"pass --dataset (one of {task.list_datasets()})")
    entries = {name: task.model_entry(name) for name in pool}  # bad names fail before any loading
    classes = {name: e.num_classes for name, e in entries.items()}
    if len(set(classes.values())) > 1:
        raise CommitteeError(
            f"members predict different numbers of classes ({classes}); a committee needs members "
            "trained on the same label set"
        )
    dataset = task.build_dataset(args.dataset, args.data_root, split=args.split,
                                 class_list=args.class_list, label_file=args.label_file)
    members = build_members(task, pool, args.weights_dir)
    options = LoopOptions(batch_size=args.batch_size, num_workers=args.workers, device=args.device,
                          amp={"auto": "auto", "on": True, "off": False}[args.amp],
                          output_dtype=args.output_dtype, progress=not args.no_progress)
    preds, loop_throughput = evaluate_pool(task, list(members.values()), dataset, PredictionCache(args.cache_dir),
                                           args.limit, options)

    rows_spec = [Single(m) for m in pool] + committees
    results = [c.evaluate(preds, task) for c in rows_spec]
    reference_name = args.reference or max(pool, key=lambda m: preds.macs[m].mean())
    if reference_name not in pool:
        raise CommitteeError(f"--reference {reference_name!r} is not among the evaluated models {pool}")
    reference = results[pool.index(reference_name)]

    throughput: dict[str, float] = {}
    if args.measure_samples > 0:
        batches = preprocessed_batches(dataset, list(members.values()), preds.ids, args.measure_samples,
                                      args.batch_size)
        for spec in rows_spec:
            executor = CommitteeExecutor(spec, members, task, args.device, options.amp, args.output_dtype)
            throughput[spec.name] = executor.run(batches).throughput
    ref_tp = throughput.get(reference_name)
    rows = [result_row(r, task.metric_name, reference, throughput.get(r.name), ref_tp,
                       members[r.name].entry.published() if r.kind == "member" and members[r.name].entry else None)
            for r in results]
    for row in rows:  # forward-pass throughput inside the shared loop, when it ran (not comparable
        if row["kind"] == "member":  # to the measured column: batches there mix all members)
            row["throughput_eval_loop"] = loop_throughput.get(row["name"])
    print_report(task, dataset, preds, rows, args)
    return 0


def print_report(task, dataset, preds, rows, args) -> None:
    table = markdown_table(rows)
    print(f"\n{task.name} on {dataset.name}: {len(preds.ids)} samples"
          + (f" ({len(preds.skipped)} skipped: unreadable)" if preds.skipped else ""))
    print(table)
    if preds.skipped:
        for sid, reason in list(preds.skipped.items())[:10]:
            print(f"  skipped {sid}: {reason}")
    note = "MACs are multiply-adds per sample"
    if args.measure_samples > 0:
        device = resolve_device(args.device)
        note += (f"; throughput is samples/s of model execution (data already preprocessed) on {device}, "
                 f"batch {args.batch_size}, over the first {min(args.measure_samples, len(preds.ids))} samples")
    else:
        note += "; throughput not measured (--measure-samples 0)"
    print(note)
    report = {"task": task.name, "dataset": dataset.name, "samples": len(preds.ids),
              "skipped": preds.skipped, "rows": rows, "note": note}
    if args.json:
        write_json(report, args.json)
    if args.csv:
        write_csv(rows, args.csv)
    if args.markdown:
        args.markdown.write_text(table + "\n")
