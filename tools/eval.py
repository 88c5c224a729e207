#!/usr/bin/env python3
"""Evaluate members and committees (ensembles, cascades); see `tools/eval.py --help`."""
import sys

from committee_tasks.cli.eval import main

if __name__ == "__main__":
    sys.exit(main())
