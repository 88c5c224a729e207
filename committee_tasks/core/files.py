"""Files the toolkit writes: atomically (a temporary name, then a rename), under one cache home.

Every layer writes through these (the prediction cache, reports, the weight-hash memo), so an
interrupted run never leaves a half-written file behind.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path, PurePath
from typing import Any

CACHE_ENV = "COMMITTEE_TASKS_CACHE"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


MEMORY_CACHE = "memory"  # as --cache-dir or $COMMITTEE_TASKS_CACHE: keep predictions in memory, write nothing


def wants_memory_cache(cache_dir: Any) -> bool:
    """Whether predictions stay in memory: ``--cache-dir memory``, or no --cache-dir and
    ``$COMMITTEE_TASKS_CACHE=memory`` (which made a folder named "memory" in the working directory)."""
    return cache_dir == MEMORY_CACHE or (cache_dir is None and os.environ.get(CACHE_ENV) == MEMORY_CACHE)


def _cache_env() -> str | None:
    value = os.environ.get(CACHE_ENV)
    return value if value and value != MEMORY_CACHE else None


def default_cache_root() -> Path:
    """The prediction cache: ``$COMMITTEE_TASKS_CACHE``, else ``$XDG_CACHE_HOME/committee_tasks/predictions``."""
    if (root := _cache_env()) is not None:
        return Path(root)
    return cache_home() / "predictions"


def cache_home() -> Path:
    """Where the toolkit's small indexes live (the weight-hash memo): ``$COMMITTEE_TASKS_CACHE``
    when set to a folder (so one variable moves everything, and tests stay in their own folder),
    else ``$XDG_CACHE_HOME/committee_tasks`` (``~/.cache/committee_tasks``)."""
    if (root := _cache_env()) is not None:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "committee_tasks"


def atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Non-finite numbers in result files (a cascade stage no sample exits at has threshold inf) as the
# strings JavaScript's Number() and Python's float() read back: bare Infinity and NaN tokens,
# which Python writes by default, are not JSON (RFC 8259) and JSON.parse, jq and strict parsers
# refuse them.
NON_FINITE_TEXT = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


def strict_json(obj: Any) -> Any:
    """``obj`` with every non-finite float (values, not keys) as its `NON_FINITE_TEXT` string."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def from_strict_json(obj: Any) -> Any:
    """`strict_json` undone: the strings of `NON_FINITE_TEXT` (as values) read back as floats."""
    if isinstance(obj, str):
        return NON_FINITE_TEXT.get(obj, obj)
    if isinstance(obj, dict):
        return {k: from_strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_strict_json(v) for v in obj]
    return obj


def atomic_write_json(path: Path, obj: Any, strict: bool = False) -> None:
    """``obj`` as JSON, atomically; ``strict``: non-finite numbers as strings (`strict_json`),
    for result files other programs read."""
    if strict:
        obj = strict_json(obj)
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=not strict)
    atomic_write(path, lambda f: f.write(text.encode()))


def resolve_in(folder: Path, path: str | PurePath) -> Path:
    """``path`` as written in a file of ``folder`` (a config, a zoo file): ``~`` expanded, kept
    when absolute, else taken relative to ``folder``."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else (Path(folder) / path).resolve()


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def read_text(path: Path, what: str, fix: str = "") -> str:
    """A text file's content; a missing or unreadable file is a `CommitteeError` naming ``what``
    it should have been, the path, and ``fix``."""
    from committee_tasks.core.errors import CommitteeError

    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise CommitteeError(f"{what} {path}: no such file" + (f"; {fix}" if fix else "")) from None
    except (OSError, UnicodeDecodeError) as err:
        raise CommitteeError(f"{what} {path}: cannot read it ({err})") from None


def parse_json(text: str, what: str, hint: str = "") -> Any:
    """JSON ``text`` of the file ``what``; bad JSON is a `CommitteeError` with its line and column."""
    from committee_tasks.core.errors import CommitteeError

    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CommitteeError(f"{what}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})"
                             + (f"; {hint}" if hint else "")) from None


def display_path(path: str | PurePath, parts: int = 2) -> str:
    """A data folder as titles show it: relative to the working directory where it lies below it,
    else its last ``parts`` parts after ".../" (a table's or plot's title, not the whole path;
    provenance keeps that)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except (ValueError, OSError):
        tail = path.parts[-parts:]
        return str(Path(*tail)) if len(path.parts) <= parts else str(Path("...", *tail))
