#!/usr/bin/env python3
"""Paper-style tables and figures from tools/search.py results; see `tools/report.py --help`."""
import sys

from committee_tasks.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
