"""The sha256 of many data files (an image folder), remembered so each file is read once, not on
every run: what lets a dataset's fingerprint cover the content of its files cheaply.

Kept in ``<cache home>/file-hashes.json`` beside the weight-hash memo (`weight_hashes`), keyed by
the file's absolute path and its stamp: size, mtime, ctime and inode. The ctime is what catches a
file overwritten with same-size content whose mtime was then restored (``os.utime`` or ``cp -p``
set the mtime, nothing but the kernel sets the ctime); a new inode catches a file replaced by
another. One read and at most one write of the index per call, however many files: a folder of
50,000 images does not rewrite the index 50,000 times. The index is only a memo: a corrupt or
unwritable one is ignored (and rewritten when possible), never an error.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Sequence

from committee_tasks.core.files import atomic_write, cache_home

log = logging.getLogger(__name__)

INDEX_NAME = "file-hashes.json"
FORMAT_VERSION = 1


def index_path() -> Path:
    return cache_home() / INDEX_NAME


def _stamp(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def read_index(path: Path, kind: str = "file-hash", warn: bool = True) -> dict:
    """The ``files`` map of a hash index (this one, or `weight_hashes`'), or {} when it is missing,
    unreadable or of another format: it is only a memo, rewritten on the next remembered hash.
    ``warn``: say so (not when re-read just before rewriting it: said once)."""
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        if warn:
            log.warning("ignoring the unreadable %s index %s (%s); it will be rewritten", kind, path, err)
        return {}
    files = index.get("files") if isinstance(index, dict) and index.get("format") == FORMAT_VERSION else None
    if not isinstance(files, dict):
        if warn:
            log.warning("ignoring the %s index %s: not in format %d; it will be rewritten", kind, path, FORMAT_VERSION)
        return {}
    return files


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remembered_sha256s(paths: Sequence[str | os.PathLike]) -> list[str | None]:
    """The sha256 of each file of ``paths``, in order: remembered ones from the index, the others
    computed (and remembered, in one write); None for a file that cannot be read (its reader says
    why when it tries)."""
    index_file = index_path()
    known = read_index(index_file)
    digests, new = [], {}
    for p in paths:
        name = os.path.abspath(p)  # symlinks kept as named: the stamp is of the file they point to
        try:
            stamp = _stamp(name)
            record = known.get(name)
            if isinstance(record, list) and len(record) == 2 and record[0] == stamp and isinstance(record[1], str):
                digests.append(record[1])
                continue
            digest = _sha256(name)
            if _stamp(name) == stamp:  # not rewritten while it was read
                new[name] = [stamp, digest]
        except OSError:  # unreadable now: not remembered, so read again next time
            digest = None
        digests.append(digest)
    if new:
        if len(new) > 1000:
            log.info("hashed %d data files (remembered in %s: next time only changed files are read)",
                     len(new), index_file)
        files = {k: v for k, v in read_index(index_file, warn=False).items() if os.path.exists(k)}  # re-read
        files.update(new)
        try:
            index = {"format": FORMAT_VERSION, "files": files}
            atomic_write(index_file, lambda f: f.write(json.dumps(index, separators=(",", ":")).encode()))
        except OSError as err:  # a read-only home: hash again next time
            log.info("could not write the file-hash index %s (%s)", index_file, err)
    return digests
