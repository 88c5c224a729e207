"""Every result file says where it came from; readers refuse schema versions they do not know."""
from __future__ import annotations

import copy
import csv
import json

import pytest

from committee_tasks import CommitteeError
from committee_tasks.cli.eval import main as eval_main
from committee_tasks.core.provenance import SCHEMA_VERSION, check_schema, git_commit, provenance
from committee_tasks.cli.report import main as report_main
from committee_tasks.cli.search import main as search_main
from tests.conftest import REPO

DIGITS = ["--dataset", "digits", "--workers", "0", "--no-progress"]
POOL = "digits_cnn_s,digits_cnn_m,digits_cnn_l"


def _check_provenance(prov: dict, members: list[str]) -> None:
    assert prov["schema_version"] == SCHEMA_VERSION
    assert prov["toolkit"]["name"] == "committee-tasks" and prov["toolkit"]["version"]
    git = prov["toolkit"]["git"]
    if (REPO / ".git").exists():  # in a checkout: the commit it ran
        assert len(git["commit"]) == 40 and isinstance(git["modified"], bool)
    for lib in ("torch", "torchvision", "numpy"):
        assert prov["libraries"][lib]
    assert "pytorchvideo" in prov["libraries"] and "mmsegmentation" in prov["libraries"]  # None when absent
    assert prov["device"] == "cpu" and prov["name"]
    assert prov["threads"]["torch"] >= 1 and prov["threads"]["omp_wait_policy"]
    assert prov["date"].endswith("+00:00") and prov["python"]
    assert prov["command"]
    fingerprints = prov["fingerprints"]
    assert fingerprints["dataset"]["name"] == "digits-test" and len(fingerprints["dataset"]["fingerprint"]) == 64
    assert set(fingerprints["members"]) == set(members)
    assert all(len(fp) == 64 for fp in fingerprints["members"].values())
    # what the figures depend on, resolved: the cached dtype sets where a threshold's confidences round
    settings = prov["settings"]
    assert (settings["output_dtype"], settings["amp"], settings["batch_size"], settings["limit"]) == (
        "float16", "auto", 128, None)
    assert settings["calibration"]["fraction"] == 0.5 and "sha256('committee-tasks/calibration/'" in \
        settings["calibration"]["rule"]


@pytest.fixture(scope="module")
def results(digits_members, tmp_path_factory):
    out = tmp_path_factory.mktemp("provenance")
    assert eval_main([*DIGITS, "--cascade", "digits_cnn_s,digits_cnn_l", "--thresholds", "0.9",
                      "--measure-samples", "64", "--measure-rounds", "2", "--json", str(out / "eval.json"),
                      "--csv", str(out / "eval.csv"), "--markdown", str(out / "eval.md")]) == 0
    assert search_main([*DIGITS, "--pool", POOL, "--json", str(out / "search.json")]) == 0
    return out


def test_eval_results_carry_provenance(results):
    report = json.loads((results / "eval.json").read_text())
    assert report["schema_version"] == SCHEMA_VERSION
    _check_provenance(report["provenance"], ["digits_cnn_s", "digits_cnn_l"])
    assert "--thresholds" in report["provenance"]["command"]
    with open(results / "eval.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["schema_version"] for r in rows} == {str(SCHEMA_VERSION)}
    cascade = rows[-1]
    assert cascade["dataset_fingerprint"] == report["provenance"]["fingerprints"]["dataset"]["fingerprint"]
    assert cascade["member_fingerprints"].count("=") == 2 and "torch=" in cascade["libraries"]
    assert cascade["date"] and cascade["device"] == "cpu" and cascade["command"]
    assert f"schema {SCHEMA_VERSION}" in (results / "eval.md").read_text()


def test_eval_config_is_recorded(digits_members, tmp_path):
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"dataset": "digits", "models": ["digits_cnn_s"]}))
    out = tmp_path / "r.json"
    assert eval_main(["--config", str(config), "--workers", "0", "--no-progress", "--measure-samples", "0",
                      "--json", str(out)]) == 0
    prov = json.loads(out.read_text())["provenance"]
    assert prov["config"] == {"path": str(config), "content": {"dataset": "digits", "models": ["digits_cnn_s"]}}


def test_search_and_report_carry_provenance(results, tmp_path):
    search = json.loads((results / "search.json").read_text())
    assert search["schema_version"] == SCHEMA_VERSION
    _check_provenance(search["provenance"], POOL.split(","))
    out = tmp_path / "report"
    assert report_main([str(results / "search.json"), "--out", str(out)]) == 0
    tables = json.loads((out / "committees.json").read_text())
    assert tables["schema_version"] == SCHEMA_VERSION and tables["provenance"]["schema_version"] == SCHEMA_VERSION
    assert tables["blocks"][0]["provenance"] == search["provenance"]  # the search's own, carried over
    with open(out / "committees.csv") as f:
        row = next(csv.DictReader(f))
    assert row["git_commit"] == (search["provenance"]["toolkit"]["git"] or {}).get("commit", "") + (
        "+modified" if (search["provenance"]["toolkit"]["git"] or {}).get("modified") else "")
    assert row["dataset_fingerprint"] == search["provenance"]["fingerprints"]["dataset"]["fingerprint"]
    for name, marker in (("committees.md", "<!-- committee-tasks"), ("committees.tex", "% committee-tasks")):
        assert marker in (out / name).read_text()
    from PIL import Image

    with Image.open(out / "classification-digits-test.png") as png:  # the figure's text chunks
        assert png.text["Source"].startswith(f"committee-tasks {search['provenance']['toolkit']['version']}")
        assert f"schema {SCHEMA_VERSION}" in png.text["Source"]


@pytest.mark.parametrize("version, message", [
    (None, "no schema_version: written by an older committee-tasks"),
    (1, "schema version 1, but this committee-tasks"),
    (99, "schema version 99, but this committee-tasks"),
])
def test_report_refuses_other_schema_versions(results, tmp_path, capsys, version, message):
    result = json.loads((results / "search.json").read_text())
    if version is None:
        del result["schema_version"]
    else:
        result["schema_version"] = version
    bad = tmp_path / "old.json"
    bad.write_text(json.dumps(result))
    assert report_main([str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and message in err and "rerun tools/search.py --json" in err
    assert not (tmp_path / "out").exists()  # nothing written


def test_check_schema_and_git_outside_a_checkout(tmp_path):
    check_schema({"schema_version": SCHEMA_VERSION}, "x.json")
    with pytest.raises(CommitteeError, match="x.json: no schema_version"):
        check_schema([1, 2], "x.json")
    assert git_commit(tmp_path) is None  # not a checkout: no commit, no error
    prov = provenance("cpu", fingerprints={"dataset": {"name": "d", "fingerprint": "f"}}, argv=["tool", "--x", "a b"])
    assert prov["command"] == "tool --x 'a b'" and prov["fingerprints"]["dataset"]["name"] == "d"
    assert copy.deepcopy(prov) == json.loads(json.dumps(prov))  # plain JSON


def test_a_modified_checkout_records_the_hash_of_its_difference(tmp_path):
    """"modified" alone cannot tell two runs of one modified tree from runs of two."""
    import shutil
    import subprocess

    if shutil.which("git") is None:
        pytest.skip("git is not installed")

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "code.py")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    clean = git_commit(tmp_path)
    assert clean["modified"] is False and "diff_sha256" not in clean
    hashes = []
    for text in ("x = 2\n", "x = 3\n", "x = 2\n"):
        (tmp_path / "code.py").write_text(text)
        info = git_commit(tmp_path)
        assert info["commit"] == clean["commit"] and info["modified"] is True
        hashes.append(info["diff_sha256"])
    assert hashes[0] == hashes[2] != hashes[1] and len(hashes[0]) == 64
