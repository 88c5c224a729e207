"""``--config FILE`` for every command (as timm's train.py does it): the file's keys are the
command's own options, so anything the command line can say a config can say, and a flag on the
command line overrides the file.

A key is an option's dest name (``batch_size``) or its flag without dashes (``batch-size``);
positional arguments go by their dest name (``results``); keys starting with ``_`` are comments.
An unknown key or a value the option would refuse is an error naming the key, the file and what
is expected, before anything runs: a config never does less than it says. Relative paths (values
of options typed as paths, and of dataset options of kind path) are relative to the config file's
folder. A dataset's options may be a mapping: ``"data_option": {"ignore_index": 11}``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from committee_tasks.cli.config_values import Setting, convert, resolve_paths
from committee_tasks.core.errors import CommitteeError, unknown_name

CONFIG_FLAG = "--config"
CONFIG_HELP = ("JSON or YAML (.yaml/.yml) file of option values, keyed by option name (batch_size or "
               "batch-size; keys starting with _ are comments); command-line flags override it")
_YAML_SUFFIXES = (".yaml", ".yml")
_NOT_OPTIONS = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
# Options that add to what is there: a config value is kept only when the command line gives none
# (a flag replaces the file's list instead of extending it).
_ACCUMULATING = (argparse._AppendAction, argparse._CountAction, argparse._AppendConstAction)


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` with the values of ``--config FILE`` as defaults (``--config`` is
    added to ``parser`` if it lacks it). The namespace gets ``config_data``: ``{"path", "content"}``
    of the file, or None. Raises `CommitteeError` on a bad config. ``parser`` keeps the config's values
    as its defaults (and options the config gives are no longer required): build one per parse."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config_action = _config_action(parser)
    path = _config_path(parser, config_action, argv)
    later: dict[str, Any] = {}
    config_data = None
    if path is not None:
        content = read_config(path)
        later = _set_defaults(parser, config_settings(parser, content, path, config_action))
        config_data = {"path": str(path), "content": content}
    args = parser.parse_args(argv)
    for dest, value in later.items():
        if getattr(args, dest, None) is None:  # not given on the command line
            setattr(args, dest, value)
    args.config_data = config_data
    return args


def _config_action(parser: argparse.ArgumentParser) -> argparse.Action:
    for action in parser._actions:
        if CONFIG_FLAG in action.option_strings:
            return action
    return parser.add_argument(CONFIG_FLAG, type=Path, metavar="FILE", help=CONFIG_HELP)


class _PreParseError(Exception):
    pass


class _PreParser(argparse.ArgumentParser):
    def error(self, message: str):  # the full parse reports it, with the command's own usage
        raise _PreParseError(message)


def _config_path(parser: argparse.ArgumentParser, config_action: argparse.Action,
                 argv: list[str]) -> Path | None:
    """``--config FILE`` of the command line, found before the full parse (which needs its values)."""
    pre = _PreParser(add_help=False, allow_abbrev=parser.allow_abbrev, prefix_chars=parser.prefix_chars)
    pre.add_argument(*config_action.option_strings, dest="config")
    try:
        known, _ = pre.parse_known_args(argv)
    except _PreParseError:
        return None
    return None if known.config is None else Path(known.config)


def read_config(path: Path) -> dict[str, Any]:
    """The file's top-level mapping: YAML by its suffix (.yaml, .yml), JSON otherwise."""
    from committee_tasks.core.files import parse_json, read_text

    text = read_text(path, "config")
    if path.suffix.lower() in _YAML_SUFFIXES:
        import yaml  # only for YAML configs: --help stays fast

        try:
            content = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise CommitteeError(f"config {path}: not valid YAML ({err})") from None
    else:
        content = parse_json(text, f"config {path}", "name a YAML file .yaml or .yml")
    if not isinstance(content, dict):
        raise CommitteeError(f"config {path}: expected a mapping of option names to values at the top level, "
                             f"got {type(content).__name__}")
    return content


def option_keys(parser: argparse.ArgumentParser, skip: argparse.Action | None = None) -> dict[str, argparse.Action]:
    """Every key a config may use, to the option it sets: dest names and long flags without dashes."""
    keys: dict[str, argparse.Action] = {}
    for action in parser._actions:
        if action is skip or isinstance(action, _NOT_OPTIONS) or action.dest == argparse.SUPPRESS:
            continue
        keys[action.dest] = action
        for flag in action.option_strings:
            if len(flag) > 2 and flag[0] == flag[1] and flag[0] in parser.prefix_chars:
                keys[flag[2:]] = action
    return keys


def config_settings(parser: argparse.ArgumentParser, content: dict[str, Any], path: Path,
                    config_action: argparse.Action) -> dict[str, tuple[argparse.Action, Any]]:
    """dest -> (option, converted value) for every key of a config; every key is checked first."""
    keys = option_keys(parser, skip=config_action)
    source = f"config {path}"
    settings = {}
    for key in content:
        if not isinstance(key, str):
            raise CommitteeError(f"{source}: key {key!r} is not a string; keys are option names")
        if key.startswith("_"):  # a comment
            continue
        if key == config_action.dest:
            raise CommitteeError(f"{source}: a config cannot name another one ({key!r}); merge the two files")
        if key not in keys:
            raise _unknown_key(key, {a.dest for a in keys.values()}, source, parser.prog)
        settings[key] = Setting(key, keys[key], source)
    folder = path.absolute().parent
    converted: dict[str, tuple[argparse.Action, Any]] = {}
    spelled: dict[str, str] = {}
    for key, setting in settings.items():
        dest = setting.action.dest
        if dest in spelled:
            raise CommitteeError(f"{source}: keys {spelled[dest]!r} and {key!r} both set {dest!r}; keep one")
        spelled[dest] = key
        converted[dest] = (setting.action, resolve_paths(convert(setting, content[key]), folder))
    return converted


def _unknown_key(key: str, dests: set[str], source: str, prog: str) -> CommitteeError:
    return unknown_name("config key", key, dests,
                        fix=f"(in {source}; keys are the options of `{prog} --help`, as batch_size or batch-size; "
                            "keys starting with _ are comments)")


def _set_defaults(parser: argparse.ArgumentParser, settings: dict[str, tuple[argparse.Action, Any]]) -> dict[str, Any]:
    """The config's values as the parser's defaults; returns those to fill in after the parse
    (options that accumulate, which a default would make the command line extend)."""
    defaults, later = {}, {}
    for dest, (action, value) in settings.items():
        if isinstance(action, _ACCUMULATING):
            defaults[dest], later[dest] = None, value
        else:
            defaults[dest] = value
        action.required = False  # a required option the config gives is given
    parser.set_defaults(**defaults)
    return later
