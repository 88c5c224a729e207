"""What the maintenance scripts in tools/ share: the repository root, put first on the import
path (so a checkout runs them without being installed), and their entry point."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_script(main: Callable[[], int], module_name: str) -> None:
    """Run ``main`` when its file runs as a script (``module_name`` is ``"__main__"``), not when
    it is imported: its return value is the exit status; a `CommitteeError` prints ``error: ...``
    and exits 2."""
    if module_name == "__main__":
        from committee_tasks.core.errors import run_tool

        sys.exit(run_tool(main))
