"""`tools/eval.py`: evaluate a pool once (cached), score committees from the cache, measure them
for real, print a paper-style table and write JSON/CSV."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from committee_tasks.engine.cache import PredictionCache, atomic_write
from committee_tasks.committees.scoring import PoolPredictions, Single, parse_committees
from committee_tasks.committees.confidence import confidence_names, get_confidence
from committee_tasks.core.devices import resolve_device
from committee_tasks.core.errors import CommitteeError, run_tool
from committee_tasks.engine.executor import CommitteeExecutor
from committee_tasks.search.fitting import fit_cascade, fit_guaranteed_cascade
from committee_tasks.search.guarantee import BOUNDS
from committee_tasks.engine.inputs import preprocessed_batches
from committee_tasks.engine.loop import LoopOptions, check_same_classes, evaluate_pool
from committee_tasks.core.registry import get_task, list_tasks
from committee_tasks.search.intervals import Bootstrap, bootstrap_intervals
from committee_tasks.core.provenance import SCHEMA_VERSION, provenance, short_line
from committee_tasks.reporting.eval_table import fit_lines, markdown_table, result_row, unsatisfied_row, write_csv, write_json
from committee_tasks.engine.timing import NOISY_SPREAD, Measured, implausible, measure_interleaved
from committee_tasks.core.splits import calibration_mask
from committee_tasks.reporting.search_tables import format_macs
from committee_tasks.core.task import Member, SampleDataset, Task
from committee_tasks.committees.temperature import fit_temperature
from committee_tasks.core.threads import apply_thread_policy, default_workers

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
    add_data_args(p)
    models = p.add_argument_group("models and committees")
    models.add_argument("--models", type=_names, default=None, help="members to report on their own: a,b,c")
    models.add_argument("--ensemble", type=_names, action="append", default=None, help="an ensemble a,b (repeatable)")
    models.add_argument("--cascade", type=_names, action="append", default=None,
                        help="a cascade a,b,c, cheapest first (repeatable)")
    models.add_argument("--thresholds", type=_floats, action="append", default=None,
                        help="per-stage thresholds t1,t2 of each --cascade, in order (one value: all stages)")
    models.add_argument("--confidence", help=f"cascade confidence: {confidence_names()} (default max_prob)")
    models.add_argument("--cascade-combine", choices=["mean", "last"],
                        help="stage-k prediction: mean of members so far (default) or the last member only")
    models.add_argument("--reference", help="model the speedups are measured against (default: the member "
                        "with the most MACs)")
    fit = p.add_argument_group("fitting thresholds (calibration split -> evaluation split)")
    fit.add_argument("--match", metavar="MODEL", help="fit each --cascade to the cheapest setting whose metric "
                     "is at least MODEL's on the calibration split")
    fit.add_argument("--budget", metavar="MODEL|MACS", help="fit each --cascade to the most accurate setting "
                     "whose mean MACs are at most MODEL's (or this number)")
    fit.add_argument("--guarantee", type=_floats, metavar="EPS,DELTA", help="fit each --cascade so that, with "
                     "probability >= 1-DELTA, its metric is at most EPS below --match MODEL's (or --reference's) "
                     "on new data (Learn-then-Test)")
    fit.add_argument("--bound", choices=list(BOUNDS), default="bernstein", help="p-value of --guarantee")
    add_split_args(fit)
    fit.add_argument("--levels", type=int, default=20, help="threshold levels per stage (quantiles)")
    fit.add_argument("--temperature", action="store_true",
                     help="temperature-scale each member, fitted on the calibration split")
    fit.add_argument("--worst-case", action="store_true",
                     help="only settings whose worst-case MACs stay within the reference's")
    add_execution_args(p)
    out = p.add_argument_group("output")
    add_interval_args(out)
    out.add_argument("--json", type=Path, help="write every figure as JSON")
    out.add_argument("--csv", type=Path, help="write one row per member/committee as CSV")
    out.add_argument("--markdown", type=Path, help="write the table as Markdown")
    return p


def add_data_args(p: argparse.ArgumentParser) -> None:
    data = p.add_argument_group("data")
    data.add_argument("--dataset", help="dataset name of the task")
    data.add_argument("--data-root", type=Path, help="where the dataset is on disk")
    data.add_argument("--split", help="dataset split (e.g. ImageNet 'val')")
    data.add_argument("--class-list", type=Path, help="ImageNet: wnids in class-index order (for a subset of classes)")
    data.add_argument("--label-file", type=Path, help="ImageNet flat folder: val.txt or LOC_val_solution.csv")
    data.add_argument("--limit", type=int, help="evaluate an evenly spaced subset of N samples (quick runs)")
    data.add_argument("--weights-dir", type=Path, help="folder holding weight files (checked before the torch.hub cache)")
    data.add_argument("--zoo", type=Path, action="append", default=None, metavar="FILE",
                      help="JSON file describing more models for the task (your own checkpoints; repeatable)")


def add_interval_args(group) -> None:
    group.add_argument("--interval-level", type=float, default=0.95,
                       help="confidence level of the bootstrap intervals of metrics and Δs (default 0.95)")
    group.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (seeded; default 2000)")


def add_split_args(fit) -> None:
    fit.add_argument("--calibration-fraction", type=float, default=0.5,
                     help="share of samples (chosen by a hash of their id) used to fit thresholds")
    fit.add_argument("--calibration-dataset", help="fit on this dataset instead and evaluate on all of --dataset")
    fit.add_argument("--calibration-data-root", type=Path)
    fit.add_argument("--calibration-split")


def add_execution_args(p: argparse.ArgumentParser) -> None:
    run = p.add_argument_group("execution")
    run.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    run.add_argument("--amp", choices=["auto", "on", "off"], default="auto", help="mixed precision (auto: on CUDA)")
    run.add_argument("--batch-size", type=int, help="samples per batch (default: the task's, e.g. 128 images, 2 videos)")
    run.add_argument("--workers", type=int, default=None,
                     help="DataLoader worker processes (default: the CPUs this process may use, at most 4)")
    run.add_argument("--cache-dir", type=Path, help="prediction cache root (default ~/.cache/committee_tasks/predictions "
                     "or $COMMITTEE_TASKS_CACHE)")
    run.add_argument("--output-dtype", choices=["float16", "float32"], default="float16",
                     help="dtype of cached probabilities")
    run.add_argument("--measure-samples", type=int,
                     help="measure throughput of every row on this many samples, held in memory preprocessed "
                          "(0: do not measure; default: the task's, e.g. 2048 images, 8 videos)")
    run.add_argument("--measure-rounds", type=int, default=5,
                     help="timed rounds per row, interleaved with the reference (median and spread reported)")
    run.add_argument("--threads", type=int, help="torch CPU threads (default: the CPUs this process may use)")
    run.add_argument("--no-progress", action="store_true")


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill unset flags from --config, then defaults."""
    config: dict[str, Any] = {}
    args.config_data = None
    if args.config:
        try:
            config = json.loads(args.config.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CommitteeError(f"cannot read config {args.config}: {err}") from err
        args.config_data = {"path": str(args.config), "content": dict(config)}
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
    get_confidence(args.confidence)  # an unknown name fails before anything runs
    args.bootstrap = Bootstrap(args.interval_level, args.resamples)
    if args.guarantee is not None and len(args.guarantee) != 2:
        raise CommitteeError(f"--guarantee takes EPS,DELTA, got {args.guarantee}")
    args.guarantee_reference = lambda: (args.match or args.reference) if args.guarantee else None
    if args.guarantee and args.temperature:
        raise CommitteeError("--guarantee needs members fixed before the calibration samples are seen; "
                             "--temperature fits them on those samples: drop one of the two")
    if args.guarantee and not args.guarantee_reference():
        raise CommitteeError("--guarantee needs the model to compare with: pass --match MODEL or --reference MODEL")
    return args


def build_members(task: Task, names: Sequence[str], weights_dir: Path | None) -> dict[str, Member]:
    members = {}
    for name in names:
        log.info("building %s", name)
        members[name] = task.build_member(name, weights_dir)
    return members


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command = command_line(parser, argv)
    return run_tool(lambda: run(resolve_args(args)))


def command_line(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> list[str]:
    """The command as the user typed it (or as a caller passed it), for provenance."""
    return list(sys.argv) if argv is None else [parser.prog, *argv]


def run(args: argparse.Namespace) -> int:
    if args.list_tasks:
        print("\n".join(list_tasks()))
        return 0
    task = prepare_task(args)
    if args.list_models:
        zoo = task.zoo()
        for name in task.list_models(args.list_models):
            e = zoo[name]
            top1 = e.metrics.get(task.metric_name)
            per = f" per {e.notes['macs_per']}" if e.notes.get("macs_per") else ""
            views = f" views={e.notes['views']}" if e.notes.get("views") else ""
            at = f" at {'x'.join(map(str, e.input_size))}" if len(e.input_size) > 1 else ""
            print(f"{name:30s} {e.dataset:12s} MACs={format_macs(e.macs):>7}{per}{at}"
                  f"{views} {task.metric_name}={top1 if top1 is not None else '?'}")
        return 0
    if args.list_datasets:
        print("\n".join(task.list_datasets()))
        return 0
    return evaluate(task, args)


def prepare_task(args: argparse.Namespace) -> Task:
    """The task named by --task, with the models of any --zoo files, and its default batch size."""
    task = get_task(args.task)
    for path in args.zoo or []:
        task.add_zoo_file(path)
    if args.batch_size is None:
        args.batch_size = task.default_batch_size
    apply_thread_policy(args.threads)
    return task


def fitting_requested(args: argparse.Namespace) -> bool:
    return bool(args.match or args.budget or args.guarantee)


def plan(task: Task, args: argparse.Namespace) -> tuple[list[str], list, list[list[str]]]:
    """The pool to evaluate, the committees given in full, and the cascades to fit."""
    to_fit: list[list[str]] = []
    if args.cascade and not args.thresholds and not fitting_requested(args):
        # The paper's question by default: the cheapest setting matching the cascade's last (largest) member
        args.match = args.reference or args.cascade[0][-1]
        log.info("no --thresholds given: fitting the cascade thresholds to match %s on the calibration split "
                 "(as --match %s)", args.match, args.match)
    if fitting_requested(args):
        if args.thresholds:
            raise CommitteeError("--thresholds fixes a cascade's thresholds; --match/--budget/--guarantee fit "
                                 "them: pass one or the other")
        if not args.cascade:
            raise CommitteeError("--match/--budget/--guarantee fit the thresholds of a --cascade: pass one")
        to_fit = args.cascade
        committees = parse_committees(args.ensemble, [], [])
    else:
        committees = parse_committees(args.ensemble, args.cascade, args.thresholds,
                                      confidence=args.confidence, combine=args.cascade_combine)
    named = [args.match, args.guarantee_reference(), args.budget if not _is_number(args.budget) else None]
    pool = list(dict.fromkeys([*args.models, *(m for c in committees for m in c.members),
                               *(m for c in to_fit for m in c), *(n for n in named if n)]))
    if not pool:
        raise CommitteeError("nothing to evaluate: pass --models, --ensemble or --cascade (or --config)")
    # bad names and mismatched label sets fail before anything is loaded
    check_same_classes({name: task.model_entry(name).num_classes for name in pool})
    return pool, committees, to_fit


def _is_number(text: str | None) -> bool:
    try:
        float(text)
        return True
    except (TypeError, ValueError):
        return False


def evaluate(task: Task, args: argparse.Namespace) -> int:
    pool, committees, to_fit = plan(task, args)
    loaded = load_pool(task, args, pool)
    dataset, members, preds = loaded.dataset, loaded.members, loaded.preds

    calib = None
    temperatures: dict[str, float] = {}
    if to_fit or args.temperature:
        calib, preds = calibration_and_evaluation(task, args, loaded)
        if args.temperature:
            calib.require_outputs("temperature scaling (--temperature)")
            temperatures = {m: fit_temperature(calib.outputs[m], calib.targets) for m in pool}
            log.info("temperatures fitted on the calibration split: %s",
                     ", ".join(f"{m}={t:.3f}" for m, t in temperatures.items()))
            calib, preds = calib.tempered(temperatures), preds.tempered(temperatures)
        committees = committees + fit_cascades(task, args, calib, to_fit)

    rows_spec = [Single(m) for m in pool] + [c for c in committees if c is not None]
    scored = [spec for spec in rows_spec if not isinstance(spec, UnsatisfiedFit)]
    results = {spec.name: spec.evaluate(preds, task) for spec in scored}
    reference_name = args.reference or args.match or max(pool, key=lambda m: preds.macs[m].mean())
    if reference_name not in pool:
        raise CommitteeError(f"--reference {reference_name!r} is not among the evaluated models {pool}")
    reference = results[reference_name]
    intervals = bootstrap_intervals(task, {name: r.sample_statistics for name, r in results.items()},
                                    [(name, reference_name) for name in results], args.bootstrap)
    measure_n = measure_samples(args, task, len(preds.ids), calib is not None)
    measured = measure_rows(task, args, loaded, preds, scored, reference_name, temperatures, measure_n)

    rows = []
    for spec in rows_spec:
        if isinstance(spec, UnsatisfiedFit):
            rows.append(unsatisfied_row(spec.name, spec.members, task.metric_name, reference_name, spec.fit))
            continue
        r = results[spec.name]
        flag = measured and implausible(r.kind, r.members, measured[r.name], measured)
        entry = members[r.name].entry if r.kind == "member" else None
        row = result_row(r, task.metric_name, reference, intervals, measured.get(r.name), flag or None,
                         entry.published() if entry else None)
        if r.kind == "member":  # forward-pass throughput inside the shared loop, when it ran
            row["throughput_eval_loop"] = loaded.loop_throughput.get(r.name)
        if calib is not None:  # figures on the calibration split too: overfitting stays visible
            on_calib = spec.evaluate(calib, task)
            row["calibration"] = {"metric": on_calib.metric, "macs_mean": on_calib.macs_mean,
                                  "samples": len(calib.ids)}
        if getattr(spec, "fit", None):
            row["fit"] = spec.fit
        rows.append(row)
    print_report(task, dataset, preds, rows, args, temperatures, members, measure_n, intervals.spec)
    return 0


def measure_samples(args: argparse.Namespace, task: Task, available: int, split: bool) -> int:
    """How many samples to time committees on: --measure-samples (at most the samples evaluated),
    else the task's default, capped at what there is."""
    if args.measure_samples is None:
        return min(task.default_measure_samples, available)
    if args.measure_samples < 0:
        raise CommitteeError(f"--measure-samples must be >= 0 (0: do not measure), got {args.measure_samples}")
    if args.measure_samples > available:
        raise CommitteeError(f"--measure-samples {args.measure_samples} is more than the {available} samples "
                             "evaluated" + (" (the evaluation split)" if split else "")
                             + f": pass at most {available}, or leave it out to time on all of them")
    return args.measure_samples


def measure_rows(task: Task, args: argparse.Namespace, loaded: LoadedPool, preds: PoolPredictions, specs: list,
                 reference: str, temperatures: dict[str, float], n: int) -> dict[str, Measured]:
    """Time every row on the same preprocessed batches, in interleaved rounds with the reference."""
    if n == 0:
        return {}
    batches = preprocessed_batches(loaded.dataset, list(loaded.members.values()), preds.ids, n,
                                   loaded.options.batch_size, task.member_inputs)
    runs = {}
    for spec in {spec.name: spec for spec in specs}.values():
        executor = CommitteeExecutor(spec, loaded.members, task, args.device, loaded.options.amp, args.output_dtype,
                                     temperatures)
        executor.run(batches[:1], warmup=1)  # allocator, kernels, MACs counting per input shape

        def run_once(executor=executor):
            result = executor.run(batches, warmup=0)
            return len(result.exit_stage), result.seconds
        runs[spec.name] = run_once
    return measure_interleaved(runs, reference, args.measure_rounds)


@dataclass
class LoadedPool:
    dataset: SampleDataset
    members: dict[str, Member]
    options: LoopOptions
    cache: PredictionCache
    preds: PoolPredictions
    loop_throughput: dict[str, float | None]


def load_pool(task: Task, args: argparse.Namespace, pool: Sequence[str]) -> LoadedPool:
    """Build the dataset and members and get every member's outputs (from the cache or the loop)."""
    args.dataset = args.dataset or task.default_dataset
    if args.dataset is None:
        raise CommitteeError(f"pass --dataset (one of {task.list_datasets()})")
    dataset = task.build_dataset(args.dataset, args.data_root, split=args.split,
                                 class_list=args.class_list, label_file=args.label_file)
    members = build_members(task, pool, args.weights_dir)
    if args.workers is not None and args.workers < 0:
        raise CommitteeError(f"--workers must be >= 0 (0: decode in the main process), got {args.workers}")
    options = LoopOptions(batch_size=args.batch_size, device=args.device,
                          num_workers=default_workers() if args.workers is None else args.workers,
                          amp={"auto": "auto", "on": True, "off": False}[args.amp],
                          output_dtype=args.output_dtype, progress=not args.no_progress)
    cache = PredictionCache(args.cache_dir)
    preds, throughput = evaluate_pool(task, list(members.values()), dataset, cache, args.limit, options)
    return LoadedPool(dataset, members, options, cache, preds, throughput)


def calibration_and_evaluation(task: Task, args: argparse.Namespace, loaded: LoadedPool):
    """Calibration and evaluation predictions: a separate calibration dataset, or a split of the
    evaluated one that is deterministic by sample id."""
    if args.calibration_dataset:
        calib_set = task.build_dataset(args.calibration_dataset, args.calibration_data_root or args.data_root,
                                       split=args.calibration_split, class_list=args.class_list,
                                       label_file=None)
        calib, _ = evaluate_pool(task, list(loaded.members.values()), calib_set, loaded.cache, None,
                                 loaded.options)
        return calib, loaded.preds
    mask = calibration_mask(loaded.preds.ids, args.calibration_fraction)
    return loaded.preds.subset(mask), loaded.preds.subset(~mask)


def fit_cascades(task: Task, args: argparse.Namespace, calib, to_fit: list[list[str]]) -> list:
    """One fitted cascade per cascade and objective; objectives nothing satisfies are reported."""
    fitted = []
    options = dict(confidence=args.confidence, combine=args.cascade_combine)
    worst = None
    if args.worst_case:
        bound_by = args.match or (None if _is_number(args.budget) else args.budget) or args.reference
        if not bound_by:
            raise CommitteeError("--worst-case needs a reference model: --match, --budget MODEL or --reference")
        worst = Single(bound_by).evaluate(calib, task).macs_worst
    for members in to_fit:
        objectives = []
        if args.match:
            objectives.append((f"match {args.match}", dict(match=Single(args.match).evaluate(calib, task).metric)))
        if args.budget:
            if _is_number(args.budget):
                objectives.append((f"budget {float(args.budget):g} MACs", dict(budget=float(args.budget))))
            else:
                budget = Single(args.budget).evaluate(calib, task).macs_mean
                objectives.append((f"budget {args.budget}", dict(budget=budget)))
        for label, objective in objectives:
            cascade = fit_cascade(calib, task, members, levels=args.levels, macs_worst=worst, **objective, **options)
            _record_fit(fitted, cascade, label, members)
        if args.guarantee:
            eps, delta = args.guarantee
            reference = args.guarantee_reference()
            cascade, test = fit_guaranteed_cascade(calib, task, members, reference, eps, delta, args.bound, **options)
            _record_fit(fitted, cascade, f"guarantee {reference} eps={eps:g} delta={delta:g} ({args.bound})", members)
    return fitted


def _record_fit(fitted: list, cascade, label: str, members: list[str]) -> None:
    if cascade is None:  # still a row of the report, saying so
        log.warning("no threshold setting of cascade %s satisfies '%s' on the calibration split",
                    ",".join(members), label)
        cascade = UnsatisfiedFit(members)
    cascade.fit = label
    fitted.append(cascade)


class UnsatisfiedFit:
    """A cascade whose fit found no threshold setting meeting its objective: reported as a row
    with no figures, never dropped silently."""

    kind = "cascade"

    def __init__(self, members: Sequence[str]):
        self.members = list(members)
        self.name = "cascade(" + ">".join(self.members) + ")"


def print_report(task, dataset, preds, rows, args, temperatures, members, measure_n: int, bootstrap: Bootstrap) -> None:
    table = markdown_table(rows, bootstrap.confidence)
    split = " (evaluation split)" if any("calibration" in r for r in rows) else ""
    print(f"\n{task.name} on {dataset.name}{split}: {len(preds.ids)} samples"
          + (f" ({len(preds.skipped)} skipped: unreadable)" if preds.skipped else ""))
    print(table)
    reference = next(r for r in rows if r["name"] == rows[0]["reference"])
    level = f"{100 * bootstrap.confidence:g}%"
    for line in fit_lines(rows, bootstrap.confidence):
        print(line)
    for r in rows:
        if r.get("measurement_flag"):
            print(f"  {r['name']}: {r['measurement_flag']}")
    noisy = [r["name"] for r in rows if (r.get("measurement") or {}).get("noisy") and not r.get("measurement_flag")]
    if noisy:
        print(f"  the machine was noisy: the measured speedup of {', '.join(noisy)} varied by more than "
              f"{100 * NOISY_SPREAD:.0f}% (interquartile range) between rounds; rerun on a quieter machine or "
              "with more --measure-rounds")
    if preds.skipped:
        for sid, reason in list(preds.skipped.items())[:10]:
            print(f"  skipped {sid}: {reason}")
    if preds.notes:
        print(f"{len(preds.notes)} samples handled specially (kept):")
        for sid, note in list(preds.notes.items())[:10]:
            print(f"  {sid}: {note}")
    cost_notes = {name: note for name, member in members.items() if (note := member.cost_note())}
    for name, note in cost_notes.items():
        print(f"  {name}: {note}")
    note = (f"{task.metric_name} and Δ with {level} intervals (percentile bootstrap over samples, paired, "
            f"{bootstrap.resamples} resamples); MACs are multiply-adds per sample")
    if measure_n > 0:
        device = resolve_device(args.device)
        note += (f"; throughput is samples/s of model execution (data already preprocessed) on {device}, batch "
                 f"{args.batch_size}, over the first {measure_n} samples: median (interquartile range) of "
                 f"{args.measure_rounds} rounds interleaved with {reference['name']}")
    else:
        note += "; throughput not measured (--measure-samples 0)"
    print(note)
    prov = provenance(args.device, args.config_data, preds.fingerprints, args.command)
    report = {"schema_version": SCHEMA_VERSION, "provenance": prov, "task": task.name, "dataset": dataset.name,
              "dataset_title": dataset.describe(), "samples": len(preds.ids), "skipped": preds.skipped, "notes": preds.notes,
              "cost_notes": cost_notes, "rows": rows, "note": note, "temperatures": temperatures,
              "interval": {"confidence": bootstrap.confidence, "resamples": bootstrap.resamples, "seed": bootstrap.seed,
                           "method": "percentile bootstrap over samples, paired across rows"},
              "measurement": {"samples": measure_n, "rounds": args.measure_rounds, "batch_size": args.batch_size,
                              "noisy_spread": NOISY_SPREAD} if measure_n > 0 else None}
    if args.json:
        write_json(report, args.json)
    if args.csv:
        write_csv(rows, args.csv, prov)
    if args.markdown:
        atomic_write(args.markdown, lambda f: f.write((table + "\n\n<!-- " + short_line(prov) + " -->\n").encode()))
