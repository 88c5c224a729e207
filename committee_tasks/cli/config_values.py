"""One config-file value converted the way the command line would convert it, by the option's own
argparse action (``type=``, ``choices``, ``nargs``, store_true, append), or a `CommitteeError`
naming the key, the file, the value and what the option expects.

Values are turned into the text the command line would carry and then given to ``type=``: a JSON
``2.5`` for an ``int`` option fails as ``--levels 2.5`` would, instead of being truncated to 2.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from typing import Any

from committee_tasks.core.dataset_options import OptionValue, key_value
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.files import resolve_in

# What an option's value must look like, by its type= callable (others: their own error message).
_EXPECTED = {None: "a string", str: "a string", int: "an integer", float: "a number", Path: "a path"}
_YAML_HINT = " (YAML reads unquoted on/off/yes/no as booleans: quote the value)"
_SWITCHES = (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)


@dataclass(frozen=True)
class Setting:
    """A config key, the option it sets and where it came from (for error messages)."""

    key: str
    action: argparse.Action
    source: str  # "config FILE"
    item: int | None = None  # which occurrence of a repeatable option


    def error(self, value: Any, expected: str, hint: str = "") -> CommitteeError:
        return self.refused(value, f"expected {expected}{hint}")

    def refused(self, value: Any, why: str) -> CommitteeError:
        flag = f" ({self.action.option_strings[0]})" if self.action.option_strings else " (positional)"
        item = "" if self.item is None else f", item {self.item}"
        return CommitteeError(f"{self.source}, key {self.key!r}{flag}{item}: {value!r} is refused: {why}")


def convert(setting: Setting, value: Any) -> Any:
    """The value ``setting``'s option gets from a config file, as the command line would set it."""
    action = setting.action
    if isinstance(action, _SWITCHES):
        return _switch(setting, value)
    if isinstance(action, argparse._StoreConstAction):  # store_const: true gives the constant
        return action.const if _boolean(setting, value) else action.default
    if isinstance(action, argparse._CountAction):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise setting.error(value, "a count (an integer >= 0)")
        return value
    if isinstance(action, argparse._ExtendAction):
        return _occurrence(setting, value)
    if isinstance(value, dict) and action.type is key_value:  # {"ignore_index": 11}: KEY=VALUE occurrences
        return [OptionValue(str(k), v) for k, v in value.items()]
    if isinstance(action, argparse._AppendAction):  # repeatable: a list, one item per occurrence
        items = value if isinstance(value, list) else [value]
        return [_occurrence(replace(setting, item=i), item) for i, item in enumerate(items)]
    if isinstance(action, argparse._StoreAction):
        return None if value is None else _occurrence(setting, value)
    raise CommitteeError(f"{setting.source}, key {setting.key!r}: {type(action).__name__} options cannot be set "
                         "from a config file; pass it on the command line")


def _boolean(setting: Setting, value: Any) -> bool:
    if not isinstance(value, bool):
        raise setting.error(value, "true or false (a JSON or YAML boolean)")
    return value


def _switch(setting: Setting, value: Any) -> bool:
    """store_true/store_false/--x/--no-x: keyed by the option's dest, the boolean is the dest's
    value; keyed by a flag's spelling ("no-progress"), it says whether that flag is given."""
    given = _boolean(setting, value)
    action = setting.action
    if setting.key == action.dest:
        return given
    if isinstance(action, argparse.BooleanOptionalAction):
        flag_sets = not setting.key.startswith("no-")
    else:
        flag_sets = bool(action.const)
    return flag_sets if given else not flag_sets


def _occurrence(setting: Setting, value: Any) -> Any:
    """What one occurrence of the option on the command line would give, by its nargs."""
    nargs = setting.action.nargs
    if nargs is None:
        return _scalar(setting, value)
    if nargs == argparse.OPTIONAL:  # --list-models [PATTERN]: true is the flag without a value
        return setting.action.const if value is True else _scalar(setting, value)
    if not isinstance(value, list):
        if nargs not in (argparse.ZERO_OR_MORE, argparse.ONE_OR_MORE, 1):
            raise setting.error(value, f"a list of {nargs} values")
        value = [value]
    if (nargs == argparse.ONE_OR_MORE and not value) or (isinstance(nargs, int) and len(value) != nargs):
        raise setting.error(value, "at least one value" if nargs == argparse.ONE_OR_MORE else f"{nargs} values")
    return [_scalar(setting, item) for item in value]


def _scalar(setting: Setting, value: Any) -> Any:
    """One argument string's worth, through type= and choices. A list is accepted where type= parses
    a comma-separated list itself (``["a", "b"]`` is ``"a,b"``)."""
    if isinstance(value, bool):
        raise setting.error(value, _expected(setting.action), _YAML_HINT)
    if isinstance(value, list):
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            raise setting.error(value, _expected(setting.action))
        converted = _typed(setting, value, ",".join(str(v) for v in value))
        if not isinstance(converted, (list, tuple)):
            raise setting.error(value, f"a single value ({_expected(setting.action)}), not a list")
        return converted
    if not isinstance(value, (str, int, float)):
        raise setting.error(value, _expected(setting.action))
    converted = _typed(setting, value, str(value))
    choices = setting.action.choices
    if choices is not None and converted not in choices:
        raise setting.error(value, _expected(setting.action))
    return converted


def _typed(setting: Setting, value: Any, text: str) -> Any:
    convert_text = setting.action.type
    if convert_text is None:
        return text
    try:
        return convert_text(text)
    except argparse.ArgumentTypeError as err:  # the CLI's own parsers say what they expect
        raise setting.refused(value, str(err)) from None
    except (TypeError, ValueError):
        raise setting.error(value, _expected(setting.action)) from None


def _expected(action: argparse.Action) -> str:
    if action.choices is not None:
        return "one of " + ", ".join(repr(c) for c in action.choices)
    if action.type in _EXPECTED:
        return _EXPECTED[action.type]
    name = getattr(action.type, "__name__", repr(action.type))
    metavar = f" {action.metavar}" if isinstance(action.metavar, str) else ""
    return f"a value {name}() accepts{metavar}"


def resolve_paths(value: Any, folder: Path) -> Any:
    """Relative paths (values of options typed as paths) taken as relative to ``folder``; a
    dataset option's value is typed later, by its task, so it keeps the folder to start from."""
    if isinstance(value, list):
        return [resolve_paths(v, folder) for v in value]
    if isinstance(value, OptionValue):
        return replace(value, folder=folder)
    if isinstance(value, PurePath):
        return resolve_in(folder, value)
    return value
