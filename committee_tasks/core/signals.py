"""SIGTERM as an exception in the command-line tools, so a terminated run keeps its work.

SLURM (at a time limit or on preemption), torchrun (when another rank fails), `kill` and
container stops send SIGTERM, whose default action ends the process at once: outputs computed
since the last cache write would be lost. Raised as `Terminated` instead, the loop's `finally`
writes them, and the tool exits 143 (128 + SIGTERM) as a terminated process does.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading


class Terminated(BaseException):
    """The process got SIGTERM. A BaseException, as KeyboardInterrupt: ``except Exception`` must
    not swallow it."""


@contextlib.contextmanager
def terminate_as_exception():
    """Within the block, SIGTERM to this process raises `Terminated` in its main thread.
    Processes forked meanwhile ignore it; DataLoader workers, where torch sets its own handler,
    exit quietly (`engine/inputs.py`): `timeout`, SLURM and torchrun send it to the whole process
    group, and a worker it killed made the loader print a traceback on the way out."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() != owner:  # a forked child (a DataLoader worker): its parent stops it
            return
        raise Terminated("terminated by SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def default_signals():
    """Within the block, SIGTERM and Ctrl-C take their default action: the process ends at once.
    For waits inside C++ (torch.distributed's rendezvous and barrier), where Python's handlers
    never run: a process stuck there (no peer ever joins) ignored SIGTERM and Ctrl-C for up to the
    barrier's timeout. Only for blocks with nothing unwritten: a rank joins before its share and
    meets the barrier after writing it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
