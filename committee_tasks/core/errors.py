"""Error types and messages shared by the whole toolkit."""
from __future__ import annotations

import difflib
import os
import sys
from typing import Callable, Iterable


class CommitteeError(Exception):
    """Base class of the errors this toolkit raises on bad input."""


class ShareDone(Exception):
    """This process did its share of the evaluation (a job-array shard, a torchrun rank other
    than 0) and stops: not an error. Tools print the message and exit 0."""


class UnknownNameError(CommitteeError, KeyError):
    """A task, model, dataset or confidence name that is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def require(condition: bool, message: str) -> None:
    """Refuse bad input: raise `CommitteeError(message)` unless ``condition`` holds."""
    if not condition:
        raise CommitteeError(message)


def unknown_name(kind: str, name: str, options: Iterable[str], fix: str = "") -> UnknownNameError:
    """An error naming the bad value, the closest valid ones and how to list them all."""
    options = sorted(options)
    close = difflib.get_close_matches(name, options, n=5, cutoff=0.5)
    if not close:  # substring matches help with long zoo names ("vit" -> "vit_b_16", ...)
        close = [o for o in options if name.lower() in o.lower()][:5]
    message = f"unknown {kind} {name!r}"
    if close:
        message += f"; did you mean {', '.join(repr(c) for c in close)}?"
    elif len(options) <= 12:
        message += f"; valid: {', '.join(repr(o) for o in options)}"
    else:
        message += f" ({len(options)} are registered)"
    if fix:
        message += f"{'' if message.endswith(('?', '.')) else '.'} {fix}"
    return UnknownNameError(message)


def run_tool(run: Callable[..., int], *args) -> int:
    """Run a command-line tool: bad input prints ``error: ...`` on stderr and exits 2, no traceback;
    SIGTERM (exit 143) and Ctrl-C (exit 130, 128 + SIGINT) end it after the loop has written what
    it computed, with one line saying so instead of a traceback."""
    from committee_tasks.core.signals import Terminated, terminate_as_exception

    try:
        with terminate_as_exception():
            return run(*args)
    except Terminated:
        print("terminated (SIGTERM): every output computed so far is in the cache; the same command resumes",
              file=sys.stderr)
        return 143
    except KeyboardInterrupt:  # Ctrl-C: the loop's `finally` has written its work, as for SIGTERM
        print("\ninterrupted (Ctrl-C): every output computed so far is in the cache; the same command resumes",
              file=sys.stderr)
        return 130
    except ShareDone as done:
        if str(done):
            print(done)
        return 0
    except CommitteeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
