"""tools/search.py end to end, greedy construction for large pools, and its errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from committee_tasks import CommitteeError, PoolPredictions, Single
from committee_tasks.search.greedy import greedy_cascade
from committee_tasks.cli.search import main
from committee_tasks.core.units import format_macs
from tests.conftest import REPO, read_strict_json
from tests.test_committees import random_pool

DIGITS = ["digits_cnn_s", "digits_cnn_m", "digits_cnn_l"]
COMMON = ["--dataset", "digits", "--workers", "0", "--no-progress"]


def test_search_on_digits_writes_the_report_schema(digits_members, tmp_path, capsys):
    from committee_tasks import Pool, load_committee
    from committee_tasks.api.options import ExecutionOptions
    from committee_tasks_builtin.classification.datasets import DigitsDataset

    out, cards = tmp_path / "search.json", tmp_path / "cards"
    assert main(["--pool", ",".join(DIGITS), *COMMON, "--confidence", "max_prob,margin", "--temperature",
                 "--json", str(out), "--cards", str(cards)]) == 0
    printed = capsys.readouterr().out
    report = read_strict_json(out)
    assert report["task"] == "classification" and report["metric_name"] == "top-1"
    assert report["split"]["calibration"] + report["split"]["evaluation"] == 599
    assert [m["name"] for m in report["members"]] == DIGITS
    ensembles = [p for p in report["points"] if p["kind"] == "ensemble"]
    assert len(ensembles) == 4  # every subset of 2 or 3 of the 3 members
    assert any(p["pareto"] for p in report["points"])
    by_name = {p["name"]: p for p in report["points"]}
    largest = next(r for r in report["references"] if r["reference"] == "digits_cnn_l")
    match = largest["similar_accuracy"]
    assert match is not None and match["name"] in by_name
    # fitted on calibration: at least the reference's calibration metric, fewer MACs
    assert match["metric"]["calibration"] >= largest["metric"]["calibration"] - 1e-9
    assert match["speedup"] == pytest.approx(largest["macs_mean"] / match["macs_mean"]["evaluation"])
    assert match["speedup"] > 1
    cost = largest["similar_cost"]
    assert cost["macs_mean"]["calibration"] <= largest["macs_mean"] * 1.05
    assert len(report["comparison"]) == 4  # two confidences, with and without temperature
    # a committee chosen for several references: its card names them all (it named the first alone)
    chosen = {}
    for entry in report["references"]:
        for key in ("similar_accuracy", "similar_cost"):
            if entry[key]:
                chosen.setdefault(entry[key]["name"], []).append(f"{key.replace('_', ' ')} to {entry['reference']}")
    twice = next(name for name, what in chosen.items() if len(what) > 1)
    figures = next(c.card.figures for c in map(load_committee, cards.glob("*.json")) if c.card.qualified_name == twice)
    assert [figures["chosen_for"], *figures["also_chosen_for"]] == chosen[twice]
    assert "Pareto front" in printed and "speedup at similar top-1" in printed
    # the committee at similar cost with its MACs on both splits (the budget holds on calibration)
    c = cost["macs_mean"]
    assert "| Δ | MACs | similar accuracy: committee |" in printed and \
        f"| {format_macs(c['calibration'])} / {format_macs(c['evaluation'])} |" in printed
    # each variant names its committees, prints its temperatures and writes their cards, which run
    # as the variant scored them (they had no name, no temperatures and no card)
    tempered = report["comparison"][3]
    assert (tempered["confidence"], tempered["temperature"]) == ("margin", True) and tempered["temperatures"]
    pick = tempered["picks"]["similar_accuracy"]
    assert f"similar top-1: {pick['name']}" in printed and "temperatures: digits_cnn_s" in printed
    card = load_committee(cards / f"{pick['name'].replace('(', '_').replace(')', '').replace('>', '-').replace('@', '_')}"
                                  "_margin_tempered.json").card
    assert card.confidence == "margin" and card.temperatures == {m: tempered["temperatures"][m] for m in card.member_names}
    pool = Pool.evaluate(DIGITS, DigitsDataset(), options=ExecutionOptions(cache_dir=None, progress=False))
    scored = pool.split(0.5)[1].tempered(card.temperatures).score(card.committee())
    assert (scored.metric, scored.macs_mean) == (pick["metric"]["evaluation"], pick["macs_mean"]["evaluation"])
    from committee_tasks.reporting.search_tables import build_tables, to_markdown

    markdown = to_markdown(build_tables([report]))  # tools/report.py's: the variants, not the first one alone
    assert "Confidence variants of" in markdown and f"| margin + temperature | {tempered['speedup']:.2f}x | " \
        f"{pick['name']} |" in markdown


def test_worst_case_keeps_committees_within_the_reference(digits_members, tmp_path):
    out = tmp_path / "search.json"
    assert main(["--pool", ",".join(DIGITS), *COMMON, "--worst-case", "--json", str(out)]) == 0
    report = read_strict_json(out)
    members = {m["name"]: m for m in report["members"]}
    for ref in report["references"]:
        for key in ("similar_accuracy", "similar_cost"):
            if ref[key]:
                point = next(p for p in report["points"] if p["name"] == ref[key]["name"])
                assert point["macs_worst"] <= members[ref["reference"]]["macs_worst"] * (1 + 1e-9)


@pytest.mark.parametrize("argv, message", [
    (["--pool", "digits_cnn_s,digits_cnn_m", "--references", "digits_cnn_l"], "references ['digits_cnn_l'] are not in the pool"),
    (["--pool", "digits_cnn_s,digits_cnn_s"], "listed twice"),
    (["--pool", "digits_cnn_s,digits_cnn_m", "--calibration-fraction", "1.5"], "calibration fraction must be in (0, 1)"),
    (["--pool", "digits_cnn_s,digits_cnn_m", "--confidence", "maxprob"], "unknown confidence 'maxprob'"),
])
def test_bad_search_input(digits_members, argv, message, capsys):
    assert main([*argv, *COMMON]) == 2
    assert message in capsys.readouterr().err


def test_empty_split_is_an_error(digits_members, capsys):
    assert main(["--pool", "digits_cnn_s,digits_cnn_m", *COMMON, "--limit", "1"]) == 2
    assert "split of 1 samples is empty" in capsys.readouterr().err


def test_members_with_mismatched_sample_ids_are_refused():
    pool = random_pool(0, n=20)
    arrays = {m: {"ids": pool.ids, "targets": pool.targets, "outputs": pool.outputs[m], "macs": pool.macs[m]}
              for m in pool.outputs}
    arrays["b"] = dict(arrays["b"], ids=pool.ids[::-1])
    with pytest.raises(CommitteeError, match="members 'a' and 'b' cover different samples"):
        PoolPredictions.from_members(arrays)


def test_greedy_cascade_on_a_large_pool(classification):
    names = [f"m{i:02d}" for i in range(12)]
    pool = random_pool(3, n=600, c=5, members=names)
    reference = names[-1]
    cascade = greedy_cascade(pool, classification, names, reference, alpha=0.0, levels=10)
    assert cascade.members[-1] == reference and len(cascade.members) >= 2
    assert len(cascade.thresholds) == len(cascade.members) - 1
    result = cascade.evaluate(pool, classification)
    ref = Single(reference).evaluate(pool, classification)
    assert result.macs_mean < ref.macs_worst + sum(pool.macs[m].mean() for m in cascade.members[:-1])
    assert result.exit_fractions[0] > 0  # the first stage does let samples out
    with pytest.raises(CommitteeError, match="not in the pool"):
        greedy_cascade(pool, classification, names[:3], reference)
    last = greedy_cascade(pool, classification, names, reference, alpha=0.0, levels=10, combine="last")
    assert last.combine == "last"  # built, and so scored, as the report and cards say


def test_greedy_builds_the_combine_rule_it_reports(digits_members, tmp_path):
    """--greedy --cascade-combine last built mean-combined cascades while the report and cards said
    last: a card scored 93.23 where the report said 93.78."""
    from committee_tasks import load_committee

    out, cards = tmp_path / "search.json", tmp_path / "cards"
    assert main(["--pool", ",".join(DIGITS), *COMMON, "--greedy", "--cascade-combine", "last", "--json", str(out),
                 "--cards", str(cards)]) == 0
    report = read_strict_json(out)
    cascades = [p for p in report["points"] if p["kind"] == "cascade"]
    assert cascades and report["combine"] == "last"
    from committee_tasks import Pool
    from committee_tasks.api.options import ExecutionOptions
    from committee_tasks_builtin.classification.datasets import DigitsDataset

    evaluation = Pool.evaluate(DIGITS, DigitsDataset(), options=ExecutionOptions(cache_dir=None, progress=False)
                               ).split(0.5)[1]
    for card in cards.glob("cascade*.json"):
        committee = load_committee(card).card.committee()
        assert committee.combine == "last"
        point = next(p for p in cascades if p["name"] == committee.name)
        assert evaluation.score(committee).metric == point["metric"]["evaluation"]


def test_tools_search_script_runs(digits_members):
    done = subprocess.run([sys.executable, str(REPO / "tools" / "search.py"), "--help"], capture_output=True,
                          text=True, check=True)
    assert "--pool" in done.stdout and "--worst-case" in done.stdout


def test_a_cached_search_builds_no_model_and_reads_no_weight_file(digits_members, tmp_path, monkeypatch, capsys):
    """With everything cached, the weights are not needed: a user can search a cache alone."""
    from committee_tasks.core import task as task_module
    from committee_tasks.core import zoo as zoo_module

    out = tmp_path / "first.json"
    assert main(["--pool", ",".join(DIGITS), *COMMON, "--json", str(out)]) == 0  # fills the cache

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built or a weight file hashed although everything is cached")

    monkeypatch.setattr(task_module.Task, "build_member", refuse)
    monkeypatch.setattr(zoo_module, "hash_file", refuse)
    again = tmp_path / "again.json"
    assert main(["--pool", ",".join(DIGITS), *COMMON, "--json", str(again)]) == 0
    first, second = (read_strict_json(p) for p in (out, again))
    assert first["references"] == second["references"] and first["points"] == second["points"]


def test_search_writes_a_card_for_every_pick_members_included(digits_members, tmp_path):
    """On 100 digits the cheapest model matching digits_cnn_m on calibration is digits_cnn_s on its
    own: its card runs that member (this crashed with a KeyError, and no card was written)."""
    from committee_tasks import load_committee

    out, cards = tmp_path / "search.json", tmp_path / "cards"
    assert main(["--pool", ",".join(DIGITS), *COMMON, "--limit", "100", "--json", str(out),
                 "--cards", str(cards)]) == 0
    picks = {e[k]["name"] for e in read_strict_json(out)["references"]
             for k in ("similar_accuracy", "similar_cost") if e[k]}
    assert "digits_cnn_s" in picks and any(p.startswith("cascade(") for p in picks)
    written = {read_strict_json(f)["kind"]: f for f in cards.glob("*.json")}
    assert len(list(cards.glob("*.json"))) == len(picks) and set(written) == {"member", "cascade"}
    member = load_committee(written["member"])
    assert member.card.members[0].name == "digits_cnn_s" and member.card.figures["exit_fractions"] == [1.0]
    # figures in the shape tools/eval.py's cards have: the evaluation split's numbers, the calibration's apart
    report = read_strict_json(out)
    cascade = read_strict_json(written["cascade"])["figures"]
    point = next(p for p in report["points"] if p["name"] == load_committee(written["cascade"]).card.name)
    assert cascade["metric"] == point["metric"]["evaluation"] and cascade["samples"] == report["split"]["evaluation"]
    assert cascade["calibration"] == {"metric": point["metric"]["calibration"], "samples": report["split"]["calibration"],
                                      "macs_mean": point["macs_mean"]["calibration"]}


def test_the_printed_front_shows_as_many_points_as_it_says_the_cheapest_and_the_most_accurate():
    """16 points with 12 to show printed 8 (every second one) and never the last, most accurate one."""
    from committee_tasks.reporting.search_text import _front_lines

    def figures(i):
        return {"macs_mean": {"calibration": 1e6 * (i + 1)}, "metric": {"calibration": 80 + i, "evaluation": 80 + i}}

    report = {"points": [{"name": f"c{i}", **figures(i)} for i in range(16)], "members": [],
              "front": [f"c{i}" for i in range(16)]}
    lines = _front_lines(report, 12)
    assert "(16 models and committees; 12 shown" in lines[0] and len(lines) == 13
    assert lines[1].endswith(" c0") and lines[-1].endswith(" c15")
    assert len(_front_lines({**report, "front": report["front"][:5]}, 12)) == 6


def test_a_greedy_search_picks_and_fronts_as_the_exhaustive_one_does(digits_members, tmp_path):
    """--greedy printed a "Pareto front" of dominated points, no similar-cost committee, and as a
    reference's match a cascade costlier than the reference itself."""
    out = tmp_path / "greedy.json"
    assert main(["--pool", ",".join(DIGITS), *COMMON, "--greedy", "--json", str(out)]) == 0
    report = read_strict_json(out)
    figures = {p["name"]: (p["macs_mean"]["calibration"], p["metric"]["calibration"])
               for p in [*report["points"], *report["members"]]}
    front = [figures[n] for n in report["front"]]
    assert front and all(not (c <= fc and m >= fm and (c, m) != (fc, fm)) for fc, fm in front for c, m in front)
    for ref in report["references"]:
        ref_macs, ref_metric = figures[ref["reference"]]
        if ref["similar_accuracy"]:
            macs, metric = figures[ref["similar_accuracy"]["name"]]
            assert macs <= ref_macs and metric >= ref_metric - 1e-9
        if ref["similar_cost"]:
            macs, metric = figures[ref["similar_cost"]["name"]]
            assert macs <= ref_macs * (1 + 1e-9) and metric >= ref_metric
    assert any(ref["similar_cost"] for ref in report["references"])


def test_a_greedy_search_keeps_to_max_size_and_refuses_worst_case(digits_members, tmp_path, capsys):
    """--greedy --max-size 2 built three-member cascades; --greedy --worst-case left every row empty
    (a greedy cascade ends with its reference, so its worst case always exceeds the reference's)."""
    out = tmp_path / "greedy2.json"
    assert main(["--pool", ",".join(DIGITS), *COMMON, "--greedy", "--max-size", "2", "--json", str(out)]) == 0
    report = read_strict_json(out)
    assert report["points"] and max(len(p["members"]) for p in report["points"]) <= 2
    capsys.readouterr()
    assert main(["--pool", ",".join(DIGITS), *COMMON, "--greedy", "--worst-case"]) == 2
    assert "--worst-case with --greedy: a greedy cascade ends with its reference" in capsys.readouterr().err


def _weak_and_reference(n: int = 40, classes: int = 5):
    """'weak' is right at 0.9 on even samples and wrong at 0.6 on odd ones; 'ref' is always right
    at 0.4. With the mean rule the odd samples, left for the last stage, predict weak's wrong
    class (0.375 against 0.25)."""
    targets = np.arange(n) % classes
    weak = np.full((n, classes), 0.1 / (classes - 1), np.float32)
    weak[np.arange(n), targets] = 0.9
    for i in range(1, n, 2):
        wrong = (targets[i] + 1) % classes
        weak[i] = 0.4 / (classes - 1)
        weak[i, wrong] = 0.6
    ref = np.full((n, classes), 0.6 / (classes - 1), np.float32)
    ref[np.arange(n), targets] = 0.4
    ids = np.array([f"{i:03d}" for i in range(n)])
    return PoolPredictions(ids, targets, {"weak": weak.astype(np.float16), "ref": ref.astype(np.float16)},
                           {"weak": np.full(n, 10.0), "ref": np.full(n, 100.0)})


def test_greedy_holds_the_last_stage_to_alpha_too(classification):
    """With the mean rule the samples left for the last stage predict with every chosen member and
    the reference, not the reference alone: the cascade built for resnet32 on CIFAR scored 92.53
    against its 92.67 at alpha 0. Such a stage is undone; the last rule keeps it."""
    pool = _weak_and_reference()
    assert greedy_cascade(pool, classification, ["weak", "ref"], "ref", alpha=0.0) is None
    last = greedy_cascade(pool, classification, ["weak", "ref"], "ref", alpha=0.0, combine="last")
    assert last.evaluate(pool, classification).metric == 100.0 and last.thresholds == [pytest.approx(0.9, abs=1e-3)]


def test_a_reference_no_member_helps_leaves_the_greedy_search_standing(classification):
    """One such reference raised 'no member of the pool lets any sample exit', and the whole search
    reported nothing; it now has no committee, as in the exhaustive search."""
    from committee_tasks.search.committee_search import SearchSettings, search_variant

    pool = _weak_and_reference()
    pool.outputs["weak"] = np.roll(pool.outputs["weak"], 1, axis=1)  # confidently wrong everywhere: no help to ref
    half = np.arange(len(pool.ids)) % 4 < 2
    out = search_variant(classification, pool.subset(half), pool.subset(~half), "max_prob",
                         SearchSettings(pool=["weak", "ref"], greedy=True))
    assert [r["reference"] for r in out["references"]] == ["weak", "ref"]
    ref = out["references"][1]
    assert ref["similar_accuracy"] is None and ref["similar_cost"] is None  # no committee: the reference itself
    alone = search_variant(classification, pool.subset(half), pool.subset(~half), "max_prob",
                           SearchSettings(pool=["ref"], greedy=True))  # a pool of one: its member, as exhaustive
    assert [r["reference"] for r in alone["references"]] == ["ref"] and alone["front"] == ["ref"]


def test_the_greedy_front_keeps_one_of_points_tied_on_both_figures(classification):
    """A cascade whose later stage no calibration sample reaches ties its first member on cost and
    metric; the front listed both (CIFAR at --alpha 2: resnet20 and three resnet20>... cascades)."""
    from committee_tasks.search.committee_search import SearchSettings, search_variant

    pool = _weak_and_reference()
    pool.outputs["weak"] = pool.outputs["ref"].copy()
    pool.outputs["weak"][np.arange(len(pool.ids)), pool.targets] = 1.0  # sure of the right class everywhere
    half = np.arange(len(pool.ids)) % 4 < 2
    out = search_variant(classification, pool.subset(half), pool.subset(~half), "max_prob",
                         SearchSettings(pool=["weak", "ref"], greedy=True, alpha=2.0))
    # cascade(weak>ref)@1 was built and ties weak (every sample exits at its first stage): listed no more
    assert out["front"] == ["weak"] and not out["points"]
    with pytest.raises(CommitteeError, match=r"--alpha must be a finite number >= 0 .* got nan"):
        SearchSettings(pool=["weak", "ref"], greedy=True, alpha=float("nan"))
    with pytest.raises(CommitteeError, match="--references lists 'ref' more than once"):
        SearchSettings(pool=["weak", "ref"], references=["ref", "ref"])
