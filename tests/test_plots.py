"""The search figure (committee_tasks/plots.py): short names, honest arrow labels and title, the
front chosen on the calibration split, and no text overlapping another text or a marker - checked on
the rendered boxes of the real digits search, the hand-made report fixtures and a crowded result."""
from __future__ import annotations

import copy
import itertools
import json
import math

import pytest

pytest.importorskip("matplotlib")

from committee_tasks.reporting.plots import (committee_label, member_prefix, pareto_front, plot_filename, plot_result,
                                   render_result)
from committee_tasks.reporting.search_tables import split_value
from tests.test_reports import classification_result, segmentation_result

DIGITS = ["digits_cnn_s", "digits_cnn_m", "digits_cnn_l"]
DIGITS_TITLE = "scikit-learn handwritten digits (test split)"
MINUS = "\u2212"


# ---------------------------------------------------------------- the overlap check

def _strictly_overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _drawn_texts(fig, renderer) -> list[tuple[str, object]]:
    """(description, display box) of every text drawn: labels, titles, axis and tick labels; the
    legend counts as one box."""
    from matplotlib.legend import Legend
    from matplotlib.text import Text

    legends = list(fig.findobj(Legend))
    skip = {id(t) for legend in legends for t in legend.findobj(Text)}
    for ax in fig.axes:  # ticks located outside the view are not drawn
        for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            lo, hi = min(lo, hi), max(lo, hi)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo <= tick.get_loc() <= hi:
                    skip.update({id(tick.label1), id(tick.label2)})
    texts = [(repr(t.get_text()), t.get_window_extent(renderer)) for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and id(t) not in skip]
    return texts + [("the legend", legend.get_window_extent(renderer)) for legend in legends]


def _drawn_markers(fig) -> list[tuple[str, object]]:
    """(description, display box) of every marker: scatter points and line markers, their edges included."""
    from matplotlib.collections import PathCollection
    from matplotlib.transforms import Bbox

    px = fig.dpi / 72
    boxes = []

    def add(what, points, halves):
        for (x, y), half in zip(points, halves):
            boxes.append((f"{what} marker at ({x:.0f}, {y:.0f})", Bbox.from_extents(x - half, y - half, x + half,
                                                                                   y + half)))

    for ax in fig.axes:
        for coll in ax.collections:
            if isinstance(coll, PathCollection) and len(coll.get_offsets()):
                points = coll.get_offset_transform().transform(coll.get_offsets())
                sizes, widths = coll.get_sizes(), coll.get_linewidths()
                add("scatter", points, [(math.sqrt(sizes[i % len(sizes)]) / 2 + widths[i % len(widths)] / 2) * px
                                        for i in range(len(points))])
        for line in ax.lines:
            if line.get_marker() in (None, "None", "", " ") or not line.get_visible():
                continue
            points = line.get_transform().transform(line.get_xydata())
            add("line", points, [(line.get_markersize() + line.get_markeredgewidth()) / 2 * px] * len(points))
    return boxes


def overlap_problems(fig) -> list[str]:
    """Every text overlapping another text or a marker, and every text leaving the figure."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts, markers = _drawn_texts(fig, renderer), _drawn_markers(fig)
    problems = [f"{a} overlaps {b}" for (a, box_a), (b, box_b) in itertools.combinations(texts, 2)
                if _strictly_overlap(box_a, box_b)]
    problems += [f"{a} overlaps the {m}" for a, box in texts for m, marker in markers if _strictly_overlap(box, marker)]
    frame = fig.bbox
    problems += [f"{a} leaves the figure" for a, box in texts
                 if box.x0 < frame.x0 or box.y0 < frame.y0 or box.x1 > frame.x1 or box.y1 > frame.y1]
    return problems


def arrow_crossings(fig, info) -> list[str]:
    """Labels an arrow shaft runs through (allowed only where unavoidable)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    out = []
    for arrow in info["arrows"]:
        (x0, y0), (x1, y1) = arrow["shaft"]
        points = [(x0 + (x1 - x0) * t / 200, y0 + (y1 - y0) * t / 200) for t in range(201)]
        for label in info["labels"]:
            box = label.get_window_extent(renderer)
            if any(box.x0 < x < box.x1 and box.y0 < y < box.y1 for x, y in points):
                out.append(f"{arrow['reference']}->{arrow['target']} crosses {label.get_text()!r}")
    return out


def test_the_overlap_check_catches_overlaps():
    """The check fails on what the old figure did: a label over a marker, two labels over each other."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.scatter([1, 2], [1, 2], marker="*", s=110)
    ax.text(1, 1, "hides a star")
    ax.text(1.5, 1.5, "16.92x fewer MACs")
    ax.text(1.5, 1.5, "-1.05 top-1")
    ax.text(2.9, 2.9, "far outside the figure")
    ax.set_xlim(0, 3)
    ax.set_ylim(0, 3)
    problems = overlap_problems(fig)
    assert any("'hides a star' overlaps the scatter marker" in p for p in problems)
    assert "'16.92x fewer MACs' overlaps '-1.05 top-1'" in problems
    assert any("'far outside the figure'" in p and "leaves the figure" in p for p in problems)


# ---------------------------------------------------------------- inputs

def _current(result: dict) -> dict:
    """A copy carrying the schema version results are read at (where the hand-made fixture lacks it)."""
    result = copy.deepcopy(result)
    try:
        from committee_tasks.core.provenance import SCHEMA_VERSION
    except ImportError:  # a version without schema versions
        return result
    result.setdefault("schema_version", SCHEMA_VERSION)
    return result


def _with_keys(result: dict, title: str | None = None) -> dict:
    """A copy with the keys tools/search.py adds: dataset_title, and the front chosen on the
    calibration split (members included, cheapest first) where it is missing."""
    result = _current(result)
    if title:
        result["dataset_title"] = title
    if "front" not in result:
        items = [(split_value(p["macs_mean"], "calibration"), split_value(p["metric"], "calibration"), p["name"])
                 for p in result["members"] + result["points"]]
        result["front"] = [name for _, _, name in pareto_front(items)]
    return result


@pytest.fixture(scope="module")
def digits_result(tmp_path_factory) -> dict:
    """The real search of the embedded default (weights ship in the repository: no training)."""
    from committee_tasks.cli.search import main as search_main

    out = tmp_path_factory.mktemp("digits") / "search.json"
    assert search_main(["--dataset", "digits", "--pool", ",".join(DIGITS), "--no-progress", "--workers", "0",
                        "--json", str(out)]) == 0
    return json.loads(out.read_text())


def crowded_result(names=("effnet_b0", "effnet_b1", "effnet_b2", "effnet_b3"), worst_case=False) -> dict:
    """4 members, all 11 ensembles, 12 cascades on the calibration front, 4 references picked on the
    calibration split the way tools/search.py picks them (so some miss on the evaluation split)."""
    macs = dict(zip(names, (0.39e9, 0.70e9, 1.0e9, 1.8e9)))
    cal = dict(zip(names, (77.4, 79.6, 80.7, 81.9)))
    ev = dict(zip(names, (77.7, 80.2, 80.6, 82.0)))

    def both(c, e):
        return {"calibration": c, "evaluation": e}

    points = []
    for k in (2, 3, 4):
        for subset in itertools.combinations(names, k):
            m = max(ev[n] for n in subset) + 0.45 * (k - 1)
            total = sum(macs[n] for n in subset)
            points.append({"name": f"ensemble({'+'.join(subset)})", "kind": "ensemble", "members": list(subset),
                           "thresholds": None, "metric": both(m - 0.05, m), "macs_mean": both(total, total),
                           "macs_worst": total, "exit_fractions": None, "pareto": False})
    orders = [s for k in (2, 3, 4) for s in itertools.combinations(names, k)] + [names[:2]]
    for i, subset in enumerate(orders):  # 12 cascades along a rising calibration front
        mean = 0.42e9 + i * 0.085e9
        metric_cal = 78.2 + 4.4 * (1 - math.exp(-i / 4.0))
        noise = (-0.35, 0.2, -0.1, 0.3, -0.25, 0.15, 0.05, -0.3, 0.25, -0.05, 0.1, -0.2)[i]
        points.append({"name": f"cascade({'>'.join(subset)})@0.{90 - i},0.8", "kind": "cascade",
                       "members": list(subset), "thresholds": [0.9], "metric": both(metric_cal, metric_cal + noise),
                       "macs_mean": both(mean, mean * 1.01), "macs_worst": sum(macs[n] for n in subset),
                       "exit_fractions": None, "pareto": True})
    cascades = [p for p in points if p["kind"] == "cascade"]
    references = []
    for ref in names:
        def pick(p, ref=ref):
            e_macs = p["macs_mean"]["evaluation"]
            return {"name": p["name"], "metric": p["metric"], "macs_mean": p["macs_mean"],
                    "speedup": macs[ref] / e_macs, "delta": p["metric"]["evaluation"] - ev[ref]}
        allowed = [p for p in cascades if not worst_case or p["macs_worst"] <= macs[ref]]
        matching = [p for p in allowed if p["metric"]["calibration"] >= cal[ref]]
        within = [p for p in allowed if p["macs_mean"]["calibration"] <= macs[ref]]
        acc = min(matching, key=lambda p: p["macs_mean"]["calibration"]) if matching else None
        cost = max(within, key=lambda p: p["metric"]["calibration"]) if within else None
        references.append({"reference": ref, "metric": both(cal[ref], ev[ref]), "macs_mean": macs[ref],
                           "throughput": None, "similar_accuracy": acc and pick(acc),
                           "similar_cost": cost and pick(cost)})
    result = {"task": "classification", "dataset": "imagenet-val", "metric_name": "top-1",
              "dataset_title": "ImageNet (validation set, 50,000 images)", "worst_case": worst_case,
              "split": {"calibration": 25000, "evaluation": 25000},
              "members": [{"name": n, "metric": both(cal[n], ev[n]), "macs_mean": macs[n], "throughput": None}
                          for n in names],
              "points": points, "references": references}
    return _with_keys(result)


CASES = {
    "cifar": lambda: _with_keys(classification_result(), "CIFAR-10 (test set, 10,000 images)"),
    "segmentation": lambda: _with_keys(segmentation_result(), "PASCAL VOC 2012 (validation set)"),
    "crowded": crowded_result,
    "crowded-full-names": lambda: crowded_result(("resnet20", "resnet32", "resnet44", "resnet56"), worst_case=True),
    "cifar-without-new-keys": lambda: _current(classification_result()),
}


# ---------------------------------------------------------------- names

def test_short_names():
    assert member_prefix(DIGITS) == "digits_cnn_"
    assert committee_label("cascade(digits_cnn_s>digits_cnn_m)@0.58", DIGITS) == "s>m"
    assert committee_label("ensemble(digits_cnn_s+digits_cnn_m+digits_cnn_l)", DIGITS) == "s+m+l"
    assert committee_label("ensemble(a+b)", ["a", "b"]) == "a+b"
    assert member_prefix(["resnet20", "resnet56"]) == ""
    assert committee_label("cascade(resnet20>resnet56)@0.9", ["resnet20", "resnet56"]) == "resnet20>resnet56"
    assert member_prefix(["net_a1", "net_a2"]) == "net_"  # the prefix ends at a separator
    assert member_prefix(["x3d.s", "x3d.m", "x3d"]) == ""  # a name would be left empty
    assert member_prefix(["x-a", "x-b"]) == "x-"
    # a name holding the joiner: the pool's names are matched first, or the stored members list used
    pool = ["x3d_m+exit0.8", "x3d_m", "x3d_l"]
    assert committee_label("ensemble(x3d_m+exit0.8+x3d_l)", pool) == "m+exit0.8+l"
    assert committee_label("anything", pool, members=["x3d_m", "x3d_l"], kind="cascade") == "m>l"
    assert committee_label("digits_cnn_l", DIGITS) == "digits_cnn_l"  # a single model keeps its name


# ---------------------------------------------------------------- the real digits search

def test_digits_figure_is_honest_and_uncluttered(digits_result):
    result = _with_keys(digits_result, DIGITS_TITLE)
    fig, info = render_result(result)
    assert overlap_problems(fig) == []
    assert arrow_crossings(fig, info) == []

    split = result["split"]
    first, second = (t.get_text().replace("\n", " ") for t in info["title"])
    assert DIGITS_TITLE in first and f"{split['evaluation']}-sample evaluation" in first and "top-1" in first
    assert f"other {split['calibration']} samples" in second and "calibration" in second

    legend = [t.get_text() for t in info["legend"].get_texts()]
    assert "Pareto front chosen on the calibration split" in legend
    assert not any("(evaluation)" in t for t in legend)
    assert any("mean MACs on calibration" in t and "similar cost" in t for t in legend)

    # every arrow: the MACs ratio and the metric difference on the plotted split, from the JSON figures
    members = {m["name"]: m for m in result["members"]}
    assert info["arrows"]
    for arrow in info["arrows"]:
        ref = next(r for r in result["references"] if r["reference"] == arrow["reference"])
        pick = ref[arrow["groups"][0]]
        delta = pick["metric"]["evaluation"] - members[arrow["reference"]]["metric"]["evaluation"]
        ratio = split_value(ref["macs_mean"]) / split_value(pick["macs_mean"])
        text = arrow["label"].get_text()
        sign = MINUS if delta < -1e-9 else "+"
        assert f"{sign}{abs(delta):.2f} top-1" in text
        if "similar_accuracy" in arrow["groups"]:
            assert (f"{ratio:.1f}x fewer MACs" if ratio >= 10 else f"{ratio:.2f}x fewer MACs") in text
            assert arrow["miss"] == (delta < -1e-9)
            assert arrow["linestyle"] == (":" if arrow["miss"] else "-")
            assert arrow["patch"].get_linestyle() != "-" or not arrow["miss"]
            assert (f"misses {arrow['reference']} by {-delta:.2f}" in text) == arrow["miss"]
        else:
            assert text.startswith(f"\u2264 {arrow['reference']}'s mean MACs")
            assert f"at {1 / ratio:.2f}x its MACs" in text
            assert arrow["linestyle"] == "--"
    # the engineer's reported case: digits_cnn_l's similar-accuracy committee misses it on evaluation
    largest = next(r for r in result["references"] if r["reference"] == "digits_cnn_l")
    if largest["similar_accuracy"]["metric"]["evaluation"] < members["digits_cnn_l"]["metric"]["evaluation"]:
        assert any(a["miss"] and a["reference"] == "digits_cnn_l" for a in info["arrows"])

    # labels: members whole, every ensemble and arrow target short, thresholds only where cascades
    # of the same members need them apart (here two s>m targets)
    names = {n: t.get_text() for n, t in info["names"].items()}
    assert {n: names[n] for n in DIGITS} == {n: n for n in DIGITS}
    for p in result["points"]:
        if p["kind"] == "ensemble":
            assert names[p["name"]] == "+".join(n.split("_")[-1] for n in p["members"])
    targets = {arrow["target"] for arrow in info["arrows"]}
    assert len({names[t] for t in targets}) == len(targets)
    for target in targets:
        short, _, thresholds = names[target].partition(" @")
        assert "@" not in short and "digits_cnn" not in short and short in ("s>m", "s>m>l")
        assert not thresholds or sum(names[t].startswith(short + " @") for t in targets) > 1

    # the front: the calibration front's members and committees at their evaluation figures, cheapest first
    positions = {p["name"]: (split_value(p["macs_mean"]), split_value(p["metric"]))
                 for p in result["members"] + result["points"]}
    expected = sorted((positions[n] for n in result["front"]), key=lambda xy: xy[0])
    fronts = [line for line in info["ax"].lines if line.get_linestyle() == "--"]
    assert len(fronts) == 1
    assert fronts[0].get_xydata().ravel().tolist() == pytest.approx([v for xy in expected for v in xy])


def test_digits_front_falls_back_to_pareto_points(digits_result):
    result = copy.deepcopy(digits_result)
    result.pop("front", None)
    result.pop("dataset_title", None)
    fig, info = render_result(result)
    assert overlap_problems(fig) == []
    assert info["title"][0].get_text().startswith(f"{result['dataset']}:")
    fronts = [line for line in info["ax"].lines if line.get_linestyle() == "--"]
    pareto = sorted((p["macs_mean"]["evaluation"], p["metric"]["evaluation"]) for p in result["points"] if p["pareto"])
    if len(pareto) > 1:
        assert fronts[0].get_xydata().ravel().tolist() == pytest.approx([v for xy in pareto for v in xy])


# ---------------------------------------------------------------- hand-made results

@pytest.mark.parametrize("case", list(CASES))
def test_no_text_overlaps(case):
    result = CASES[case]()
    fig, info = render_result(result)
    assert overlap_problems(fig) == []
    if case in ("cifar", "segmentation"):
        assert arrow_crossings(fig, info) == []
    labelled = set(info["names"])
    assert {p["name"] for p in result["points"] if p["kind"] == "ensemble"} <= labelled
    assert {a["target"] for a in info["arrows"]} <= labelled
    texts = [t.get_text() for t in info["labels"]]
    for text in texts:  # thresholds only where cascades of the same members need them apart
        short, at, _ = text.partition(" @")
        assert "@" not in short and (not at or sum(t.startswith(short + " @") for t in texts) > 1)


def test_crowded_labels_and_bounds():
    result = crowded_result()
    fig, info = render_result(result)
    names = {n: t.get_text() for n, t in info["names"].items()}
    assert names["ensemble(effnet_b0+effnet_b1+effnet_b2+effnet_b3)"] == "b0+b1+b2+b3"
    assert names["effnet_b3"] == "effnet_b3"
    assert len(info["arrows"]) >= 6 and any(a["miss"] for a in info["arrows"])
    worst = crowded_result(("resnet20", "resnet32", "resnet44", "resnet56"), worst_case=True)
    fig, info = render_result(worst)
    assert info["names"]["ensemble(resnet20+resnet32)"].get_text() == "resnet20+resnet32"
    cost = [a for a in info["arrows"] if "similar_cost" in a["groups"]]
    assert cost and all("worst-case MACs" in a["label"].get_text() for a in cost)
    assert any("worst-case MACs" in t.get_text() for t in info["legend"].get_texts())


def test_cascades_of_the_same_members_are_told_apart_by_their_thresholds():
    """Three stars were labelled resnet20>resnet32>resnet44 (thresholds left out): which was which?"""
    from committee_tasks.reporting.plots import _distinct_labels

    pool = ["resnet20", "resnet32", "resnet44", "resnet56"]
    names = ["cascade(resnet20>resnet32>resnet44)@0.7686575,0.45251465",
             "cascade(resnet20>resnet32>resnet44)@0.7686575,0.54974365",
             "cascade(resnet20>resnet32>resnet44)@0.9396587,0.45251465",
             "cascade(resnet20>resnet56)@0.901,inf", "cascade(resnet20>resnet56)@0.9049,inf",
             "cascade(resnet32>resnet56)@0.9", "ensemble(resnet20+resnet56)"]
    labels = _distinct_labels({n: committee_label(n, pool) for n in names})
    assert list(labels.values()) == [
        "resnet20>resnet32>resnet44 @0.77,0.45", "resnet20>resnet32>resnet44 @0.77,0.55",
        "resnet20>resnet32>resnet44 @0.94,0.45", "resnet20>resnet56 @0.901,inf", "resnet20>resnet56 @0.905,inf",
        "resnet32>resnet56", "resnet20+resnet56"]  # alone: still no thresholds
    crowded = crowded_result()  # b0>b1 twice, at 0.90 and 0.79
    fig, info = render_result(crowded)
    twice = [t.get_text() for n, t in info["names"].items() if n.startswith("cascade(effnet_b0>effnet_b1)@")]
    assert sorted(twice) == ["b0>b1 @0.79,0.8", "b0>b1 @0.9,0.8"] and overlap_problems(fig) == []


def test_the_metric_axis_names_its_unit():
    result = crowded_result()
    assert render_result(result)[0].axes[0].get_ylabel() == "top-1 (evaluation split)"  # a file without the unit
    result["metric_unit"] = "%"
    assert render_result(result)[0].axes[0].get_ylabel() == "top-1 (%, evaluation split)"


def test_plot_is_a_readable_png(tmp_path):
    """Moved from tests/test_reports.py: the PNG, its file name, the atomic write, pareto_front."""
    import matplotlib.image

    results = [_current(classification_result()), _current(segmentation_result())]
    path = plot_result(results[0], tmp_path / plot_filename(results[0]))
    assert path == tmp_path / "classification-cifar10-test.png"
    data = path.read_bytes()
    assert len(data) > 10_000 and data[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    height, width = image.shape[:2]
    assert 600 <= height <= 2000 and 800 <= width <= 2500
    assert image[..., :3].std() > 0.05  # something is drawn
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file
    # a reference without a committee at similar accuracy, dataset names needing no escaping
    assert plot_result(results[1], tmp_path / "seg.png").stat().st_size > 10_000
    assert plot_filename({"task": "seg", "dataset": "a/b c"}) == "seg-a_b_c.png"
    front = pareto_front([(1, 90, "a"), (2, 89, "b"), (2, 92, "c"), (3, 92, "d"), (4, 95, "e")])
    assert [p[2] for p in front] == ["a", "c", "e"]


def test_the_log_axis_says_so_reads_within_a_decade_and_arrows_lie_above_the_model_line():
    """A CamVid figure (1.34G..5.9G) had ticks at 2G, 3G, 4G, 6G only, read as linear, and an arrow
    between two models of equal MACs hidden under the single models' line."""
    from matplotlib.patches import FancyArrowPatch

    result = crowded_result()
    fig, info = render_result(result)
    ax = fig.axes[0]
    assert "log scale" in ax.get_xlabel()
    fig.canvas.draw()
    labelled = [t.get_loc() for t in ax.xaxis.get_minor_ticks() + ax.xaxis.get_major_ticks()
                if t.label1.get_visible() and t.label1.get_text() and ax.get_xlim()[0] <= t.get_loc() <= ax.get_xlim()[1]]
    cheapest = min(m["macs_mean"] for m in result["members"])
    assert any(cheapest / 1.3 <= x <= cheapest * 1.3 for x in labelled), labelled
    model_line = max(line.get_zorder() for line in ax.get_lines() if line.get_marker() == "o")
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert arrows and all(p.get_zorder() > model_line for p in arrows)
