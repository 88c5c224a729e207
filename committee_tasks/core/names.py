"""Names that become file and folder names: zoo entry names and dataset splits.

A member's name names its cache folder and a split names a folder under the data root, so a name
like ``../../x``, ``/abs`` or one holding a separator or a control character would reach outside
the folder it belongs in. These checks refuse such names where they are read, with the rule.
"""
from __future__ import annotations

import re

from committee_tasks.core.errors import CommitteeError

NAME_CHARACTERS = "letters, digits and ._+-= (not starting with '.' or '-', no '..')"
_NAME = re.compile(r"[A-Za-z0-9_+=][A-Za-z0-9._+=-]*")  # no separators, spaces, NUL or control characters
MAX_LENGTH = 200  # file names stay well under the usual 255-byte limit


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
