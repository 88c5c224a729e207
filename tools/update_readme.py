#!/usr/bin/env python3
"""Write the README's figures from real runs, never by hand, and check that they still hold.

Each figure of the README sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->``
and is rendered here, by the toolkit's own table code, from the JSON the README's commands write:

    digits-eval    tools/eval.py on the embedded default (README command 1)
    digits-search  tools/search.py + tools/report.py on the same digits
    cifar-eval     the README's CIFAR-10 ResNet command (needs ../shared/data)
    cifar-fit      the README's --match/--budget command on the same data
    cifar-search   tools/search.py on the four CIFAR ResNets, as tools/report.py --names prints it
    cascade-speed  benchmarks/cascade_speed.py (only with --benchmarks: minutes)
    cascade-speed-openmp-default  the same with OpenMP's default waiting (OMP_WAIT_POLICY empty)
    channels-last  benchmarks/channels_last.py (only with --benchmarks)
    search-speed   benchmarks/search_speed.py (only with --benchmarks)

    .venv/bin/python tools/update_readme.py --write [--benchmarks]   # rerun and rewrite the README
    .venv/bin/python tools/update_readme.py --check [--outputs DIR]  # exit 1 if a figure changed

Measured columns (samples/s, measured speedups) differ from machine to machine: ``--check``
compares everything else exactly and ignores those (and the benchmarks, which are all timings).
``--outputs DIR`` reuses the JSON files a run left there (README command 1's outputs/digits).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from _common import REPO, run_script

from committee_tasks.core.files import from_strict_json  # noqa: E402
from committee_tasks.reporting.eval_table import MEASURED_COLUMNS, fit_lines, markdown_table  # noqa: E402
from committee_tasks.reporting.search_tables import build_tables, format_macs, to_markdown  # noqa: E402

README = REPO / "README.md"
PY = sys.executable
CIFAR_EVAL = ["--task", "classification", "--dataset", "cifar10", "--models", "resnet32,resnet44",
              "--cascade", "resnet20,resnet56", "--thresholds", "0.9"]
CIFAR_FIT = ["--dataset", "cifar10", "--cascade", "resnet20,resnet56", "--match", "resnet56", "--budget", "resnet44"]
CIFAR_SEARCH = ["--dataset", "cifar10", "--pool", "resnet20,resnet32,resnet44,resnet56"]
MASK = "…"


# ---------------------------------------------------------------- runs

def _run(argv: list[str], env: dict | None = None, ok=(0,)) -> str:
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=env)
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def digits_outputs(folder: Path) -> dict[str, dict]:
    if not (folder / "eval.json").is_file() or not (folder / "search.json").is_file():
        _run(["bash", str(REPO / "tools" / "main_job.sh"), str(folder)])
    return {name: from_strict_json(json.loads((folder / f"{name}.json").read_text())) for name in ("eval", "search")}


def cifar_outputs(folder: Path, data_root: Path, measure: bool) -> dict[str, dict]:
    common = ["--data-root", str(data_root), "--weights-dir", str(data_root / "cifar10-resnets"), "--no-progress"]
    outputs = {}
    for name, argv in (("cifar-eval", CIFAR_EVAL), ("cifar-fit", CIFAR_FIT), ("cifar-search", CIFAR_SEARCH)):
        path = folder / f"{name}.json"
        if not path.is_file():
            tool = "search.py" if name == "cifar-search" else "eval.py"
            timing = [] if measure and name == "cifar-eval" or tool == "search.py" else ["--measure-samples", "0"]
            _run([PY, str(REPO / "tools" / tool), *argv, *common, *timing, "--json", str(path)])
        outputs[name] = from_strict_json(json.loads(path.read_text()))
    return outputs


# ---------------------------------------------------------------- rendering

def _eval_table(report: dict) -> str:
    return markdown_table(report["rows"], report["interval"]["confidence"])


def render_digits_eval(out: dict) -> str:
    report = out["eval"]
    rows = {r["name"]: r for r in report["rows"]}
    cascade = next(r for r in report["rows"] if r["kind"] == "cascade")
    ref = rows[cascade["reference"]]
    lo, hi = cascade["delta_ci"]
    level = f"{100 * report['interval']['confidence']:g}%"
    verdict = "cannot tell them apart" if not cascade["delta_distinguishable"] else "tells them apart"
    return (f"{_eval_table(report)}\n\n"
            f"The cascade scores {cascade['metric']:.2f} against {ref['name']}'s {ref['metric']:.2f} on the "
            f"{report['samples']} test digits (Δ {cascade['delta_metric']:+.2f}, {level} interval "
            f"[{lo:+.2f}, {hi:+.2f}]: this many digits {verdict}) with {cascade['speedup_macs']:.1f}x fewer MACs "
            f"({format_macs(cascade['macs_mean'])} instead of {format_macs(ref['macs_mean'])} per digit).")


def render_digits_search(out: dict) -> str:
    search = out["search"]
    table = to_markdown(build_tables([search]), footer=False).rstrip()
    largest = max(search["references"], key=lambda r: r["macs_mean"])
    acc = largest["similar_accuracy"]
    if acc is None:
        return table + f"\n\nNo committee matches {largest['reference']} on the calibration split."
    ref_metric, metric = largest["metric"], acc["metric"]
    lo, hi = acc["delta_ci"]
    level = f"{100 * search['interval']['confidence']:g}%"
    return (f"{table}\n\n"
            f"The cascade chosen to match {largest['reference']} on the {search['split']['calibration']} "
            f"calibration digits ({metric['calibration']:.2f} vs {ref_metric['calibration']:.2f}) scores "
            f"{metric['evaluation']:.2f} against {ref_metric['evaluation']:.2f} on the other "
            f"{search['split']['evaluation']} (Δ {acc['delta']:+.2f}, {level} interval [{lo:+.2f}, {hi:+.2f}]) at "
            f"{acc['speedup']:.1f}x fewer MACs.")


def render_cifar_eval(out: dict) -> str:
    return _eval_table(out["cifar-eval"])


def render_cifar_fit(out: dict) -> str:
    report = out["cifar-fit"]
    return "```\n" + "\n".join(line.strip() for line in fit_lines(report["rows"], report["interval"]["confidence"])) \
        + "\n```"


def render_cifar_search(out: dict) -> str:
    return to_markdown(build_tables([out["cifar-search"]]), names=True, footer=False).rstrip()


def render_benchmark(script: str, env: dict | None = None) -> Callable[[dict], str]:
    """A benchmark's printout (exit 1 = a goal missed: printed all the same, it says so itself)."""
    def render(_out: dict) -> str:
        printed = _run([PY, str(REPO / "benchmarks" / script)], None if env is None else {**os.environ, **env},
                       ok=(0, 1))
        return "```\n" + printed.strip() + "\n```"
    return render


BLOCKS: dict[str, tuple[str, Callable[[dict], str]]] = {
    "digits-eval": ("digits", render_digits_eval),
    "digits-search": ("digits", render_digits_search),
    "cifar-eval": ("cifar", render_cifar_eval),
    "cifar-fit": ("cifar", render_cifar_fit),
    "cifar-search": ("cifar", render_cifar_search),
    "cascade-speed": ("benchmark", render_benchmark("cascade_speed.py")),
    "cascade-speed-openmp-default": ("benchmark", render_benchmark("cascade_speed.py", {"OMP_WAIT_POLICY": ""})),
    "channels-last": ("benchmark", render_benchmark("channels_last.py")),
    "search-speed": ("benchmark", render_benchmark("search_speed.py")),
}


# ---------------------------------------------------------------- the README

def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- generated: {re.escape(name)} -->\n)(.*?)\n?(<!-- end: {re.escape(name)} -->)", re.S)


def readme_block(text: str, name: str) -> str:
    found = _pattern(name).search(text)
    if found is None:
        raise SystemExit(f"README.md has no block {name!r} (<!-- generated: {name} --> ... <!-- end: {name} -->)")
    return found.group(2)


def mask_measured(text: str) -> str:
    """The block with every cell of a measured column replaced: what must match on any machine."""
    lines, measured = [], set()
    for line in text.splitlines():
        if line.startswith("|"):
            cells = line.strip().strip("|").split(" | ")
            if any(c.strip() in MEASURED_COLUMNS for c in cells):
                measured = {i for i, c in enumerate(cells) if c.strip() in MEASURED_COLUMNS}
            elif not set(line) <= set("|-: "):
                line = "| " + " | ".join(MASK if i in measured else c for i, c in enumerate(cells)) + " |"
        else:
            measured = set()
        lines.append(line)
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rerun and rewrite the README's blocks")
    mode.add_argument("--check", action="store_true", help="exit 1 if a block differs from a fresh run")
    p.add_argument("--only", help="comma-separated block names (default: all that can run here)")
    p.add_argument("--outputs", type=Path, help="folder with the runs' JSON files (reused; written when missing)")
    p.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data",
                   help="the CIFAR-10 test set and ResNets (blocks cifar-*: skipped when absent)")
    p.add_argument("--benchmarks", action="store_true", help="also rerun the benchmarks (--write only)")
    args = p.parse_args(argv)

    names = args.only.split(",") if args.only else list(BLOCKS)
    unknown = [n for n in names if n not in BLOCKS]
    if unknown:
        raise SystemExit(f"unknown block(s) {unknown}; valid: {', '.join(BLOCKS)}")
    have_cifar = (args.data_root / "cifar10-test.npz").is_file()
    skipped = [n for n in names if (BLOCKS[n][0] == "cifar" and not have_cifar)
               or (BLOCKS[n][0] == "benchmark" and not (args.benchmarks and args.write))]
    names = [n for n in names if n not in skipped]
    if skipped:
        print(f"skipped: {', '.join(skipped)} (no CIFAR data at {args.data_root}, or benchmarks not asked for)")

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.outputs or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        out: dict = {}
        if any(BLOCKS[n][0] == "digits" for n in names):
            out.update(digits_outputs(folder))
        if any(BLOCKS[n][0] == "cifar" for n in names):
            out.update(cifar_outputs(folder, args.data_root, measure=args.write))
        fresh = {n: BLOCKS[n][1](out) for n in names}

    text = README.read_text()
    if args.check:
        stale = [n for n in names if mask_measured(readme_block(text, n)) != mask_measured(fresh[n])]
        for n in stale:
            print(f"--- README block {n}:\n{mask_measured(readme_block(text, n))}\n+++ fresh run:\n"
                  f"{mask_measured(fresh[n])}\n")
        print(f"{len(names) - len(stale)} of {len(names)} README blocks match a fresh run"
              + (f"; stale: {', '.join(stale)} (rerun tools/update_readme.py --write)" if stale else ""))
        return 1 if stale else 0
    for n in names:
        readme_block(text, n)  # every block exists before anything is written
        text = _pattern(n).sub(lambda m: m.group(1) + fresh[n] + "\n" + m.group(3), text)
    README.write_text(text)
    print(f"rewrote {len(names)} README blocks: {', '.join(names)}")
    return 0


run_script(main, __name__)
