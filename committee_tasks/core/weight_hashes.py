"""The sha256 of weight files, remembered so a weight file is hashed once, not on every run.

Kept in ``<cache home>/weight-hashes.json`` (see ``files.cache_home``), keyed by the file's
absolute path, size and mtime: a file rewritten in place gets a new mtime and is hashed again.
The index is only a memo: a corrupt or unwritable one is ignored (and rewritten when possible),
never an error; concurrent writers each replace it whole, so the worst case is one more hash.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

from committee_tasks.core.file_hashes import FORMAT_VERSION, read_index
from committee_tasks.core.files import atomic_write_json, cache_home

log = logging.getLogger(__name__)

INDEX_NAME = "weight-hashes.json"


def index_path() -> Path:
    return cache_home() / INDEX_NAME


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_index(path: Path, warn: bool = True) -> dict[str, dict]:
    """The remembered files, or {} when the index is missing or unreadable."""
    return read_index(path, "weight-hash", warn)


def _remember(name: str, record: dict) -> None:
    path = index_path()
    files = _read_index(path, warn=False)  # re-read: another process may have added files meanwhile
    files = {k: v for k, v in files.items() if os.path.exists(k)}  # forget deleted files
    files[name] = record
    try:
        atomic_write_json(path, {"format": FORMAT_VERSION, "files": files})
    except OSError as err:  # a read-only home: hash again next time
        log.info("could not write the weight-hash index %s (%s)", path, err)


def remembered_sha256(path: str | os.PathLike, compute: Callable[[Path], str]) -> str:
    """``compute(path)`` (the file's sha256), or what it returned before for this very file."""
    path = Path(path).resolve()
    stamp = _stamp(path)
    known = _read_index(index_path()).get(str(path))
    if (isinstance(known, dict) and isinstance(known.get("sha256"), str)
            and all(known.get(k) == v for k, v in stamp.items())):
        return known["sha256"]
    digest = compute(path)
    if _stamp(path) == stamp:  # not rewritten while it was read
        _remember(str(path), {**stamp, "sha256": digest})
    return digest
