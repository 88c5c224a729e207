#!/usr/bin/env python3
"""Rewrite (or check) the zoo indexes the built-in tasks ship: the facts their zoos read from an
installed package, kept as JSON so that ``--list-models`` imports no model library.

    .venv/bin/python tools/write_zoo_indexes.py           # after upgrading torchvision, timm or pytorchvideo
    .venv/bin/python tools/write_zoo_indexes.py --check   # exit 1 if an index differs from its package

Each index records the package version it was read from; with another version installed the
zoo reads the package itself (correct, only slower), so a stale index never gives wrong figures.
"""
from __future__ import annotations

import argparse
import importlib

from _common import run_script

# modules whose INDEX is a committee_tasks.core.zoo_index.PackageIndex
INDEX_MODULES = ("committee_tasks_builtin.classification.torchvision_index",
                 "committee_tasks_builtin.classification.timm_index", "committee_tasks_builtin.video.zoo")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if an index is not current")
    args = p.parse_args(argv)
    stale = 0
    for name in INDEX_MODULES:
        index = importlib.import_module(name).INDEX
        if args.check:
            drift = index.drift()
            stale += drift is not None
            print(drift or f"{index.path}: current")
        else:
            written = index.write()
            print(f"wrote {index.path}: {len(written['records'])} records from "
                  f"{written['distribution']} {written['version']}")
    return 1 if stale else 0


run_script(main, __name__)
