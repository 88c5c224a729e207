"""Argument groups shared by the command-line tools, and their conversion into the API's options.

Imports nothing heavy: ``--help`` must not wait for torch.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from committee_tasks.core.dataset_options import key_value
from committee_tasks.core.errors import CommitteeError

CONFIDENCE_HELP = ("max_prob (default), margin, neg_entropy, frac_above_<level>, or any registered with "
                   "committee_tasks.committees.register_confidence")


def tool_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """A tool's parser, with the option every tool that evaluates a pool has: ``--task``."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--task", default="classification", help="task plugin name (see tools/eval.py --list-tasks)")
    return p


def names(text: str) -> list[str]:
    """Comma-separated model names: ``a,b,c``."""
    found = [n.strip() for n in text.split(",") if n.strip()]
    if not found:
        raise argparse.ArgumentTypeError(f"expected comma-separated model names, got {text!r}")
    return found


def floats(text: str) -> list[float]:
    """Comma-separated numbers: ``0.9,0.8``."""
    try:
        return [float(t) for t in text.split(",")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from err


def share(text: str) -> str | None:
    """``I/N``, checked where it is given (the command line, or a config file, which the error
    then names): share I of N, 0-based; ``none``: no share (overrides a config file's)."""
    from committee_tasks.engine.distributed import Share

    if text.strip().lower() == "none":
        return None
    try:
        return str(Share.parse(text))
    except CommitteeError as err:
        raise argparse.ArgumentTypeError(str(err).replace("--shard takes ", "expected ")) from None


def add_data_args(p: argparse.ArgumentParser) -> None:
    data = p.add_argument_group("data")
    data.add_argument("--dataset", help="dataset name of the task")
    data.add_argument("--data-root", type=Path, help="where the dataset is on disk")
    data.add_argument("--split", help="dataset split (e.g. ImageNet 'val')")
    data.add_argument("--data-option", type=key_value, action="append", default=None, metavar="KEY=VALUE",
                      help="an option of the dataset, e.g. classes=names.txt or ignore_index=11 (repeatable; "
                           "each dataset's options: --list-datasets)")
    data.add_argument("--limit", type=int, help="evaluate an evenly spaced subset of N samples (quick runs)")
    data.add_argument("--weights-dir", type=Path, help="folder holding weight files (checked before the torch.hub cache)")
    data.add_argument("--zoo", type=Path, action="append", default=None, metavar="FILE",
                      help="file describing more models for the task (your own checkpoints; repeatable)")


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
    fit.add_argument("--calibration-data-option", type=key_value, action="append", default=None, metavar="KEY=VALUE",
                     help="an option of --calibration-dataset, as --data-option is of --dataset (repeatable)")


def add_execution_args(p: argparse.ArgumentParser) -> None:
    run = p.add_argument_group("execution")
    run.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    run.add_argument("--amp", choices=["auto", "on", "off"], default="auto", help="mixed precision (auto: on CUDA)")
    run.add_argument("--device-preprocessing", choices=["auto", "on", "off"], default="auto",
                     help="image members: copy uint8 pixels to the device and convert and normalise them there, a "
                          "quarter of the bytes float32 inputs take (auto: on CUDA; the members' inputs are the same, to 1 ulp "
                          "on CUDA)")
    run.add_argument("--batch-size", type=int, help="samples per batch (default: the task's, e.g. 128 images, 2 videos)")
    run.add_argument("--workers", type=int, default=None,
                     help="DataLoader worker processes (default: the CPUs this process may use, at most 4)")
    run.add_argument("--cache-dir", help="prediction cache root (default ~/.cache/committee_tasks/predictions "
                     "or $COMMITTEE_TASKS_CACHE; 'memory', here or in the variable: keep predictions in memory, write nothing)")
    run.add_argument("--output-dtype", choices=["float16", "float32"], default="float16",
                     help="dtype of cached probabilities")
    run.add_argument("--threads", type=int, help="torch CPU threads (default: the CPUs this process may use)")
    run.add_argument("--shard", metavar="I/N", type=share,  # "none": a config file's share off
                     help="compute only share I of N (0-based) of the samples missing from the cache, then stop "
                          "(SLURM arrays, several machines); the same command without --shard reads the union "
                          "(--shard none: a config file's share off). Under torchrun each rank takes its share by "
                          "itself")
    run.add_argument("--flush-seconds", type=float, default=60.0, metavar="S",
                     help="write computed outputs to the cache at least every S seconds (default 60; and every "
                          "4,096 samples), so an interruption loses at most about that much work")
    run.add_argument("--no-progress", action="store_true")


def add_cards_arg(group, which: str) -> None:
    group.add_argument("--cards", type=Path, metavar="DIR",
                       help=f"write a committee card (JSON, runnable with load_committee) for {which} into DIR")


def write_cards(result, folder: Path | None) -> None:
    """Save ``result.cards()`` into ``folder`` (when given) and say where."""
    if folder:
        from committee_tasks.committees.cards import save_cards

        written = save_cards(result.cards(), folder)
        for path in written:
            print(f"wrote committee card {path}")
        if not written:  # members alone, or every fit unmet: say so rather than leave no trace
            print(f"--cards {folder}: no committee to write a card of (only members, or no fit met its target)")


def check_outputs(files: dict, folders: dict | None = None) -> None:
    """Refuse output files (``{"--json": path}``) and folders (``--cards``) that cannot be written,
    before any work rather than after it: a file is tried in the nearest folder that exists
    (nothing is left behind, no folder made)."""
    import os
    import tempfile

    from committee_tasks.core.errors import CommitteeError

    wanted = [(flag, Path(p), True) for flag, p in files.items() if p is not None]
    wanted += [(flag, Path(p), False) for flag, p in (folders or {}).items() if p is not None]
    seen: dict[Path, str] = {}
    for flag, path, _ in wanted:  # one would overwrite the other, silently
        other = seen.setdefault(path.resolve(), flag)
        if other != flag:
            raise CommitteeError(f"{other} and {flag} both name {path}: the second would overwrite the first; give "
                                 "each its own file")
    for flag, path, is_file in wanted:
        if is_file and path.is_dir():
            raise CommitteeError(f"{flag} {path} is a folder: name a file in it")
        folder = path.parent if is_file else path
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            if not folder.is_dir():
                raise NotADirectoryError(20, "not a folder", str(folder))
            fd, tried = tempfile.mkstemp(dir=folder, prefix=".write-test-")
            os.close(fd)
            os.unlink(tried)
        except OSError as err:
            raise CommitteeError(f"{flag} {path}: cannot write in {folder} ({type(err).__name__}: "
                                 f"{err.strerror or err}); name a writable place") from None


def add_measure_args(run) -> None:
    run.add_argument("--measure-samples", type=int,
                     help="measure throughput of every row on this many samples, held in memory preprocessed "
                          "(0: do not measure; default: the task's, e.g. 2048 images, 8 videos)")
    run.add_argument("--measure-rounds", type=int, default=5,
                     help="timed rounds per row, interleaved with the reference (median and spread reported)")
    run.add_argument("--later-stages", default="gathered",
                     help="how a cascade's later stages run when measured: 'gathered' (default: the rows that go "
                          "on wait until a full batch of them has gathered across batches, as a throughput-oriented "
                          "deployment batches them) or 'per-batch' (each batch's remaining rows on their own)")


def data_options(args: argparse.Namespace):
    from committee_tasks.api.options import DataOptions

    return DataOptions(args.dataset, args.data_root, args.split, option_mapping(args.data_option, "--data-option"),
                       args.limit)


def option_mapping(values, flag: str) -> dict:
    """``--data-option`` values (`OptionValue`s, each with the folder its paths start from) by key."""
    from committee_tasks.core.errors import CommitteeError

    found = {}
    for value in values or ():
        if value.key in found:
            raise CommitteeError(f"{flag} {value.key}=... is given twice ({found[value.key].value!r} and "
                                 f"{value.value!r}); give it once")
        found[value.key] = value
    return found


def model_options(args: argparse.Namespace):
    from committee_tasks.api.options import ModelOptions

    return ModelOptions(args.weights_dir, tuple(args.zoo or ()))


def execution_options(args: argparse.Namespace):
    from committee_tasks.api.options import ExecutionOptions

    return ExecutionOptions(args.device, args.amp, args.batch_size, args.workers, args.cache_dir, args.output_dtype,
                            not args.no_progress, args.threads, args.shard, args.flush_seconds,
                            args.device_preprocessing)


def calibration_options(args: argparse.Namespace):
    from committee_tasks.api.options import CalibrationOptions

    return CalibrationOptions(args.calibration_fraction, args.calibration_dataset, args.calibration_data_root,
                              args.calibration_split,
                              option_mapping(args.calibration_data_option, "--calibration-data-option"))


def bootstrap(args: argparse.Namespace):
    from committee_tasks.search.intervals import Bootstrap

    return Bootstrap(args.interval_level, args.resamples)


def command_line(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> list[str]:
    """The command as the user typed it (or as a caller passed it), for provenance."""
    return list(sys.argv) if argv is None else [parser.prog, *argv]


def tool_main(build_parser, run, log: bool = True):
    """A tool's ``main(argv=None, prog=None) -> exit code``: see `run_command`."""

    def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
        return run_command(build_parser, run, argv, prog, log)

    return main


def run_command(build_parser, run, argv: Sequence[str] | None, prog: str | None, log: bool = True) -> int:
    """A tool's main: its parser (named ``prog`` when it runs as ``committee <tool>``) reads the
    command line and any ``--config`` file, then ``run(args, command)``; bad input exits 2 with
    the error's message (see `run_tool`)."""
    from committee_tasks.cli.config import parse_args
    from committee_tasks.core.errors import run_tool

    if log:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser(prog) if prog else build_parser()
    return run_tool(lambda: run(parse_args(parser, argv), command_line(parser, argv)))
