"""One CPU-bound process beside a measurement: the benchmarks' "with one competing process"
condition (this project's machines are shared, so speed is also measured under load)."""
from __future__ import annotations

import contextlib
import subprocess
import sys
import time


@contextlib.contextmanager
def competing_process(active: bool = True):
    """One pure-Python busy loop for as long as the block runs (nothing when not ``active``)."""
    if not active:
        yield
        return
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it reach the scheduler's steady state
        yield
    finally:
        busy.kill()
        busy.wait()
