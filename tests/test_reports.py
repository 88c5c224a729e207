"""Paper-style reports from search results: cross-task tables (Markdown, LaTeX, CSV, JSON), the
metric-vs-MACs figure, and tools/report.py end to end with its errors. Fixtures are hand-made in
the shape tools/search.py writes."""
from __future__ import annotations

import copy
import csv
import json
import re
import shutil
import subprocess
import sys

import pytest

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.provenance import SCHEMA_VERSION
from committee_tasks.cli.report import main
from committee_tasks.reporting.search_tables import (build_tables, format_macs, latex_escape, to_csv, to_json, to_latex,
                                    to_markdown, validate_result)
from tests.conftest import REPO


def _both(cal: float, ev: float) -> dict:
    return {"calibration": cal, "evaluation": ev}


def _point(name, kind, members, metric, macs, macs_worst, pareto, thresholds=None, exits=None) -> dict:
    return {"name": name, "kind": kind, "members": members, "thresholds": thresholds, "metric": metric,
            "macs_mean": macs, "macs_worst": macs_worst, "exit_fractions": exits, "pareto": pareto}


def _ci(value: float, half: float = 0.5) -> dict:
    return {"evaluation": [value - half, value + half]}


def _pick(point: dict, ref_metric: float, ref_macs: float) -> dict:
    e_metric, e_macs = point["metric"]["evaluation"], point["macs_mean"]["evaluation"]
    delta = e_metric - ref_metric
    return {"name": point["name"], "metric": point["metric"], "macs_mean": point["macs_mean"],
            "speedup": ref_macs / e_macs, "delta": delta, "metric_ci": _ci(e_metric),
            "delta_ci": [delta - 0.25, delta + 0.25], "delta_distinguishable": abs(delta) > 0.25}


INTERVAL = {"confidence": 0.95, "resamples": 2000, "seed": 0, "split": "evaluation"}


def classification_result() -> dict:
    """CIFAR-10 ResNets (MACs as counted; metrics near their real ones)."""
    members = {"resnet20": (91.6, 91.86, 40551040.0), "resnet32": (92.5, 92.63, 69120000.0),
               "resnet44": (93.0, 93.10, 97700000.0), "resnet56": (93.3, 93.48, 125485824.0)}
    points = [
        _point("ensemble(resnet20+resnet32)", "ensemble", ["resnet20", "resnet32"], _both(93.1, 93.0),
               _both(1.0967e8, 1.0967e8), 1.0967e8, False),
        _point("ensemble(resnet32+resnet56)", "ensemble", ["resnet32", "resnet56"], _both(94.0, 94.1),
               _both(1.946e8, 1.946e8), 1.946e8, False),
        _point("ensemble(resnet20+resnet44+resnet56)", "ensemble", ["resnet20", "resnet44", "resnet56"],
               _both(94.3, 94.35), _both(2.637e8, 2.637e8), 2.637e8, False),
        _point("cascade(resnet20>resnet32)@0.9", "cascade", ["resnet20", "resnet32"], _both(92.7, 92.6),
               _both(4.6e7, 4.62e7), 1.0967e8, True, [0.9], [0.82, 0.18]),
        _point("cascade(resnet20>resnet56)@0.93", "cascade", ["resnet20", "resnet56"], _both(93.5, 93.4),
               _both(5.2e7, 5.3e7), 1.66e8, True, [0.93], [0.9, 0.1]),
        _point("cascade(resnet32>resnet56)@0.7", "cascade", ["resnet32", "resnet56"], _both(93.9, 93.8),
               _both(1.2e8, 1.21e8), 1.946e8, True, [0.7], [0.6, 0.4]),
        _point("cascade(resnet20>resnet32>resnet56)@0.95,0.9", "cascade", ["resnet20", "resnet32", "resnet56"],
               _both(94.2, 94.1), _both(8.1e7, 8.2e7), 2.35e8, True, [0.95, 0.9], [0.7, 0.2, 0.1]),
    ]
    by_name = {p["name"]: p for p in points}
    references = []
    for ref, acc, cost in (("resnet56", "cascade(resnet20>resnet56)@0.93", "cascade(resnet32>resnet56)@0.7"),
                           ("resnet44", "cascade(resnet20>resnet56)@0.93",
                            "cascade(resnet20>resnet32>resnet56)@0.95,0.9"),
                           ("resnet32", "cascade(resnet20>resnet32)@0.9", "cascade(resnet20>resnet56)@0.93")):
        cal, ev, macs = members[ref]
        references.append({"reference": ref, "metric": _both(cal, ev), "macs_mean": macs, "throughput": None,
                           "metric_ci": _ci(ev), "similar_accuracy": _pick(by_name[acc], ev, macs),
                           "similar_cost": _pick(by_name[cost], ev, macs)})
    return {"schema_version": SCHEMA_VERSION, "task": "classification", "dataset": "cifar10-test",
            "dataset_title": "CIFAR-10 test set", "metric_name": "top-1", "interval": INTERVAL,
            "split": {"calibration": 5000, "evaluation": 5000},
            "front": ["resnet20", "cascade(resnet20>resnet32)@0.9", "cascade(resnet20>resnet56)@0.93",
                      "cascade(resnet20>resnet32>resnet56)@0.95,0.9", "cascade(resnet32>resnet56)@0.7"],
            "members": [{"name": n, "metric": _both(c, e), "macs_mean": m, "throughput": None}
                        for n, (c, e, m) in members.items()],
            "points": points, "references": references}


def segmentation_result() -> dict:
    """A second task with another metric, measured throughput, and a reference nothing matches."""
    members = {"lraspp_mobilenet_v3_large": (57.9, 57.3, 2.086e9, 61.0),
               "deeplabv3_mobilenet_v3_large": (60.3, 60.1, 10.45e9, 24.0),
               "fcn_resnet50": (60.5, 60.5, 152.7e9, 3.1),
               "deeplabv3_resnet101": (67.4, 67.2, 258.7e9, 1.9)}
    points = [
        _point("ensemble(lraspp_mobilenet_v3_large+deeplabv3_mobilenet_v3_large)", "ensemble",
               ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"], _both(61.0, 60.7),
               _both(12.54e9, 12.54e9), 12.54e9, False),
        _point("cascade(deeplabv3_mobilenet_v3_large>fcn_resnet50)@0.8", "cascade",
               ["deeplabv3_mobilenet_v3_large", "fcn_resnet50"], _both(61.9, 61.6), _both(40.1e9, 41.3e9),
               163.2e9, True, [0.8], [0.8, 0.2]),
    ]
    cal, ev, macs, thr = members["fcn_resnet50"]
    references = [
        {"reference": "fcn_resnet50", "metric": _both(cal, ev), "macs_mean": macs, "throughput": thr,
         "metric_ci": _ci(ev), "similar_accuracy": _pick(points[1], ev, macs),
         "similar_cost": _pick(points[1], ev, macs)},
        {"reference": "deeplabv3_resnet101", "metric": _both(67.4, 67.2), "macs_mean": 258.7e9, "throughput": 1.9,
         "metric_ci": _ci(67.2), "similar_accuracy": None, "similar_cost": _pick(points[1], 67.2, 258.7e9)},
    ]
    return {"schema_version": SCHEMA_VERSION, "task": "segmentation", "dataset": "voc2012_val",
            "dataset_title": "PASCAL VOC 2012 val split", "metric_name": "mIoU", "interval": INTERVAL,
            "split": {"calibration": 700, "evaluation": 749},
            "front": ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large",
                      "cascade(deeplabv3_mobilenet_v3_large>fcn_resnet50)@0.8", "deeplabv3_resnet101"],
            "members": [{"name": n, "metric": _both(c, e), "macs_mean": m, "throughput": t}
                        for n, (c, e, m, t) in members.items()],
            "points": points, "references": references}


@pytest.fixture
def results():
    return [classification_result(), segmentation_result()]


def _md_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]


# ---------------------------------------------------------------- tables

def test_format_macs():
    assert format_macs(125485824.0) == "125.5M"
    assert format_macs(4.09e9) == "4.09G"
    assert format_macs(40551040.0) == "40.6M"
    assert format_macs(258.7e9) == "258.7G"
    assert format_macs(115_000) == "115.0K"
    assert format_macs(999) == "999"
    assert format_macs(None) == format_macs(float("nan")) == "–"


def test_markdown_one_block_per_task_one_row_per_reference(results):
    md = to_markdown(build_tables(results))
    rows = _md_rows(md)
    header, body = rows[0], rows[2:]
    assert header[:4] == ["model", "metric", "MACs", "samples/s"]  # the segmentation task measured throughput
    assert len(header) == 11 and all(len(r) == 11 for r in rows)
    titles = [r[0] for r in body if r[0].startswith("**")]
    assert titles == ["**classification: CIFAR-10 test set — top-1 on 5,000 evaluation samples**",
                      "**segmentation: PASCAL VOC 2012 val split — mIoU on 749 evaluation samples**"]
    data = {r[0]: r for r in body if not r[0].startswith("**")}
    assert list(data) == ["resnet56", "resnet44", "resnet32", "fcn_resnet50", "deeplabv3_resnet101"]
    # evaluation-split figures with their intervals: metric, MACs, similar cost (metric, Δ, MACs),
    # similar accuracy (metric, Δ, MACs, speedup)
    cost_macs = format_macs(results[0]["references"][0]["similar_cost"]["macs_mean"]["evaluation"])
    assert data["resnet56"] == ["resnet56", "93.48 [92.98, 93.98]", "125.5M", "–", "93.80 [93.30, 94.30]",
                                "+0.32 [+0.07, +0.57]", cost_macs, "93.40 [92.90, 93.90]", "-0.08 [-0.33, +0.17]",
                                "53.0M", "2.37x"]
    assert data["fcn_resnet50"][:4] == ["fcn_resnet50", "60.50 [60.00, 61.00]", "152.7G", "3"]
    assert data["deeplabv3_resnet101"][-4:] == ["–", "–", "–", "–"]  # no committee at similar accuracy
    assert data["deeplabv3_resnet101"][4:6] == ["61.60 [61.10, 62.10]", "-5.60 [-5.85, -5.35]"]
    assert cost_macs not in ("–", "125.5M")
    assert "95% bootstrap interval over the evaluation samples (paired for Δ)" in md


def test_markdown_without_throughput_and_with_names(results):
    tables = build_tables(results[:1])
    assert not tables["throughput"]
    rows = _md_rows(to_markdown(tables, names=True))
    assert "samples/s" not in rows[0] and rows[0].count("≈ cost: committee") == 1
    assert rows[3][3] == "cascade(resnet32>resnet56)@0.7"


def test_build_tables_keeps_both_splits_and_recomputes_missing(results):
    result = results[0]
    del result["references"][0]["similar_accuracy"]["speedup"]
    del result["references"][0]["similar_cost"]["delta"]
    row = build_tables([result])["blocks"][0]["rows"][0]
    assert row["metric_calibration"] == 93.3 and row["metric_evaluation"] == 93.48
    assert row["similar_accuracy_macs_calibration"] == 5.2e7
    assert row["similar_accuracy_speedup"] == pytest.approx(125485824.0 / 5.3e7)
    assert row["similar_cost_delta"] == pytest.approx(93.8 - 93.48)


def _latex_cells_span(row: str) -> int:
    """Columns a tabular row covers: its cells, \\multicolumn{n} counting n."""
    cells = re.split(r"(?<!\\)&", row)
    return sum(int(m.group(1)) if (m := re.match(r"\s*\\multicolumn\{(\d+)\}", c)) else 1 for c in cells)


def _braces_balanced(text: str) -> bool:
    depth = 0
    for ch in re.sub(r"\\[{}]", "", text):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


@pytest.mark.parametrize("names", [False, True])
def test_latex_structure(results, names):
    tex = to_latex(build_tables(results), names=names)
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert tex.index(r"\begin{tabular}") < tex.index(r"\end{tabular}")
    assert _braces_balanced(tex)
    spec = re.search(r"\\begin\{tabular\}\{([lrc]+)\}", tex).group(1)
    ncols = len(spec)
    assert ncols == 11 + 2 * names
    lines = tex.strip().splitlines()
    rows = [line for line in lines if line.rstrip().endswith(r"\\")]
    assert all(_latex_cells_span(r) == ncols for r in rows)
    data = [r for r in rows if r.startswith(("resnet", "fcn", "deeplab"))]
    assert len(data) == 5
    assert all(len(re.findall(r"(?<!\\)&", r)) == ncols - 1 for r in data)
    # booktabs rules, group headers, one \midrule-separated block per task
    end = lines.index(r"\end{tabular}")
    assert lines[1] == r"\toprule" and lines[end - 1] == r"\bottomrule"
    assert all(line.startswith("% ") for line in lines[end + 1:]) and "bootstrap interval" in lines[end + 1]
    assert r"\multicolumn{3}{c}{Cascade, similar cost}" in tex or names
    assert r"\multicolumn{4}{c}{Cascade, similar accuracy}" in tex or names
    assert tex.count(r"\midrule") == 2 and r"\cmidrule(lr)" in tex
    # names are escaped: no bare _ > or unicode left
    body = "\n".join(rows)
    assert re.search(r"(?<!\\)_", body) is None and ">" not in body and "–" not in body and "Δ" not in body
    assert r"deeplabv3\_resnet101" in tex and r"\textit{segmentation: PASCAL VOC 2012 val split --- mIoU on 749" in tex
    assert r"2.37$\times$" in tex and r"$-$5.60 [$-$5.85, $-$5.35]" in tex
    if names:
        assert r"cascade(resnet20\textgreater{}resnet56)@0.93" in tex


def test_latex_escape():
    assert latex_escape("a_b & 50% #1 $x ~{}^") == r"a\_b \& 50\% \#1 \$x \textasciitilde{}\{\}\textasciicircum{}"
    assert latex_escape("c:\\x") == r"c:\textbackslash{}x"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles(results, tmp_path):
    doc = ("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage[margin=1cm,landscape]{geometry}\n"
           "\\begin{document}\n" + to_latex(build_tables(results), names=True) + "\\end{document}\n")
    (tmp_path / "t.tex").write_text(doc)
    run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / "t.pdf").stat().st_size > 0


def test_csv_rows_and_json_round_trip(results, tmp_path):
    tables = build_tables(results)
    to_csv(tables, tmp_path / "t.csv")
    with open(tmp_path / "t.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["task"], r["reference"]) for r in rows] == [
        ("classification", "resnet56"), ("classification", "resnet44"), ("classification", "resnet32"),
        ("segmentation", "fcn_resnet50"), ("segmentation", "deeplabv3_resnet101")]
    r = rows[0]
    assert (r["dataset"], r["metric_name"], r["calibration_samples"], r["evaluation_samples"]) == (
        "cifar10-test", "top-1", "5000", "5000")
    assert float(r["metric_calibration"]) == 93.3 and float(r["metric_evaluation"]) == 93.48
    assert float(r["similar_accuracy_macs_calibration"]) == 5.2e7
    assert float(r["similar_accuracy_macs_evaluation"]) == 5.3e7
    assert float(r["similar_cost_delta"]) == pytest.approx(0.32)
    assert float(r["metric_ci_low"]) == 92.98 and float(r["similar_cost_delta_ci_high"]) == pytest.approx(0.57)
    assert r["throughput"] == "" and rows[3]["throughput"] == "3.1"
    assert rows[4]["similar_accuracy_name"] == "" and rows[4]["similar_accuracy_speedup"] == ""
    to_json(tables, tmp_path / "t.json")
    assert json.loads((tmp_path / "t.json").read_text()) == tables
    # what to_json wrote renders the same
    assert to_markdown(json.loads((tmp_path / "t.json").read_text())) == to_markdown(tables)


# ---------------------------------------------------------------- CLI

def _write(results, folder) -> list[str]:
    paths = []
    for r in results:
        path = folder / f"{r['task']}.json"
        path.write_text(json.dumps(r))
        paths.append(str(path))
    return paths


def test_cli_end_to_end(results, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    inputs = _write(results, tmp_path)
    out = tmp_path / "out"
    assert main(inputs + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("| model |") and "**segmentation: PASCAL VOC 2012 val split — mIoU on 749" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "classification-cifar10-test.png", "committees.csv", "committees.json", "committees.md", "committees.tex",
        "segmentation-voc2012_val.png"]
    assert (out / "committees.md").read_text() == to_markdown(build_tables(results))
    assert (out / "committees.tex").read_text() == to_latex(build_tables(results))
    written = json.loads((out / "committees.json").read_text())
    assert written.pop("provenance")["schema_version"] == SCHEMA_VERSION  # the report's own
    assert written == build_tables(results)


def test_cli_subprocess_selected_formats(results, tmp_path):
    inputs = _write(results, tmp_path)
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, str(REPO / "tools" / "report.py"), *inputs, "--out", str(out),
                          "--formats", "md,csv"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "| resnet56 | 93.48 [92.98, 93.98] | 125.5M |" in run.stdout
    assert sorted(p.name for p in out.iterdir()) == ["committees.csv", "committees.md"]


def _missing_key(results):
    bad = copy.deepcopy(results[0])
    del bad["references"][1]["similar_cost"]["macs_mean"]
    return bad


@pytest.mark.parametrize("case, message", [
    ("missing file", "no such file"),
    ("invalid json", "not valid JSON"),
    ("top-level key", "missing required key 'metric_name'"),
    ("nested key", "missing required key 'references[1].similar_cost.macs_mean'"),
    ("not an object", "must be a JSON object"),
    ("unknown format", "unknown format 'pdf'; valid: md, tex, csv, json, png"),
    ("no input", "at least one"),
])
def test_cli_errors(results, tmp_path, capsys, case, message):
    good = _write(results[:1], tmp_path)[0]
    bad = tmp_path / "bad.json"
    argv = [str(bad), "--out", str(tmp_path / "out")]
    if case == "missing file":
        pass
    elif case == "invalid json":
        bad.write_text('{"task": "classification",\n "dataset": }')
    elif case == "top-level key":
        r = copy.deepcopy(results[0])
        del r["metric_name"]
        bad.write_text(json.dumps(r))
    elif case == "nested key":
        bad.write_text(json.dumps(_missing_key(results)))
    elif case == "not an object":
        bad.write_text("[1, 2]")
    elif case == "unknown format":
        argv = [good, "--out", str(tmp_path / "out"), "--formats", "md,pdf"]
    elif case == "no input":
        argv = ["--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    if case not in ("unknown format", "no input"):
        assert str(bad) in err  # the message names the file
    assert not (tmp_path / "out").exists()  # nothing written on bad input


def test_validate_result_names_source():
    v = SCHEMA_VERSION
    with pytest.raises(CommitteeError, match=r"x\.json: missing required key 'points'"):
        validate_result({"schema_version": v, "task": "t", "dataset": "d", "metric_name": "m", "members": [],
                         "references": []}, "x.json")
    with pytest.raises(CommitteeError, match=r"members\[0\].metric must be a number"):
        validate_result({"schema_version": v, "task": "t", "dataset": "d", "metric_name": "m", "points": [],
                         "references": [], "members": [{"name": "a", "metric": "high", "macs_mean": 1}]}, "x.json")


def test_a_block_says_which_search_made_it():
    """An exhaustive and a greedy (or worst-case, any-order) search of one pool gave blocks with
    the same heading."""
    plain, greedy = classification_result(), classification_result()
    greedy.update({"method": "greedy", "worst_case": True, "any_order": True, "confidence": "margin"})
    tables = build_tables([plain, greedy])
    md = to_markdown(tables)
    assert "(greedy search; committees within the model's worst-case MACs; cascades in any member order; " \
           "confidence margin)" in md
    first = next(line for line in md.splitlines() if line.startswith("| **classification"))
    assert "(" not in first.split("evaluation samples")[1].split("**")[0]  # the default search says nothing more
