"""The paper's figure for one search result: metric vs mean MACs of single models and committees.

Single models are a line (cheapest first), ensembles squares, cascades stars; the Pareto front is
a dashed step (the best metric reachable within each MACs budget); arrows go from each reference
model to its committee at similar accuracy (solid: same metric, fewer MACs) and at similar cost
(dashed: same MACs, better metric). Everything is drawn on evaluation-split figures.

matplotlib is used through its Agg canvas directly (no pyplot): no display, no global state.
"""
from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any, Mapping

from .cache import atomic_write
from .errors import CommitteeError
from .tables import split_value, validate_result

MEMBER_COLOR, ENSEMBLE_COLOR, CASCADE_COLOR = "#1f77b4", "#ff7f0e", "#2ca02c"
ACCURACY_ARROW, COST_ARROW, FRONT_COLOR = "#d62728", "#9467bd", "0.25"


def plot_filename(result: Mapping[str, Any]) -> str:
    """`<task>-<dataset>.png`, with anything unsafe in a file name replaced by `_`."""
    stem = f"{result['task']}-{result['dataset']}"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", stem) + ".png"


def _xy(item: Mapping[str, Any]) -> tuple[float | None, float | None]:
    return split_value(item["macs_mean"]), split_value(item["metric"])


def _plottable(x: float | None, y: float | None) -> bool:
    # a log axis cannot place zero or negative MACs; NaN figures have no place at all
    return x is not None and y is not None and math.isfinite(x) and math.isfinite(y) and x > 0


def pareto_front(items: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The (MACs, metric, name) points no other point beats on both: cheapest first, metric rising."""
    front: list[tuple[float, float, str]] = []
    for x, y, name in sorted(items, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y, name))
    return front


def _macs_ticks(value: float, _pos=None) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:g}{unit}"
    return f"{value:g}"


def _figure():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise CommitteeError("plots need matplotlib: `.venv/bin/pip install matplotlib`, or leave png out of "
                             "--formats") from err
    fig = Figure(figsize=(8, 5.6), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _arrow_text(ax, start, end, text: str, color: str) -> None:
    """`text` beside the arrow's middle on the side facing up, its box wholly on that side (the corner
    nearest the shaft anchored): placed in display coordinates, so call it once limits and layout are final."""
    (x0, y0), (x1, y1) = ax.transData.transform([start, end])
    length = math.hypot(x1 - x0, y1 - y0) or 1.0
    nx, ny = -(y1 - y0) / length, (x1 - x0) / length
    if ny < 0 or (ny == 0 and nx < 0):
        nx, ny = -nx, -ny
    mid = ax.transData.inverted().transform(((x0 + x1) / 2, (y0 + y1) / 2))
    ax.annotate(text, mid, xytext=(5 * nx, 5 * ny), textcoords="offset points", fontsize=7.5, color=color,
                fontweight="bold", zorder=6, ha="center" if abs(nx) < 0.1 else "left" if nx > 0 else "right",
                va="bottom" if ny > 0.1 else "center",
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))


def _fit_labels(fig, ax, labels) -> None:
    """Widen the x range (log) until every model name right of its point ends inside the axes."""
    fig.canvas.draw()  # settles the layout: text extents and the axes box are final from here
    renderer = fig.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    lo, hi = (math.log(v) for v in ax.get_xlim())
    need = hi
    for text in labels:
        over = text.get_window_extent(renderer).x1 - box.x1 + 4
        if over > 0:
            # keep the point's log-x, grow the range so its label's pixels fit: W(lx-lo)/(H-lo) + w <= W
            px = ax.transData.transform((text.xy[0], 0))[0] - box.x0
            width = text.get_window_extent(renderer).x1 - box.x0 - px + 4
            if width < box.width:
                need = max(need, lo + box.width * (math.log(text.xy[0]) - lo) / (box.width - width))
    if need > hi:
        ax.set_xlim(math.exp(lo), math.exp(need))


def plot_result(result: Mapping[str, Any], path: str | Path) -> Path:
    """Draw one search result's figure into the PNG at `path` (written atomically); return the path."""
    validate_result(result, str(path))
    fig = _figure()
    ax = fig.add_subplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    members = sorted(((*_xy(m), m["name"]) for m in result["members"] if _plottable(*_xy(m))),
                     key=lambda p: p[0])
    points = [(*_xy(p), p["name"], p["kind"]) for p in result["points"] if _plottable(*_xy(p))]
    ensembles = [p for p in points if p[3] == "ensemble"]
    cascades = [p for p in points if p[3] != "ensemble"]

    names = []
    front = pareto_front([p[:3] for p in members + points])
    if len(front) > 1:
        fx, fy = [p[0] for p in front], [p[1] for p in front]
        ax.step(fx, fy, where="post", color=FRONT_COLOR, linestyle="--", lw=1.2, zorder=1,
                label="Pareto front (evaluation)")
    if ensembles:
        ax.scatter([p[0] for p in ensembles], [p[1] for p in ensembles], marker="s", s=40, color=ENSEMBLE_COLOR,
                   alpha=0.75, edgecolors="white", linewidths=0.5, zorder=2, label="ensembles")
    if cascades:
        ax.scatter([p[0] for p in cascades], [p[1] for p in cascades], marker="*", s=110, color=CASCADE_COLOR,
                   edgecolors="black", linewidths=0.4, zorder=3, label="cascades")
    if members:
        ax.plot([p[0] for p in members], [p[1] for p in members], "-o", color=MEMBER_COLOR, ms=6, lw=1.6,
                zorder=5, label="single models")
        for x, y, name in members:
            names.append(ax.annotate(name, (x, y), xytext=(6, -11), textcoords="offset points", fontsize=8,
                                     color=MEMBER_COLOR, zorder=6,
                                     bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.7)))

    metric = result["metric_name"]
    arrows: list[tuple] = []
    by_name = {m[2]: m for m in members}
    for ref in result["references"]:
        start = by_name.get(ref["reference"])
        start = start[:2] if start else _xy(ref)
        if not _plottable(*start):
            continue
        acc, cost = ref.get("similar_accuracy"), ref.get("similar_cost")
        texts = {}
        if acc and acc.get("speedup"):
            s = acc["speedup"]
            texts["similar_accuracy"] = f"{s:.2f}x fewer MACs" if s >= 1 else f"{1 / s:.2f}x more MACs"
        if cost and cost.get("delta") is not None:
            texts["similar_cost"] = f"{cost['delta']:+.2f} {metric}"
        if acc and cost and acc["name"] == cost["name"]:  # one committee answers both: one arrow, both texts
            texts["similar_accuracy"] = "\n".join(texts.values())
            cost = None
        for group, c, color, style in (("similar_accuracy", acc, ACCURACY_ARROW, "-"),
                                       ("similar_cost", cost, COST_ARROW, "--")):
            if c and _plottable(*_xy(c)):
                ax.annotate("", xy=_xy(c), xytext=start, zorder=4,
                            arrowprops=dict(arrowstyle="-|>,head_length=0.6,head_width=0.3", color=color, lw=1.6,
                                            linestyle=style, shrinkA=5, shrinkB=7))
                arrows.append((group, start, _xy(c), texts.get(group, ""), color))

    ax.set_xscale("log")
    ticks = FuncFormatter(_macs_ticks)
    ax.xaxis.set_major_formatter(ticks)
    xs = [p[0] for p in members + points]
    if xs and max(xs) / min(xs) < 30:  # under ~1.5 decades the decade ticks alone are too few
        ax.xaxis.set_minor_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 4.0, 6.0)))
        ax.xaxis.set_minor_formatter(ticks)
    else:
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="both", which="both", labelsize=8.5)
    ax.margins(x=0.06, y=0.06)
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", axis="x", alpha=0.15)
    ax.set_xlabel("mean MACs per sample (multiply-adds)")
    ax.set_ylabel(f"{metric} (evaluation split)")
    split = result.get("split") or {}
    n = split.get("evaluation")
    ax.set_title(f"{result['task']} on {result['dataset']}" + (f" ({n:,} evaluation samples)" if n else ""))

    handles, labels = ax.get_legend_handles_labels()
    groups = {a[0] for a in arrows}
    if "similar_accuracy" in groups:
        handles.append(Line2D([], [], color=ACCURACY_ARROW, lw=1.6, marker=">", markevery=[1], ms=6))
        labels.append("committee at similar accuracy")
    if "similar_cost" in groups:
        handles.append(Line2D([], [], color=COST_ARROW, lw=1.6, ls="--", marker=">", markevery=[1], ms=6))
        labels.append("committee at similar cost")
    if handles:
        ax.legend(handles, labels, loc="lower right", fontsize=8, framealpha=0.9)
    _fit_labels(fig, ax, names)
    for _, start, end, text, color in arrows:
        if text:
            _arrow_text(ax, start, end, text, color)

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    path = Path(path)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path
