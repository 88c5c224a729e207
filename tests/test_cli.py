"""tools/eval.py end to end on the embedded default (real handwritten digits) and its errors."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from committee_tasks.cli.eval import main
from tests.conftest import REPO, read_strict_json

CONFIG = REPO / "configs" / "committees" / "digits_default.json"


def test_main_job_config(digits_members, tmp_path, capsys):
    out_json, out_csv, out_md = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.md"
    code = main(["--config", str(CONFIG), "--workers", "0", "--no-progress", "--measure-samples", "128",
                 "--json", str(out_json), "--csv", str(out_csv), "--markdown", str(out_md)])
    assert code == 0
    printed = capsys.readouterr().out
    report = read_strict_json(out_json)
    rows = {r["name"]: r for r in report["rows"]}
    assert report["samples"] == 599 and report["dataset"] == "digits-test"
    assert [r["kind"] for r in report["rows"]] == ["member"] * 3 + ["ensemble", "cascade"]
    cascade = report["rows"][-1]
    assert cascade["name"] in printed and "exits per stage" in printed
    assert sum(cascade["exit_fractions"]) == pytest.approx(1)
    assert cascade["reference"] == "digits_cnn_l"  # the member with most MACs
    reference = rows["digits_cnn_l"]
    assert cascade["speedup_macs"] == pytest.approx(reference["macs_mean"] / cascade["macs_mean"])
    assert cascade["macs_worst"] == pytest.approx(sum(rows[m]["macs_mean"] for m in cascade["members"]))
    for r in report["rows"]:  # measured in 5 interleaved rounds; implausible figures are flagged, not shown
        m = r["measurement"]
        assert m["throughput"]["rounds"] == 5 and len(m["throughput_rounds"]) == 5
        assert m["throughput"]["q1"] <= m["throughput"]["median"] <= m["throughput"]["q3"]
        assert (r["throughput"] == m["throughput"]["median"]) != bool(r.get("measurement_flag"))
        lo, hi = r["metric_ci"]  # 95% paired bootstrap intervals
        assert lo <= r["metric"] <= hi and hi - lo < 5
        assert r["delta_ci"][0] <= r["delta_metric"] <= r["delta_ci"][1]
    assert reference["delta_ci"] == [0.0, 0.0] and reference["measurement"]["speedup"]["median"] == 1.0
    assert "| digits_cnn_l | member | " in printed and " | reference | " in printed
    assert report["interval"]["confidence"] == 0.95 and report["measurement"]["rounds"] == 5
    assert report["measurement"]["later_stages"] == "gathered"
    assert "later stages run on rows gathered across batches into full batches" in report["note"]
    # members get more accurate with size: the default is a real committee problem
    assert rows["digits_cnn_s"]["metric"] < rows["digits_cnn_m"]["metric"] < reference["metric"]
    with open(out_csv) as f:
        assert [r["name"] for r in csv.DictReader(f)] == [r["name"] for r in report["rows"]]
    markdown = out_md.read_text()  # what the table is of, and the note, as printed (the table alone hid the split)
    assert markdown.startswith("**classification on digits-test: 599 samples**\n\n| model / committee |")
    assert report["note"] in markdown and "<!-- committee-tasks" in markdown


def test_later_stages_per_batch_is_measured_and_said(digits_members, tmp_path):
    out = tmp_path / "r.json"
    assert main(["--dataset", "digits", "--cascade", "digits_cnn_s,digits_cnn_l", "--thresholds", "0.9", "--workers",
                 "0", "--no-progress", "--measure-samples", "256", "--measure-rounds", "1", "--later-stages",
                 "per-batch", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["measurement"]["later_stages"] == "per-batch"
    assert "later stages run on each batch's remaining rows (--later-stages per-batch)" in report["note"]
    assert report["rows"][-1]["kind"] == "cascade" and report["rows"][-1]["measurement"]["throughput"]["median"] > 0


def test_a_cascades_confidence_and_combine_rule_are_said(digits_members, tmp_path, capsys):
    """A cascade's name gives members and thresholds only: a margin cascade's row read as max_prob's."""
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    assert main(["--dataset", "digits", "--cascade", "digits_cnn_s,digits_cnn_l", "--thresholds", "0.5", "--workers",
                 "0", "--no-progress", "--measure-samples", "0", "--confidence", "margin", "--cascade-combine", "last",
                 "--json", str(out), "--markdown", str(md)]) == 0
    row = json.loads(out.read_text())["rows"][-1]
    assert (row["kind"], row["confidence"], row["combine"]) == ("cascade", "margin", "last")
    line = (f"{row['name']}: exits on confidence margin; a stage predicts with its last member alone")
    assert f"  {line}" in capsys.readouterr().out and f"- {line}" in md.read_text()
    assert main(["--dataset", "digits", "--cascade", "digits_cnn_s,digits_cnn_l", "--thresholds", "0.5", "--workers",
                 "0", "--no-progress", "--measure-samples", "0"]) == 0
    assert "exits on confidence" not in capsys.readouterr().out  # the defaults go without saying


def test_flags_override_config_and_limit(digits_members, tmp_path):
    out = tmp_path / "r.json"
    assert main(["--config", str(CONFIG), "--models", "digits_cnn_s", "--cascade", "digits_cnn_s,digits_cnn_m",
                 "--thresholds", "0.5", "--limit", "50", "--workers", "0", "--no-progress",
                 "--measure-samples", "0", "--json", str(out), "--reference", "digits_cnn_m"]) == 0
    report = json.loads(out.read_text())
    assert report["samples"] == 50
    # each flag replaces its own key of the config: the config's ensemble stays, its cascade goes
    assert [r["name"] for r in report["rows"]] == [
        "digits_cnn_s", "digits_cnn_m", "digits_cnn_l", "ensemble(digits_cnn_s+digits_cnn_m+digits_cnn_l)",
        "cascade(digits_cnn_s>digits_cnn_m)@0.5"]
    assert all(r["throughput"] is None for r in report["rows"])  # --measure-samples 0: not measured
    assert "throughput not measured" in report["note"]


def test_cascade_without_thresholds_is_fitted_to_match_its_last_member(digits_members, tmp_path):
    out = tmp_path / "fit.json"
    assert main(["--dataset", "digits", "--cascade", "digits_cnn_s,digits_cnn_m", "--workers", "0", "--no-progress",
                 "--measure-samples", "0", "--json", str(out)]) == 0
    fitted = [r for r in json.loads(out.read_text())["rows"] if r["kind"] == "cascade"]
    assert len(fitted) == 1 and fitted[0]["fit"] == "match digits_cnn_m"


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "digits", "--cascade", "digits_cnn_s,digits_cnn_x", "--thresholds", "0.9"],
     "unknown model 'digits_cnn_x'; did you mean 'digits_cnn_s', "),
    (["--dataset", "digit", "--models", "digits_cnn_s"], "unknown dataset 'digit'; did you mean 'digits'"),
    (["--task", "clasification", "--list-models"], "unknown task 'clasification'; did you mean 'classification'"),
    (["--dataset", "digits"], "nothing to evaluate"),
    (["--dataset", "digits", "--cascade", "digits_cnn_s,digits_cnn_l", "--guarantee", "1,0.1", "--reference",
      "digits_cnn_l", "--temperature"], "--guarantee needs members fixed before"),
    (["--dataset", "cifar10", "--data-root", "/x", "--ensemble", "resnet20,resnet50"],
     "members predict different numbers of classes ({'resnet20': 10, 'resnet50': 1000})"),
    (["--dataset", "digits", "--models", "resnet20", "--weights-dir", "/nonexistent"],
     "Put the file 'resnet20-12fca82f.th' in"),
    (["--dataset", "cifar10", "--data-root", "/nonexistent", "--models", "resnet20"], "no CIFAR-10 test set under"),
])
def test_bad_input_exits_2_with_clear_message(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--measure-samples", "600"], "--measure-samples 600 is more than the 599 samples evaluated: pass at most 599"),
    (["--measure-samples", "400", "--cascade", "digits_cnn_s,digits_cnn_l", "--match", "digits_cnn_l"],
     "--measure-samples 400 is more than the 285 samples evaluated (the evaluation split)"),
    (["--measure-samples", "-1"], "--measure-samples must be >= 0"),
    (["--measure-rounds", "0"], "--measure-rounds must be at least 1, got 0"),
    (["--interval-level", "95"], "confidence level must be in (0, 1), got 95.0"),
    (["--resamples", "5"], "a bootstrap needs at least 100 resamples, got 5"),
    (["--threads", "0"], "--threads must be at least 1, got 0"),
    (["--workers", "-1"], "--workers must be >= 0 (0: decode in the main process), got -1"),
])
def test_bad_measurement_and_interval_options(digits_members, argv, message, capsys):
    """Each refused with the bad value and the fix; the evaluation already done stays cached."""
    assert main(["--dataset", "digits", "--models", "digits_cnn_s", "--workers", "0", "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err


def test_listing(capsys):
    assert main(["--list-tasks"]) == 0
    assert "classification" in capsys.readouterr().out.split()
    assert main(["--task", "classification", "--list-models", "resnet*"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"resnet20", "resnet56", "resnet50", "resnet50.imagenet1k_v1"} <= set(listed)
    assert main(["--task", "classification", "--list-models", "resnet"]) == 1  # the whole name: none is 'resnet'
    assert "no classification model matches 'resnet' (a shell wildcard on the whole name): try '*resnet*'" in (
        capsys.readouterr().err)
    assert main(["--list-datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines if not line.startswith(" ")] == ["cifar10", "imagenet", "digits",
                                                                               "folder", "csv"]
    # each dataset with what it is, then its options indented under it
    assert lines[lines.index(next(x for x in lines if x.startswith("csv "))) + 1].startswith(
        "    --data-option file=PATH: the CSV file")
    assert not any("ImageNet" in line for line in lines if line.startswith(("folder ", "csv ")))


def test_tools_eval_script_runs():
    done = subprocess.run([sys.executable, str(REPO / "tools" / "eval.py"), "--list-tasks"],
                          capture_output=True, text=True, check=True)
    assert "classification" in done.stdout


def test_main_job_writes_tables_and_plot(main_job):
    """README command 1 after the install: eval, search and report on the embedded default."""
    out, stdout = main_job
    for name in ("eval.json", "eval.csv", "search.json", "committees.md", "committees.tex", "committees.csv",
                 "committees.json", "classification-digits-test.png"):
        assert (out / name).stat().st_size > 0, name
    assert "similar accuracy" in stdout and "| cascade(" in stdout


def test_console_command_equals_the_tool(digits_members, tmp_path):
    """`committee eval ...` and `tools/eval.py ...` are the same command (README examples work with both)."""
    from committee_tasks.cli.main import main as committee

    argv = ["--config", str(CONFIG), "--workers", "0", "--no-progress", "--measure-samples", "0"]
    assert main([*argv, "--json", str(tmp_path / "tool.json")]) == 0
    assert committee(["eval", *argv, "--json", str(tmp_path / "console.json")]) == 0
    tool, console = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("tool", "console"))
    assert tool["rows"] == console["rows"] and tool["samples"] == console["samples"] == 599
    assert console["provenance"]["command"].startswith("'committee eval' --config")


def test_cards_written_by_eval_are_evaluated_again(digits_members, tmp_path, capsys, caplog):
    base = ["--dataset", "digits", "--workers", "0", "--no-progress", "--measure-samples", "0"]
    assert main([*base, "--cascade", "digits_cnn_s,digits_cnn_m", "--json", str(tmp_path / "fit.json"),
                 "--cards", str(tmp_path / "cards")]) == 0
    fitted = next(r for r in json.loads((tmp_path / "fit.json").read_text())["rows"] if r["kind"] == "cascade")
    cards = sorted((tmp_path / "cards").glob("*.json"))
    assert len(cards) == 1 and json.loads(cards[0].read_text())["figures"]["fit"] == "match digits_cnn_m"
    assert main([*base, "--committee", str(cards[0]), "--json", str(tmp_path / "card.json")]) == 0
    again = next(r for r in json.loads((tmp_path / "card.json").read_text())["rows"] if r["kind"] == "cascade")
    # the card scores on all 599 digits; its thresholds are the fitted ones to the last bit
    assert again["thresholds"] == fitted["thresholds"] and again["name"] == fitted["name"]
    assert f"card {fitted['name']} was fitted on 314 samples of this dataset, which are scored here too" in caplog.text


def test_eval_cards_keep_the_measured_speed(digits_members, tmp_path):
    """A card kept the MACs speedup only, where eval had measured the real one with its spread."""
    assert main(["--dataset", "digits", "--workers", "0", "--no-progress", "--cascade", "digits_cnn_s,digits_cnn_l",
                 "--thresholds", "0.9", "--measure-samples", "128", "--measure-rounds", "2", "--json",
                 str(tmp_path / "r.json"), "--cards", str(tmp_path / "cards")]) == 0
    row = next(r for r in json.loads((tmp_path / "r.json").read_text())["rows"] if r["kind"] == "cascade")
    (card,) = (tmp_path / "cards").glob("*.json")
    figures = read_strict_json(card)["figures"]
    assert figures["measurement"] == row["measurement"] and len(figures["measurement"]["throughput_rounds"]) == 2
    assert figures.get("speedup_measured") == row["speedup_measured"]


def test_a_card_chosen_with_temperatures_is_evaluated_with_them(digits_members, tmp_path, capsys):
    """eval --temperature --cards wrote a card that eval --committee refused; it is now scored
    with its temperatures, as the committee module runs it (load_committee)."""
    from committee_tasks import load_committee

    base = ["--dataset", "digits", "--workers", "0", "--no-progress", "--measure-samples", "0"]
    assert main([*base, "--cascade", "digits_cnn_s,digits_cnn_m", "--temperature",
                 "--cards", str(tmp_path / "cards")]) == 0
    (card,) = (tmp_path / "cards").glob("*.json")
    temperatures = json.loads(card.read_text())["members"][0]["temperature"]
    assert temperatures != 1.0
    assert main([*base, "--committee", str(card), "--json", str(tmp_path / "card.json")]) == 0
    report = json.loads((tmp_path / "card.json").read_text())
    row = next(r for r in report["rows"] if r["kind"] == "cascade")
    assert report["temperatures"]["digits_cnn_s"] == temperatures
    # the module with the card's temperatures gives these exits on the same 599 digits
    from committee_tasks.core.registry import get_task
    from committee_tasks.engine.inputs import preprocessed_batches

    task = get_task("classification")
    dataset = task.build_dataset("digits", None, split="test")
    module = load_committee(card, device="cpu")
    (batch,) = preprocessed_batches(dataset, module.members, dataset.ids, 599, 599)
    exits = module(batch).exit_stage.numpy()
    assert row["exit_fractions"] == pytest.approx([(exits == 0).mean(), (exits == 1).mean()])
    capsys.readouterr()
    assert main([*base, "--committee", str(card), "--temperature"]) == 2
    assert "--temperature with card(s) chosen with their own temperatures" in capsys.readouterr().err


def test_a_card_whose_member_changed_is_refused(digits_members, tmp_path, capsys):
    base = ["--dataset", "digits", "--workers", "0", "--no-progress", "--measure-samples", "0"]
    assert main([*base, "--ensemble", "digits_cnn_s,digits_cnn_m", "--cards", str(tmp_path)]) == 0
    card = next(tmp_path.glob("ensemble*.json"))
    data = json.loads(card.read_text())
    data["members"][0]["fingerprint"] = "0" * 64
    card.write_text(json.dumps(data))
    capsys.readouterr()
    fresh = tmp_path / "fresh-cache"
    assert main([*base, "--committee", str(card), "--cache-dir", str(fresh)]) == 2
    assert "member 'digits_cnn_s' has fingerprint" in capsys.readouterr().err
    assert not list(fresh.rglob("shard-*.npz"))  # refused before the evaluation pass, not after it


def test_a_cascade_from_the_command_line_does_not_take_the_configs_thresholds(capsys):
    assert main(["--config", str(CONFIG), "--cascade", "digits_cnn_s,digits_cnn_m"]) == 2
    assert "pass --thresholds for these cascades too" in capsys.readouterr().err


def test_cards_with_no_committee_to_write_says_so(digits_members, tmp_path, capsys):
    assert main(["--dataset", "digits", "--models", "digits_cnn_s", "--workers", "0", "--no-progress",
                 "--measure-samples", "0", "--cards", str(tmp_path / "cards")]) == 0
    assert "no committee to write a card of" in capsys.readouterr().out


def test_measure_samples_beyond_the_evaluation_split_is_refused_before_the_pass(digits_members, tmp_path, capsys):
    """The split is by sample id, so its size is known once the dataset is listed: the refusal came
    after every member had been evaluated."""
    fresh = tmp_path / "cache"
    assert main(["--dataset", "digits", "--cascade", "digits_cnn_s,digits_cnn_l", "--match", "digits_cnn_l",
                 "--measure-samples", "400", "--workers", "0", "--no-progress", "--cache-dir", str(fresh)]) == 2
    assert "--measure-samples 400 is more than the 285 samples evaluated (the evaluation split)" in (
        capsys.readouterr().err)
    assert not list(fresh.rglob("shard-*.npz"))


def test_every_missing_weight_file_is_named_at_once(capsys):
    """Offline, a pool of five torchvision models named one missing file per run: five rounds."""
    assert main(["--dataset", "digits", "--models", "resnet20,resnet32", "--weights-dir", "/nonexistent",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "the weights of 2 models are missing" in err
    assert "'resnet20-12fca82f.th'" in err and "'resnet32-d509ac18.th'" in err


def test_the_cache_variable_set_to_memory_writes_nothing(digits_members, tmp_path, monkeypatch, capsys):
    """COMMITTEE_TASKS_CACHE=memory made a folder named 'memory' in the working directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMMITTEE_TASKS_CACHE", "memory")
    assert main(["--dataset", "digits", "--models", "digits_cnn_s", "--workers", "0", "--no-progress",
                 "--measure-samples", "0"]) == 0
    assert not (tmp_path / "memory").exists()
    assert main(["--dataset", "digits", "--models", "digits_cnn_s", "--shard", "0/2", "--no-progress"]) == 2
    assert "with --cache-dir memory" in capsys.readouterr().err
