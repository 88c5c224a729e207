"""One thread policy for the whole toolkit, chosen once, so that another busy process slows a run
by about its share of the cores instead of stalling it.

* OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``). torch's CPU kernels split each op
  across its threads and wait for all of them; by default a thread that finishes early spins, and
  on a machine where another process is busy the spinning threads take the cores the late thread
  needs (measured here: a cascade's small later-stage batches ran 5-10x slower). The OpenMP runtime
  reads the variable when torch loads it, so ``committee_tasks`` sets it on import, before torch;
  a value already in the environment wins, and `thread_settings` says when torch was loaded first.
* torch uses one intra-op thread per CPU this process may run on (its affinity mask and cgroup CPU
  quota), not the machine's count, which oversubscribes containers and ``taskset`` runs.
* DataLoader workers (decoding) default to at most 4 and never more than those CPUs; each worker
  runs torch single-threaded (PyTorch's own default in workers).

This module must not import torch at module level (see above).
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

WAIT_POLICY = "PASSIVE"
_set_too_late = False  # set by us after torch was loaded: its OpenMP runtime never read it


def set_openmp_environment() -> None:
    global _set_too_late
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
        _set_too_late = "torch" in sys.modules


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, bounded by a cgroup v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def default_workers() -> int:
    return min(4, available_cpus())


def apply_thread_policy(threads: int | None = None) -> int:
    """Set torch's intra-op threads (``threads`` or one per available CPU); returns the count."""
    import torch

    from committee_tasks.core.errors import CommitteeError

    if threads is not None and threads < 1:
        raise CommitteeError(f"--threads must be at least 1, got {threads}")
    count = threads or available_cpus()
    torch.set_num_threads(count)
    return count


def thread_settings() -> dict:
    """What a result's provenance records about threads."""
    import torch

    wait = os.environ.get("OMP_WAIT_POLICY") or "unset (OpenMP's default)"
    if _set_too_late:
        wait += " (set after torch was loaded: not in effect)"
    return {"torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
            "omp_wait_policy": wait, "cpus_available": available_cpus()}
