#!/usr/bin/env python3
"""Search every ensemble and cascade of a pool; see `tools/search.py --help`."""
import sys

from committee_tasks.cli.search import main

if __name__ == "__main__":
    sys.exit(main())
