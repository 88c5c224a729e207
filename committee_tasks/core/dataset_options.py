"""Options of a task's datasets (``--data-option KEY=VALUE``): declared by the task for each
dataset (`Task.DATASET_OPTIONS`), read here from what a user wrote (command-line text, a config
file's value, a Python value) into typed values, or refused with the valid keys or the expected
kind. Imports nothing heavy: ``--list-datasets`` prints the declarations.

Kinds: ``path``, ``int``, ``float``, ``str``, ``bool``, ``names`` (a comma list, a list, or a file
of one name per line or JSON) and ``json`` (inline JSON or a ``.json`` file).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Mapping, Sequence

from committee_tasks.core.errors import CommitteeError, unknown_name
from committee_tasks.core.files import parse_json, read_text, resolve_in

# kind -> (how --list-datasets spells its value, what an error says is expected)
KINDS = {
    "path": ("PATH", "a path"),
    "int": ("INT", "an integer"),
    "float": ("NUMBER", "a number"),
    "str": ("TEXT", "a string"),
    "bool": ("BOOL", "true or false"),
    "names": ("NAMES", "names: a comma-separated list (a,b,c), a list in a config, or a file of one name per "
                       "line (or a JSON list, or {name: index})"),
    "json": ("JSON", "JSON: inline ('[...]' or '{...}'), a list or mapping in a config, or a .json file"),
}
_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


@dataclass(frozen=True)
class DatasetOption:
    """One option a dataset takes: its key, what it means, its kind (see `KINDS`) and its default
    (None: unset; the dataset decides what that means)."""

    name: str
    help: str
    kind: str = "str"
    default: Any = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise CommitteeError(f"dataset option {self.name!r}: unknown kind {self.kind!r}; valid: {list(KINDS)}")

    def describe(self) -> str:
        """``ignore_index=INT (default 255): ...``, as ``--list-datasets`` prints it."""
        default = "" if self.default is None else f" (default {_spell(self.default)})"
        return f"{self.name}={KINDS[self.kind][0]}{default}: {self.help}"


def _spell(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


@dataclass(frozen=True)
class OptionValue:
    """One ``KEY=VALUE`` as the user wrote it, and the folder its relative paths start from (a
    config file's folder; None: the working directory)."""

    key: str
    value: Any
    folder: Path | None = None


def key_value(text: str) -> OptionValue:
    """``--data-option``'s argparse type: ``KEY=VALUE`` (the value may itself hold ``=``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. ignore_index=11), got {text!r}")
    return OptionValue(key.strip(), value)


def parse_dataset_options(dataset: str, declared: Sequence[DatasetOption], values: Mapping[str, Any],
                          flag: str = "--data-option", fix: str = "", root: str | Path | None = None) -> dict[str, Any]:
    """Every declared option of ``dataset``, typed: the value given in ``values`` (key -> text, a
    Python value, or an `OptionValue`) or the default. An unknown key names the valid ones; a bad
    value names the kind expected. A relative file path that is not found from the working
    directory (or the config's folder) is taken from ``root`` (``--data-root``) where it is there."""
    by_name = {o.name: o for o in declared}
    for key in values:
        if key not in by_name:
            if not by_name:
                raise CommitteeError(f"dataset {dataset!r} takes no options, got {flag} {key}=...")
            raise unknown_name(f"{flag} key", key, by_name,
                               fix=f"(dataset {dataset!r} takes {', '.join(by_name)}){' ' + fix if fix else ''}")
    typed = {o.name: o.default for o in declared}
    for key, value in values.items():
        folder = None
        if isinstance(value, OptionValue):
            value, folder = value.value, value.folder
        typed[key] = parse_value(by_name[key], value, folder, f"dataset {dataset!r}, {flag} {key}", root)
    return typed


def parse_value(option: DatasetOption, value: Any, folder: Path | None, where: str,
                root: str | Path | None = None) -> Any:
    """``value`` as ``option``'s kind; relative paths start from ``folder`` (None: as they are),
    else from ``root`` where the file is there."""
    if value is None:
        return option.default
    try:
        parse = _PARSERS[option.kind]
        return parse(value, folder, root) if option.kind in _FILE_KINDS else parse(value, folder)
    except (TypeError, ValueError):
        raise CommitteeError(f"{where}: {value!r} is refused: expected {KINDS[option.kind][1]}") from None


def _path(value: Any, folder: Path | None, root: str | Path | None = None) -> Path:
    if isinstance(value, bool) or not isinstance(value, (str, PurePath)) or not str(value).strip():
        raise TypeError(value)
    path = Path(value).expanduser() if folder is None else resolve_in(folder, value)
    in_root = None if root is None or Path(value).expanduser().is_absolute() else Path(root).expanduser() / value
    return in_root if not path.exists() and in_root is not None and in_root.exists() else path


def _int(value: Any, folder: Path | None) -> int:
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(value)
    return int(value)  # a str such as "2.5" raises ValueError


def _float(value: Any, folder: Path | None) -> float:
    if isinstance(value, bool):
        raise TypeError(value)
    return float(value)


def _str(value: Any, folder: Path | None) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(value)
    return str(value)


def _bool(value: Any, folder: Path | None) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(value)


def _names(value: Any, folder: Path | None, root: str | Path | None = None) -> tuple[str, ...]:
    """A list, a comma-separated text, or else the path of a file of names."""
    if isinstance(value, (list, tuple)):
        names = [str(v).strip() for v in value if not isinstance(v, (bool, dict, list))]
        if len(names) != len(value):
            raise TypeError(value)
    elif isinstance(value, str) and "," in value:
        names = [n.strip() for n in value.split(",")]
    else:
        return tuple(read_names(_path(value, folder, root)))
    names = [n for n in names if n]
    if not names:
        raise ValueError(value)
    return tuple(names)


def _json(value: Any, folder: Path | None, root: str | Path | None = None) -> Any:
    if isinstance(value, (list, dict)):
        return value
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        return parse_json(value, f"inline JSON {value!r}")
    path = _path(value, folder, root)
    return parse_json(read_text(path, "JSON file"), f"JSON file {path}")


_FILE_KINDS = ("path", "names", "json")  # may name a file: looked for in --data-root too
_PARSERS = {"path": _path, "int": _int, "float": _float, "str": _str, "bool": _bool, "names": _names, "json": _json}


def read_names(path: Path) -> list[str]:
    """Names in index order from a file: a JSON list or ``{name: index}``, or one name per line
    (blank lines left out; names may hold spaces)."""
    text = read_text(path, "file of names", "give the names as a comma-separated list (a,b,c) or a file")
    if path.suffix.lower() != ".json":
        names = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        content = parse_json(text, f"file of names {path}")
        names = _names_of_json(content, path)
    if not names:
        raise CommitteeError(f"file of names {path} holds no names")
    return names


def _names_of_json(content: Any, path: Path) -> list[str]:
    if isinstance(content, list) and all(isinstance(n, str) for n in content):
        return list(content)
    if isinstance(content, dict):
        names: list[str | None] = [None] * len(content)
        for name, index in content.items():
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(names) \
                    or names[index] is not None:
                raise CommitteeError(f"file of names {path}: index {index!r} of {name!r} is not a unique index in "
                                     f"0..{len(names) - 1}")
            names[index] = name
        return names  # type: ignore[return-value]
    raise CommitteeError(f"file of names {path}: expected a JSON list of names or {{name: index}}")
