"""`--config FILE` (committee_tasks/cli/config.py) and the `committee` command (cli/main.py): a
config refuses what it does not read, converts values as the command line would, and the
command line overrides it; `committee --help` stays fast and loads no torch."""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from committee_tasks.cli import main as committee
from committee_tasks.cli.config import parse_args
from committee_tasks.core.errors import CommitteeError

REPO = Path(__file__).resolve().parents[1]
DIGITS_CONFIG = REPO / "configs" / "committees" / "digits_default.json"


def _names(text: str) -> list[str]:  # a comma-list type= like the tools' own
    if not text.strip(","):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return text.split(",")


def small_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tool")
    p.add_argument("files", nargs="*", type=Path)
    p.add_argument("--pool", type=_names, required=True)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--rate", type=float, default=0.5)
    p.add_argument("--amp", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--keep", dest="keep", action="store_false")
    p.add_argument("--ensemble", type=_names, action="append", default=[])
    p.add_argument("--size", nargs=2, type=int)
    p.add_argument("--data-root", type=Path)
    return p


def write(path: Path, content: dict) -> Path:
    path.write_text(json.dumps(content))
    return path


def parse(tmp_path: Path, content: dict, *argv: str, parser=None) -> argparse.Namespace:
    config = write(tmp_path / "run.json", content)
    return parse_args(parser or small_parser(), ["--config", str(config), *argv])


def eval_parser() -> argparse.ArgumentParser:
    from committee_tasks.cli.eval import build_parser

    return build_parser()


def test_unknown_key_names_the_key_the_file_and_the_closest_option(tmp_path):
    with pytest.raises(CommitteeError) as err:
        parse(tmp_path, {"dataset": "digits", "modles": ["digits_cnn_s"]}, parser=eval_parser())
    message = str(err.value)
    assert "'modles'" in message and "did you mean 'models'" in message and str(tmp_path / "run.json") in message
    with pytest.raises(CommitteeError, match="'batch-sise'.*'batch_size'"):
        parse(tmp_path, {"batch-sise": 8, "pool": "a"})


@pytest.mark.parametrize("key, value, expected", [
    ("batch_size", "seven", "'seven' is refused: expected an integer"),
    ("levels", 2.5, "2.5 is refused: expected an integer"),  # never truncated to 2
    ("temperature", "yes", "'yes' is refused: expected true or false"),
    ("amp", "fast", "'fast' is refused: expected one of 'auto', 'on', 'off'"),
    ("amp", True, "YAML reads unquoted on/off"),  # `amp: on` in YAML is a boolean
    ("thresholds", [[0.9, 0.8], ["0.9", "high"]], "item 1: ['0.9', 'high'] is refused: expected comma-separated"),
    ("models", {"a": 1}, "{'a': 1} is refused: expected"),
    ("shard", "3/2", "'3/2' is refused: a share is I/N with 0 <= I < N"),  # said with the file, not at run time
    ("shard", 5, "5 is refused: expected I/N"),
])
def test_values_are_checked_by_the_options_own_type_and_choices(tmp_path, key, value, expected):
    with pytest.raises(CommitteeError) as err:
        parse(tmp_path, {key: value}, parser=eval_parser())
    message = str(err.value)
    assert expected in message and f"key {key!r}" in message
    assert str(tmp_path / "run.json") in message


def test_the_command_line_overrides_the_file(tmp_path):
    content = {"pool": "a,b", "batch-size": 7, "amp": "off", "ensemble": [["a", "b"]]}
    from_file = parse(tmp_path, content)
    assert (from_file.pool, from_file.batch_size, from_file.amp, from_file.ensemble) == (
        ["a", "b"], 7, "off", [["a", "b"]])
    overridden = parse(tmp_path, content, "--batch-size", "8", "--ensemble", "c,d", "--pool", "x")
    # a repeatable flag replaces the file's list instead of extending it
    assert (overridden.pool, overridden.batch_size, overridden.amp, overridden.ensemble) == (
        ["x"], 8, "off", [["c", "d"]])


def test_a_config_files_share_is_turned_off_on_the_command_line(tmp_path):
    content = {"dataset": "digits", "models": "digits_cnn_s", "shard": "0/2"}
    assert parse(tmp_path, content, parser=eval_parser()).shard == "0/2"
    assert parse(tmp_path, content, "--shard", "none", parser=eval_parser()).shard is None


def test_lists_repeatable_options_and_nargs(tmp_path):
    args = parse(tmp_path, {"pool": ["a", "b"], "ensemble": [["a", "b"], "c,d"], "size": [3, 4]})
    assert args.pool == ["a", "b"] and args.ensemble == [["a", "b"], ["c", "d"]] and args.size == [3, 4]
    with pytest.raises(CommitteeError, match="2 values"):
        parse(tmp_path, {"pool": "a", "size": [3]})
    with pytest.raises(CommitteeError, match="not a list"):
        parse(tmp_path, {"pool": "a", "amp": ["on", "off"]})
    with pytest.raises(CommitteeError, match="expected an integer"):
        parse(tmp_path, {"pool": "a", "batch_size": [1, 2]})


def test_switches_take_booleans_by_dest_or_by_flag(tmp_path):
    assert parse(tmp_path, {"pool": "a", "no-progress": True}).no_progress is True
    assert parse(tmp_path, {"pool": "a", "no_progress": False}, "--no-progress").no_progress is True
    assert parse(tmp_path, {"pool": "a", "keep": False}).keep is False  # by dest: its value
    assert parse(tmp_path, {"pool": "a"}).keep is True
    with pytest.raises(CommitteeError, match="'no_progress' and 'no-progress' both set"):
        parse(tmp_path, {"pool": "a", "no_progress": True, "no-progress": True})


def test_yaml_and_json_give_the_same_options(tmp_path):
    content = {"pool": ["a", "b"], "rate": 0.25, "amp": "on", "ensemble": [["a", "b"]], "no-progress": True}
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("pool: [a, b]\nrate: 0.25\namp: 'on'\nensemble:\n  - [a, b]\nno-progress: true\n")
    from_yaml = parse_args(small_parser(), ["--config", str(yaml_file)])
    from_json = parse(tmp_path, content)
    assert vars(from_yaml) | {"config": None, "config_data": None} == vars(from_json) | {"config": None,
                                                                                        "config_data": None}
    assert from_yaml.amp == "on" and from_yaml.rate == 0.25


def test_relative_paths_are_relative_to_the_config_folder(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    args = parse(folder, {"pool": "a", "data_root": "../data", "files": ["r.json", "/abs/s.json"]})
    assert args.data_root == tmp_path / "data" and args.files == [folder / "r.json", Path("/abs/s.json")]
    on_command_line = parse(folder, {"pool": "a", "data_root": "../data"}, "--data-root", "here", "x.json")
    assert on_command_line.data_root == Path("here") and on_command_line.files == [Path("x.json")]


def test_comments_provenance_and_no_config(tmp_path):
    content = {"_comment": "why this run", "pool": "a"}
    args = parse(tmp_path, content)
    assert args.config_data == {"path": str(tmp_path / "run.json"), "content": content}
    assert parse_args(small_parser(), ["--pool", "a"]).config_data is None


@pytest.mark.parametrize("name, text, expected", [
    ("run.json", "{", "not valid JSON"), ("run.json", "[1]", "mapping"), ("run.yml", "- a\n", "mapping"),
    ("run.yaml", "a: [", "not valid YAML"), ("missing.json", None, "no such file"),
])
def test_unreadable_configs_name_the_file(tmp_path, name, text, expected):
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(CommitteeError, match=expected) as err:
        parse_args(small_parser(), ["--config", str(tmp_path / name)])
    assert str(tmp_path / name) in str(err.value)


def test_the_default_config_sets_the_eval_options():
    args = parse_args(eval_parser(), ["--config", str(DIGITS_CONFIG)])
    members = ["digits_cnn_s", "digits_cnn_m", "digits_cnn_l"]
    assert (args.task, args.dataset, args.models) == ("classification", "digits", members)
    assert args.ensemble == [members] and args.cascade == [members] and args.thresholds == [[0.95, 0.95]]


def test_search_and_report_take_required_options_and_positionals_from_a_config(tmp_path):
    from committee_tasks.cli import report, search

    args = parse(tmp_path, {"pool": "a,b", "levels": 10}, parser=search.build_parser())
    assert args.pool == ["a", "b"] and args.levels == 10
    args = parse(tmp_path, {"results": ["s.json"], "out": "reports", "names": True}, parser=report.build_parser())
    assert args.results == [tmp_path / "s.json"] and args.out == tmp_path / "reports" and args.names is True
    with pytest.raises(CommitteeError, match="'formts'.*'formats'"):
        parse(tmp_path, {"formts": "md"}, parser=report.build_parser())


def _timed(*argv: str) -> tuple[float, subprocess.CompletedProcess]:
    """The faster of two runs: a loaded machine slows one, not the command."""
    runs = []
    for _ in range(2):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "committee_tasks.cli.main", *argv], capture_output=True,
                              text=True, cwd=REPO)
        runs.append((time.perf_counter() - start, done))
    return min(runs, key=lambda r: r[0])


@pytest.mark.parametrize("argv, shown", [(["--help"], "report"), (["eval", "--help"], "--config")])
def test_committee_help_is_fast(argv, shown):
    seconds, done = _timed(*argv)
    assert done.returncode == 0, done.stderr
    assert shown in done.stdout and seconds < 2.0


def _heavy_modules_after(code: str) -> list[str]:
    probe = code + "\nimport sys; print(','.join(m for m in ('torch', 'scipy') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    return [m for m in done.stdout.strip().split(",") if m]


def test_committee_help_imports_neither_torch_nor_scipy():
    assert _heavy_modules_after("from committee_tasks.cli import main; main.build_parser()") == []


def test_the_tools_parsers_import_neither_torch_nor_scipy():
    # needs cli/eval.py, search.py and report.py to import their heavy modules inside run()
    code = "from committee_tasks.cli import eval, search, report\nfor m in (eval, search, report): m.build_parser()"
    assert _heavy_modules_after(code) == []


def test_committee_dispatches_to_the_chosen_tool_only(monkeypatch):
    calls = []
    fake = types.SimpleNamespace(main=lambda argv, prog: calls.append((argv, prog)) or 3)
    monkeypatch.setitem(sys.modules, "fake_tool", fake)
    monkeypatch.setitem(committee.COMMANDS, "fake", ("fake_tool", "a tool"))
    assert committee.main(["fake", "--config", "x.yaml", "r.json"]) == 3
    assert calls == [(["--config", "x.yaml", "r.json"], "committee fake")]  # usage and provenance say so
    with pytest.raises(SystemExit) as exit_:
        committee.main(["evl"])
    assert exit_.value.code == 2


def test_the_committee_console_script_is_registered():
    scripts = importlib.metadata.entry_points(group="console_scripts", name="committee")
    assert [s.value for s in scripts] == ["committee_tasks.cli.main:main"]
