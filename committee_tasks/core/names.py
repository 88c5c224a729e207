"""Names that become file and folder names: zoo entry names and dataset splits (refused unless
safe), and the prediction cache's task, dataset and member folders (encoded into safe names).

A member's name names its cache folder and a split names a folder under the data root, so a name
like ``../../x``, ``/abs`` or one holding a separator or a control character would reach outside
the folder it belongs in. These checks refuse such names where they are read, with the rule;
`path_component` encodes a name that is not refused into one folder name of the same characters.
"""
from __future__ import annotations

import re

from committee_tasks.core.errors import CommitteeError

NAME_CHARACTERS = "letters, digits and ._+-= (not starting with '.' or '-', no '..')"
_NAME = re.compile(r"[A-Za-z0-9_+=][A-Za-z0-9._+=-]*")  # no separators, spaces, NUL or control characters
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]")  # what `path_component` replaces
MAX_LENGTH = 200  # file names stay well under the usual 255-byte limit


def path_component(name: str) -> str:
    """``name`` as one safe folder name, where a name is not refused but encoded (the prediction
    cache's task, dataset and member folders): characters other than letters, digits and ``._+=-``
    (separators, NUL, spaces...) become ``_``, so does a leading dot (no ``.``, ``..`` or hidden
    names), at most `MAX_LENGTH` characters. Valid names pass unchanged (existing caches keep
    their folders); two names that encode alike are kept apart by the fingerprint suffix."""
    safe = _UNSAFE.sub("_", str(name))[:MAX_LENGTH]
    return ("_" + safe[1:] if safe.startswith(".") else safe) or "_"


def check_name(kind: str, name: object, where: str = "") -> str:
    """``name`` if it is safe as a file name (see `NAME_CHARACTERS`), else a `CommitteeError`
    naming ``where`` it was read (e.g. ``"zoo file F"``), the ``kind`` of name and the rule."""
    if isinstance(name, str) and len(name) <= MAX_LENGTH and _NAME.fullmatch(name) and ".." not in name:
        return name
    place = f"{where}: " if where else ""
    raise CommitteeError(f"{place}{kind} name {name!r} is refused: it becomes a file name, so it may hold only "
                         f"{NAME_CHARACTERS}, at most {MAX_LENGTH} characters; rename it")


def check_split(split: str) -> str:
    """``split`` if it is one folder name (no separators, ``..``, absolute paths or empty), else a
    `CommitteeError`: a split is looked up as a folder under the data root and must stay inside it."""
    if isinstance(split, str) and len(split) <= MAX_LENGTH and _NAME.fullmatch(split) and ".." not in split:
        return split
    raise CommitteeError(f"--split {split!r} is refused: a split is one folder name inside --data-root (e.g. val, "
                         f"test), of {NAME_CHARACTERS}; no '/', '\\' or spaces")
