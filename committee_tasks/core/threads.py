"""One thread policy for the whole toolkit, chosen once, so that another busy process slows a run
by about its share of the cores instead of stalling it.

* OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``). torch's CPU kernels split each op
  across its threads and wait for all of them; by default a thread that finishes early spins, and
  on a machine where another process is busy the spinning threads take the cores the late thread
  needs (measured here: a cascade's small later-stage batches ran 5-10x slower). The OpenMP runtime
  reads the variable when torch loads it, so ``committee_tasks`` sets it on import, before torch;
  a value already in the environment wins, and `thread_settings` says when torch was loaded first.
* torch uses one intra-op thread per CPU this process may run on (its affinity mask and cgroup CPU
  quota), not the machine's count, which oversubscribes containers and ``taskset`` runs; under
  torchrun, ranks that share a machine's CPUs split them.
* DataLoader workers (decoding) default to at most 4 and never more than those CPUs; each worker
  runs torch single-threaded (PyTorch's own default in workers).
* Work made of many small array operations (the search) runs in our own worker threads over
  disjoint pieces (`map_in_threads`), torch single-threaded in each: a free worker takes the next
  piece, so a competing process costs its share of the cores instead of stalling every op.

This module must not import torch at module level (see above).
"""
from __future__ import annotations

import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")

WAIT_POLICY = "PASSIVE"
_set_too_late = False  # set by us after torch was loaded: its OpenMP runtime never read it


def set_openmp_environment() -> None:
    global _set_too_late
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
        _set_too_late = "torch" in sys.modules


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, bounded by a cgroup v2 CPU quota and, under
    torchrun, by its share of the machine's CPUs among the job's processes on this machine."""
    machine = os.cpu_count() or 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = machine
    quota = _cgroup_cpu_quota()
    if quota is not None:  # the whole container's, shared by all of its processes
        cpus, machine = min(cpus, quota), min(machine, quota)
    ranks = local_ranks()
    if ranks > 1:
        # Ranks that the launcher bound to CPUs of their own keep them (``--numa-binding``, srun's
        # binding); unbound ranks all see every CPU and would each use them all. Measured here (2
        # cores, 2 ranks, 2 CIFAR ResNets on 10,000 images): 54.7 s with 2 threads each, 52.7 s
        # with 1; beside a busy process 81.5 and 82.0 s against 77.0 and 77.4 s.
        cpus = min(cpus, max(1, machine // ranks))
    return max(1, cpus)


_ranks_done = False  # `other_ranks_done`: rank 0 goes on alone after the job's barrier


def local_ranks() -> int:
    """This job's processes on this machine: torchrun's LOCAL_WORLD_SIZE, else 1 (and 1 once the
    other ranks are done)."""
    if _ranks_done:
        return 1
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _cgroup_cpu_quota() -> int | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else max(1, math.floor(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def other_ranks_done() -> None:
    """After torchrun's barrier rank 0 scores, measures and reports alone while the other ranks
    exit: its share of the CPUs becomes all of them. torch's threads follow where they were the
    policy's (not a --threads the user gave)."""
    global _ranks_done
    import torch

    policy = available_cpus()
    _ranks_done = True
    if torch.get_num_threads() == policy:
        torch.set_num_threads(available_cpus())


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
    try:  # the job's processes (torchrun), which local_ranks no longer counts once rank 0 goes on alone
        world = max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        world = 1
    return {"torch": torch.get_num_threads(), "interop": torch.get_num_interop_threads(),
            "omp_wait_policy": wait, "cpus_available": available_cpus(), "local_ranks": local_ranks(),
            "world_size": world}


@contextmanager
def torch_threads(count: int):
    """torch's intra-op threads set to ``count`` inside the block (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def map_in_threads(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """``[fn(item) for item in items]``, computed by one worker thread per available CPU, with torch
    single-threaded in each.

    For many small array operations (the search's phases): a worker takes the next item as soon as
    it is free, so a competing process slows the work by about its share of the cores, where
    OpenMP's threads, splitting each small op and waiting for the slowest, stall. numpy and torch
    release the GIL inside their loops, so the threads run in parallel."""
    items = list(items)
    workers = min(workers or available_cpus(), len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    with torch_threads(1), ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))
