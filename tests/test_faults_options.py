"""Hostile and degenerate input to the tools' options, zoo files and weight files (issue 14):
every case ends in one ``error:`` line and exit code 2 before any work, no code runs from a data
or weights file, and no name escapes the folder it belongs in."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from committee_tasks.cli.eval import main as eval_main
from committee_tasks.cli.search import main as search_main
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.names import check_name, check_split

RUN = ["--dataset", "digits", "--device", "cpu", "--workers", "0", "--no-progress", "--measure-samples", "0"]
MODELS = ["--models", "digits_cnn_s,digits_cnn_m"]
CASCADE = ["--cascade", "digits_cnn_s,digits_cnn_m"]
BAD_NAMES = ["../../../../X", "/abs", "a/b", "a\\b", "a\x00b", "a\nb", "tab\tname", "..", ".hidden", "-flag",
             "two words", "x" * 201]


def _error(main, argv, capsys) -> str:
    """The one ``error:`` line of a refused command (exit code 2, no traceback)."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# ---- options refused before any work -----------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    ([*CASCADE, "--thresholds", "nan"], "threshold nan is refused: thresholds of max_prob must be in [0, 1]"),
    ([*CASCADE, "--thresholds", "inf"], "threshold inf is refused"),
    ([*CASCADE, "--thresholds", "-0.1"], "threshold -0.1 is refused"),
    ([*CASCADE, "--thresholds", "1.5"], "must be in [0, 1]"),
    ([*CASCADE, "--thresholds", "1.2", "--confidence", "margin"], "thresholds of margin must be in [0, 1]"),
    ([*CASCADE, "--thresholds", "0.5", "--confidence", "neg_entropy"], "thresholds of neg_entropy must be <= 0"),
    ([*CASCADE, "--thresholds", "2", "--confidence", "frac_above_0.9"], "must be in [0, 1]"),
    ([*CASCADE, "--thresholds", "0.5,0.5,0.5"], "needs 1 thresholds"),
    (["--ensemble", "digits_cnn_s,digits_cnn_s"], "--ensemble digits_cnn_s,digits_cnn_s lists 'digits_cnn_s' more "
                                                   "than once"),
    (["--cascade", "digits_cnn_s,digits_cnn_s"], "--cascade digits_cnn_s,digits_cnn_s lists 'digits_cnn_s'"),
    (["--models", "digits_cnn_s,digits_cnn_s"], "--models lists 'digits_cnn_s' more than once"),
    ([*MODELS, *CASCADE, "--levels", "0"], "--levels must be at least 2"),
    ([*MODELS, *CASCADE, "--levels", "1"], "--levels must be at least 2"),
    ([*MODELS, "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    ([*MODELS, "--batch-size", "-1"], "--batch-size must be at least 1, got -1"),
    ([*MODELS, "--workers", "-1"], "--workers must be >= 0"),
    ([*MODELS, "--limit", "0"], "--limit must be at least 1"),
    ([*MODELS, "--threads", "0"], "--threads must be at least 1"),
    ([*MODELS, "--flush-seconds", "nan"], "--flush-seconds must be a finite number >= 0"),
    ([*MODELS, "--measure-rounds", "0"], "--measure-rounds must be at least 1"),
    ([*MODELS, "--later-stages", "gather"], "--later-stages 'gather': choose one of gathered, per-batch"),
    ([*MODELS, "--interval-level", "nan"], "confidence level must be in (0, 1)"),
    ([*MODELS, "--resamples", "0"], "at least 100 resamples"),
    ([*MODELS, "--calibration-fraction", "nan"], "calibration fraction must be in (0, 1)"),
    ([*MODELS, *CASCADE, "--budget", "inf"], "a MACs budget must be a positive finite number"),
    ([*MODELS, *CASCADE, "--budget", "nan"], "a MACs budget must be a positive finite number"),
    ([*MODELS, *CASCADE, "--match", "digits_cnn_m", "--guarantee", "inf,0.1"], "eps must be a finite number"),
    ([*MODELS, "--cache-dir", "/dev/null/cache"], "cannot write the prediction cache in /dev/null/cache"),
    ([*MODELS, "--json", "/dev/null/r.json"], "--json /dev/null/r.json: cannot write in /dev/null"),
    ([*MODELS, "--csv", "/"], "--csv / is a folder: name a file in it"),
    ([*MODELS, "--ensemble", "digits_cnn_s,digits_cnn_m", "--cards", "/dev/null/cards"], "--cards /dev/null/cards: "
                                                                                          "cannot write in"),
    ([*MODELS, "--weights-dir", "/dev/null"], "--weights-dir /dev/null is a file, not a folder"),
    ([*MODELS, "--limit", "20", "--measure-samples", "30"], "--measure-samples 30 is more than the 20 samples "
                                                             "--limit evaluates"),
    ([*MODELS, "--json", "/tmp/same.out", "--csv", "/tmp/same.out"], "--json and --csv both name /tmp/same.out: "
                                                                     "the second would overwrite the first"),
    ([*MODELS, "--shard", "0/2", "--cache-dir", "memory"], "--shard 0/2 with --cache-dir memory: shares meet only "
                                                          "in a cache on disk"),
])
def test_bad_eval_options_exit_2_before_work(argv, message, capsys):
    assert message in _error(eval_main, [*RUN, *argv], capsys)


def test_a_torchrun_job_with_a_memory_cache_is_refused_before_its_ranks_meet(monkeypatch, capsys):
    """Each rank would compute its share and throw it away; rank 0 then said a rank had failed."""
    from committee_tasks.engine import loop

    for name, value in (("WORLD_SIZE", "2"), ("RANK", "0"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "localhost"),
                        ("MASTER_PORT", "29500")):  # what torchrun sets
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(loop, "join", lambda *a: pytest.fail("the ranks met"))
    assert "a torchrun job with --cache-dir memory" in _error(eval_main, [*RUN, *MODELS, "--cache-dir", "memory"],
                                                             capsys)


POOL = ["--pool", "digits_cnn_s,digits_cnn_m", *RUN[:-2]]


@pytest.mark.parametrize("argv, message", [
    (["--alpha", "nan"], "--alpha must be a finite number >= 0"),
    (["--alpha", "inf"], "--alpha must be a finite number >= 0"),
    (["--alpha", "-1"], "--alpha must be a finite number >= 0"),
    (["--front", "0"], "--front must be at least 1, got 0"),
    (["--front", "-1"], "--front must be at least 1"),
    (["--references", "digits_cnn_s,digits_cnn_s"], "--references lists 'digits_cnn_s' more than once"),
    (["--confidence", "max_prob,max_prob"], "--confidence lists 'max_prob' more than once"),
    (["--max-size", "0"], "--max-size must be >= 1"),
    (["--levels", "1"], "--levels >= 2"),
    (["--json", "/dev/null/search.json"], "--json /dev/null/search.json: cannot write in /dev/null"),
])
def test_bad_search_options_exit_2_before_work(argv, message, capsys):
    assert message in _error(search_main, [*POOL, *argv], capsys)


@pytest.mark.parametrize("main, argv", [(eval_main, [*RUN, *MODELS, *CASCADE]), (search_main, POOL)])
def test_a_calibration_fraction_leaving_too_few_samples_is_refused_with_the_count(digits_members, main, argv,
                                                                                  capsys):
    line = _error(main, [*argv, "--calibration-fraction", "0.001"], capsys)
    assert "--calibration-fraction 0.001 leaves 1 of 599 samples for calibration, fewer than 10" in line
    assert "use a fraction between about 0.0167 and 0.983" in line


@pytest.mark.parametrize("content, message", [
    ({"batch_size": "big"}, "key 'batch_size' (--batch-size): 'big' is refused: expected an integer"),
    ({"thresholds": {}}, "key 'thresholds' (--thresholds), item 0: {} is refused"),
    ({"limit": 2.5}, "key 'limit' (--limit): 2.5 is refused: expected an integer"),
    ({"cascade": ["digits_cnn_s,digits_cnn_m"], "thresholds": ["nan"]}, "threshold nan is refused"),
    ({"ensemble": [["digits_cnn_s", "digits_cnn_s"]]}, "lists 'digits_cnn_s' more than once"),
    ({"resamples": 5}, "at least 100 resamples"),
])
def test_config_values_of_the_wrong_type_or_range(tmp_path, content, message, capsys):
    config = tmp_path / "job.json"
    config.write_text(json.dumps({"models": "digits_cnn_s,digits_cnn_m", **content}))
    assert message in _error(eval_main, ["--config", str(config), *RUN], capsys)


def test_thresholds_in_range_pass_the_checks():
    from committee_tasks.api.evaluation import CascadeRequest, EvalRequest

    request = EvalRequest(cascades=[CascadeRequest(("a", "b"), (0.0,)), CascadeRequest(("a", "b", "c"), (1, 0.5))])
    assert [c.thresholds for c in request.cascades] == [(0.0,), (1.0, 0.5)]
    assert EvalRequest(cascades=[CascadeRequest(("a", "b"), (-2.3,))], confidence="neg_entropy")
    with pytest.raises(CommitteeError, match="threshold 'x' is refused"):
        EvalRequest(cascades=[CascadeRequest(("a", "b"), ("x",))])


def test_committees_built_in_python_refuse_a_member_twice():
    from committee_tasks.committees.cards import CardMember, CommitteeCard
    from committee_tasks.committees.scoring import Cascade, Ensemble

    with pytest.raises(CommitteeError, match=r"an ensemble lists 'a' more than once"):
        Ensemble(["a", "a"])
    with pytest.raises(CommitteeError, match=r"a cascade lists 'a' more than once"):
        Cascade(["a", "b", "a"], 0.5)
    members = (CardMember("a", "f" * 16), CardMember("b", "e" * 16))
    with pytest.raises(CommitteeError, match=r"card thresholds \[nan\] hold NaN"):
        CommitteeCard("classification", "cascade", members, (float("nan"),), "max_prob")
    with pytest.raises(CommitteeError, match=r"an ensemble lists 'a' more than once"):
        CommitteeCard("classification", "ensemble", (members[0], members[0]))


# ---- names that become file names ---------------------------------------------------------------
@pytest.mark.parametrize("task", ["classification", "video", "segmentation"])
@pytest.mark.parametrize("name", BAD_NAMES)
def test_zoo_entry_names_that_are_not_plain_file_names_are_refused(tmp_path, task, name, capsys):
    zoo = tmp_path / "zoo.json"
    zoo.write_text(json.dumps({"models": [{"name": name, "builder": "m:f", "num_classes": 3}]}))
    line = _error(eval_main, ["--task", task, "--zoo", str(zoo), "--list-models"], capsys)
    assert f"zoo file {zoo}, model #1: model name {name!r} is refused" in line
    assert "letters, digits and ._+-=" in line


def test_plain_names_and_splits_pass():
    assert check_name("model", "my_net-v1.2+ft=3") == "my_net-v1.2+ft=3"
    assert check_split("val") == "val" and check_split("test-2024") == "test-2024"


@pytest.mark.parametrize("split", ["../../../S", "/etc", "a/b", "a\\b", "", "..", ".", "a\x00b", "val\n"])
def test_splits_that_are_not_one_folder_name_are_refused(tmp_path, split):
    from tasks.video.datasets import load_kinetics

    with pytest.raises(CommitteeError, match="--split .* is refused: a split is one folder name inside --data-root"):
        load_kinetics(tmp_path, split=split)
    with pytest.raises(CommitteeError, match="--split .* is refused"):
        check_split(split)


@pytest.mark.parametrize("dataset", ["cityscapes", "folder"])
def test_segmentation_splits_are_checked(tmp_path, dataset):
    pytest.importorskip("mmseg")
    from committee_tasks import get_task

    with pytest.raises(CommitteeError, match=r"--split '\.\./\.\./S' is refused"):
        get_task("segmentation").build_dataset(dataset, tmp_path, split="../../S")


def test_video_split_escaping_the_data_root_exits_2(tmp_path, capsys):
    line = _error(eval_main, ["--task", "video", "--dataset", "videos", "--data-root", str(tmp_path), "--split",
                              "../../../S", "--models", "x3d_xs", "--device", "cpu", "--no-progress"], capsys)
    assert "--split '../../../S' is refused" in line


# ---- listing runs no code -----------------------------------------------------------------------
def test_listing_a_segmentation_zoo_file_runs_none_of_its_mmseg_config(tmp_path, capsys):
    pytest.importorskip("mmseg")
    marker = tmp_path / "config-ran"
    (tmp_path / "mine.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                      "model = dict(decode_head=dict(num_classes=5))\n")
    zoo = tmp_path / "zoo.json"
    zoo.write_text(json.dumps({"models": [{"name": "mine_seg", "config": "mine.py", "weights": "mine.pth"}]}))
    assert eval_main(["--task", "segmentation", "--zoo", str(zoo), "--list-models", "mine*"]) == 0
    assert "mine_seg" in capsys.readouterr().out
    assert not marker.exists()  # the config is Python: it runs only when the member is built or described
    from committee_tasks.core.registry import get_task

    task = type(get_task("segmentation"))()
    task.add_zoo_file(zoo)
    assert not marker.exists()
    assert task.model_entry("mine_seg").num_classes == 5 and marker.exists()  # used: read from the config


# ---- weight files -------------------------------------------------------------------------------
class _Payload:
    """A pickled object that would run a shell command when unpickled in full."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def bad_checkpoints(tmp_path) -> dict[str, Path]:
    marker = tmp_path / "payload-ran"
    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(256)}, good)
    files = {"malicious": tmp_path / "evil.pth", "truncated": tmp_path / "truncated.pth",
             "random": tmp_path / "random.pth", "empty": tmp_path / "empty.pth"}
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": _Payload(marker)}, files["malicious"])
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["random"].write_bytes(bytes(range(256)) * 8)
    files["empty"].write_bytes(b"")
    files["marker"] = marker
    return files


@pytest.mark.parametrize("kind, message", [
    ("malicious", r"refused to load .*evil.pth: its pickle names the Python global '(posix|nt|os)\.system'"),
    ("truncated", r"cannot load .*truncated.pth: not a readable checkpoint \(RuntimeError: .*\); it may be "
                  r"truncated or corrupt: delete it"),
    ("random", r"cannot load .*random.pth: not a readable checkpoint"),
    ("empty", r"cannot load .*empty.pth: not a readable checkpoint \(EOFError: the file ends early\)"),
])
def test_bad_weight_files_are_named_and_never_advise_weights_only_false(bad_checkpoints, kind, message):
    from committee_tasks.core.checkpoints import read_state_dict
    from committee_tasks.core.members import load_checkpoint
    from tasks.classification.cifar_resnet import load_akamaster_checkpoint

    path = bad_checkpoints[kind]
    for read in (lambda: load_checkpoint(path, "{'state_dict': ...}"), lambda: read_state_dict(path),
                 lambda: load_akamaster_checkpoint(path)):
        with pytest.raises(CommitteeError, match=message) as caught:
            read()
        assert "weights_only=False" not in str(caught.value) and "weights_only` set to `False" not in str(caught.value)
    assert not bad_checkpoints["marker"].exists()


def test_a_malicious_checkpoint_in_a_zoo_file_exits_2_without_running(bad_checkpoints, tmp_path, capsys):
    zoo = tmp_path / "zoo.json"
    zoo.write_text(json.dumps({"models": [{"name": "evil_net", "base": "digits_cnn_s",
                                           "weights": str(bad_checkpoints["malicious"])}]}))
    line = _error(eval_main, [*RUN, "--zoo", str(zoo), "--models", "evil_net", "--limit", "20",
                              "--cache-dir", "memory"], capsys)
    assert "evil.pth" in line and "system" in line and "weights_only=False" not in line
    assert not bad_checkpoints["marker"].exists()


def test_report_output_folder_that_cannot_be_made_exits_2(tmp_path, capsys):
    from committee_tasks.cli.report import main as report_main

    result = tmp_path / "r.json"
    result.write_text("{}")
    assert "--out /dev/null/reports: cannot write in /dev/null " in _error(
        report_main, [str(result), "--out", "/dev/null/reports"], capsys)


@pytest.mark.parametrize("option", ["class_list", "label_file"])
def test_binary_video_class_and_list_files_are_named(tmp_path, option):
    from tasks.video.datasets import load_kinetics

    binary = tmp_path / "names.txt"
    binary.write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(CommitteeError, match=rf"(class|list) file {binary}: cannot read it \('utf-8' codec"):
        load_kinetics(tmp_path, **{option: binary})


def test_ctrl_c_ends_a_tool_with_one_line_and_exit_130(capsys):
    """An 89-line KeyboardInterrupt traceback ended a run; the loop's `finally` has written its work."""
    from committee_tasks.core.errors import run_tool

    def interrupted():
        raise KeyboardInterrupt

    assert run_tool(interrupted) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted (Ctrl-C): every output computed so far is in the cache; the same command resumes"]


def test_rank_0_takes_every_cpu_once_the_other_ranks_are_done(monkeypatch):
    """torchrun's ranks on one machine split its CPUs; after the barrier rank 0 works alone. A
    --threads the user gave stays."""
    import torch

    from committee_tasks.core import threads

    monkeypatch.setattr(threads, "_ranks_done", False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "64")  # more ranks than CPUs: one each
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # the policy's share
        threads.other_ranks_done()
        assert threads.local_ranks() == 1 and torch.get_num_threads() == threads.available_cpus()
        monkeypatch.setattr(threads, "_ranks_done", False)
        torch.set_num_threads(3)  # a --threads 3 of the user's
        threads.other_ranks_done()
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_sigterm_to_the_process_group_stops_a_run_with_workers_cleanly(digits_members, tmp_path):
    """timeout, SLURM and torchrun send SIGTERM to the whole process group: the DataLoader workers
    died of it and the main process printed a worker traceback on its way out. The run exits 143
    with its work written and one line saying so."""
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    cache = tmp_path / "cache"
    job = subprocess.Popen(
        [sys.executable, str(REPO / "tools" / "eval.py"), "--dataset", "digits", "--models",
         "digits_cnn_s,digits_cnn_m,digits_cnn_l", "--workers", "2", "--batch-size", "1", "--flush-seconds", "0",
         "--cache-dir", str(cache), "--no-progress", "--measure-samples", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(cache.rglob("shard-*.npz")) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.poll() is None, "the run ended before it could be stopped: " + job.stderr.read()[-2000:]
    os.killpg(job.pid, signal.SIGTERM)  # the whole group: the tool and its workers
    _, err = job.communicate(timeout=120)
    assert job.returncode == 143, err[-3000:]
    assert "terminated (SIGTERM)" in err and "Traceback" not in err and "killed by signal" not in err, err[-3000:]
    assert list(cache.rglob("shard-*.npz"))  # its work kept
