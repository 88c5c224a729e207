"""The paper's figure for one search result: metric vs mean MACs of single models and committees.

Every point, line and arrow is drawn at its evaluation-split figures (the thresholds were fitted on
the calibration split, whose figures flatter the committees). Single models are a line (cheapest
first), ensembles squares, cascades stars. The Pareto front is the one chosen on the calibration
split (`result["front"]`, members included), drawn dashed through its points' evaluation figures.
Arrows go from each reference model to its committee at similar accuracy (the cheapest one matching
the model's metric on the calibration split: solid where it matches on the evaluation split too,
dotted where it misses, saying by how much) and at similar cost (the most accurate one within the
model's mean MACs, or worst-case MACs with `--worst-case`, on the calibration split: dashed). Every
arrow's label gives the MACs ratio and the metric difference on the evaluation split.

Labels use short names (the members' common prefix up to a separator dropped, no thresholds unless
cascades of the same members need them apart). Every
text - labels, title, legend - is placed so that no two overlap, none covers a marker and all stay
inside the figure: a deterministic greedy search over candidate positions in display space, widening
the axes when a label finds no room (`render_result`; tests/test_plots.py checks the rendered boxes).

matplotlib is used through its Agg canvas directly (no pyplot): no display, no global state.
"""
from __future__ import annotations

import io
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from committee_tasks.core.files import atomic_write
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.provenance import short_line, toolkit_version
from committee_tasks.reporting.search_tables import split_value, validate_result

MEMBER_COLOR, ENSEMBLE_COLOR, CASCADE_COLOR = "#1f77b4", "#ff7f0e", "#2ca02c"
ENSEMBLE_TEXT, CASCADE_TEXT = "#a65200", "#17701a"  # the marker colours, dark enough for small text
ACCURACY_ARROW, COST_ARROW, FRONT_COLOR = "#d62728", "#9467bd", "0.25"
SEPARATORS = "_.-"
MINUS = "\u2212"

FIGSIZE, DPI = (8.0, 6.4), 150
MEMBER_MS = 6.0  # marker diameters in points (line markers), scatter areas in points^2
ENSEMBLE_S, CASCADE_S = 40.0, 110.0
ENSEMBLE_EDGE, CASCADE_EDGE = 0.5, 0.4
MARGINS = (0.07, 0.14, 0.24, 0.38)  # axes margins (fraction of the data range) tried in turn
TEXT_GAP, MARKER_GAP = 3.0, 2.0  # pixels kept clear between texts, and between a text and a marker
EDGE_GAP = 3.0  # pixels between a label and the axes frame
ARROW_WEIGHT, LINE_WEIGHT, LEADER_WEIGHT = 150.0, 25.0, 10.0  # cost (pixels) of a label over a line
AMBIGUITY_WEIGHT = 40.0  # cost (pixels) of a label as near another marker as its own
MAX_ENSEMBLE_LABELS = 24  # beyond this many ensembles only those on the front are named


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


# ---------------------------------------------------------------- names

def member_prefix(names: Sequence[str]) -> str:
    """The longest common prefix of `names` that ends at a separator (`_`, `.`, `-`), or "" where
    dropping it would leave some name empty: digits_cnn_s/m/l -> "digits_cnn_", resnet20/56 -> ""."""
    names = list(names)
    if not names:
        return ""
    common = os.path.commonprefix(names)
    prefix = common[:max(common.rfind(s) for s in SEPARATORS) + 1]
    if not prefix or any(len(n) <= len(prefix) for n in names):
        return ""
    return prefix


def short_name(name: str, prefix: str) -> str:
    return name[len(prefix):] if prefix and name.startswith(prefix) and len(name) > len(prefix) else name


_COMMITTEE = re.compile(r"^(?P<kind>[A-Za-z_]\w*)\((?P<inner>.*)\)(?:@[^()]*)?$")


def _split_members(inner: str, joiner: str, pool: Sequence[str]) -> list[str]:
    """The member names of `a+b` / `a>b`, matching pool names first (a name may contain the joiner)."""
    names, rest = [], inner
    by_length = sorted(pool, key=len, reverse=True)
    while rest:
        match = next((n for n in by_length if rest == n or rest.startswith(n + joiner)), None)
        if match is None:
            return inner.split(joiner)
        names.append(match)
        rest = rest[len(match) + 1:]
    return names


def committee_label(name: str, pool: Sequence[str], members: Sequence[str] | None = None,
                    kind: str | None = None) -> str:
    """A committee's short plot label: its members' short names joined by `+` (ensemble) or `>`
    (cascade), thresholds left out: cascade(digits_cnn_s>digits_cnn_m)@0.58 -> s>m. A name that is
    not a committee (a single model) is returned whole."""
    match = _COMMITTEE.match(name)
    if match is None and not members:
        return name
    kind = kind or (match["kind"] if match else "cascade")
    joiner = "+" if kind == "ensemble" else ">"
    if not members:
        members = _split_members(match["inner"], joiner, pool)
    prefix = member_prefix(pool)
    return joiner.join(short_name(m, prefix) for m in members)


def _distinct_labels(labels: dict[str, str]) -> dict[str, str]:
    """Labels by committee name, where cascades of the same members (one label without thresholds)
    get their thresholds, at the fewest decimals that tell them apart: three stars labelled
    20>32>44 named three committees."""
    by_text: dict[str, list[str]] = {}
    for name, text in labels.items():
        by_text.setdefault(text, []).append(name)
    out = dict(labels)
    for text, names in by_text.items():
        thresholds = {n: _THRESHOLDS.search(n) for n in names}
        if len(names) < 2 or not all(thresholds.values()):
            continue
        values = {n: [float(t) for t in m[1].split(",")] for n, m in thresholds.items()}
        for decimals in range(2, 9):
            shown = {n: ",".join(_threshold_label(v, decimals) for v in vs) for n, vs in values.items()}
            if len(set(shown.values())) == len(names) or decimals == 8:
                break
        out.update({n: f"{text} @{shown[n]}" for n in names})
    return out


_THRESHOLDS = re.compile(r"\)@([^ \]]+)$")


def _threshold_label(value: float, decimals: int) -> str:
    if not math.isfinite(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".") or "0"


# ---------------------------------------------------------------- what to draw

def _number(value: float) -> str:
    """A metric difference's size: 2 decimals, 3 where 2 would round a real difference to 0.00."""
    value = abs(value)
    return f"{value:.3f}" if 1e-9 < value < 0.005 else f"{value:.2f}"


def _signed(value: float) -> str:
    return (MINUS if value < -1e-9 else "+") + _number(value)


def _ratio(value: float) -> str:
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def _arrows(result: Mapping[str, Any], positions: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """One arrow per reference and committee (one for both picks where they are the same committee),
    with its label: MACs ratio and metric difference on the evaluation split, and what it is."""
    metric = result["metric_name"]
    bound = "worst-case MACs" if result.get("worst_case") else "mean MACs"
    arrows = []
    for ref in result["references"]:
        name = ref["reference"]
        start = positions.get(name) or _xy(ref)
        if not _plottable(*start):
            continue
        rx, ry = start
        picks = {}
        for group in ("similar_accuracy", "similar_cost"):
            c = ref.get(group)
            if c and _plottable(*_xy(c)):
                picks.setdefault(c["name"], (c, []))[1].append(group)
        for target, (c, groups) in picks.items():
            cx, cy = _xy(c)
            delta = cy - ry
            miss = "similar_accuracy" in groups and delta < -1e-9
            change = f"{_signed(delta)} {metric}"
            if "similar_accuracy" in groups:
                speedup = rx / cx
                cost = f"{_ratio(speedup)} fewer MACs" if speedup >= 1 else f"{_ratio(1 / speedup)} more MACs"
                notes = [f"misses {name} by {_number(delta)}"] if miss else []
                if "similar_cost" in groups:
                    notes.append(f"also the best \u2264 its {bound}")
                variants = [[f"{cost}, {change}", *notes], [f"{cost},", change, *notes]]
            else:
                variants = [[f"\u2264 {name}'s {bound}:", f"{change} at {_ratio(cx / rx)} its MACs"],
                            [f"\u2264 {name}'s {bound}:", f"{change}", f"at {_ratio(cx / rx)} its MACs"]]
            accuracy = "similar_accuracy" in groups
            arrows.append({"reference": name, "target": target, "groups": groups, "miss": miss,
                           "start": (rx, ry), "end": (cx, cy), "delta": delta, "ratio": rx / cx,
                           "color": ACCURACY_ARROW if accuracy else COST_ARROW,
                           "linestyle": (":" if miss else "-") if accuracy else "--",
                           "variants": ["\n".join(v) for v in variants]})
    return arrows


def _title(result: Mapping[str, Any]) -> tuple[str, str | None]:
    dataset = result.get("dataset_title") or result["dataset"]
    metric = result["metric_name"]
    split = result.get("split") or {}
    n_eval, n_cal = split.get("evaluation"), split.get("calibration")
    where = f"the {n_eval:,}-sample evaluation split" if n_eval else "the evaluation split"
    second = (f"thresholds fitted on the other {n_cal:,} samples (calibration split); every point, line and arrow "
              "at evaluation-split figures" if n_cal else
              "thresholds fitted on a separate calibration split; every point, line and arrow at evaluation-split "
              "figures")
    from committee_tasks.reporting.search_tables import search_settings

    settings = search_settings(result)  # a greedy, worst-case or any-order search says so
    return f"{dataset}: {metric} vs MACs on {where}", (f"{settings}; {second}" if settings else second)


def _plan(result: Mapping[str, Any]) -> dict[str, Any]:
    pool = [m["name"] for m in result["members"]]
    members = sorted(({"name": m["name"], "xy": _xy(m)} for m in result["members"] if _plottable(*_xy(m))),
                     key=lambda m: m["xy"][0])
    points = [{"name": p["name"], "kind": p["kind"], "members": p.get("members"), "xy": _xy(p)}
              for p in result["points"] if _plottable(*_xy(p))]
    positions = {m["name"]: m["xy"] for m in members}
    for p in points:
        positions.setdefault(p["name"], p["xy"])
    arrows = _arrows(result, positions)
    for a in arrows:  # a committee only the references name still gets its marker
        if a["target"] not in positions:
            kind = "ensemble" if a["target"].startswith("ensemble(") else "cascade"
            points.append({"name": a["target"], "kind": kind, "members": None, "xy": a["end"]})
            positions[a["target"]] = a["end"]
    if result.get("front") is not None:
        front_names = [n for n in result["front"] if n in positions]
    else:
        front_names = [p["name"] for p in result["points"] if p.get("pareto") and p["name"] in positions]
    front = sorted((positions[n] for n in dict.fromkeys(front_names)), key=lambda xy: xy[0])
    kinds = {p["name"]: p for p in points}
    member_names = {m["name"] for m in members}
    labels = [{"text": m["name"], "point": m["xy"], "kind": "member", "name": m["name"]} for m in members]
    named = list(dict.fromkeys(a["target"] for a in arrows if a["target"] not in member_names))
    ensembles = [p["name"] for p in points if p["kind"] == "ensemble" and p["name"] not in named]
    unnamed = 0
    if len(ensembles) > MAX_ENSEMBLE_LABELS:  # a big pool's hundreds of ensembles: name those on the front
        on_front = set(front_names)
        unnamed = sum(n not in on_front for n in ensembles)
        ensembles = [n for n in ensembles if n in on_front]
    named += sorted(ensembles, key=lambda n: positions[n][0])
    texts = _distinct_labels({n: committee_label(n, pool, kinds[n]["members"], kinds[n]["kind"]) for n in named})
    for n in named:
        p = kinds[n]
        labels.append({"text": texts[n], "point": p["xy"],
                       "kind": "ensemble" if p["kind"] == "ensemble" else "cascade", "name": n})
    return {"result": result, "members": members, "points": points, "front": front, "arrows": arrows,
            "labels": labels, "title": _title(result), "unnamed_ensembles": unnamed}


# ---------------------------------------------------------------- geometry (display pixels)

def _overlapping(boxes: np.ndarray, obstacles: np.ndarray, gap: float) -> np.ndarray:
    """For each candidate box (K x 4: x0, y0, x1, y1) whether it comes within `gap` of any obstacle."""
    if not len(obstacles) or not len(boxes):
        return np.zeros(len(boxes), dtype=bool)
    b, o = boxes[:, None, :], obstacles[None, :, :]
    return ((b[..., 0] - gap < o[..., 2]) & (b[..., 2] + gap > o[..., 0]) &
            (b[..., 1] - gap < o[..., 3]) & (b[..., 3] + gap > o[..., 1])).any(axis=1)


def _box_distance(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """K x N distances from each box to each point (0 inside)."""
    px, py = points[None, :, 0], points[None, :, 1]
    dx = np.maximum(np.maximum(boxes[:, None, 0] - px, px - boxes[:, None, 2]), 0)
    dy = np.maximum(np.maximum(boxes[:, None, 1] - py, py - boxes[:, None, 3]), 0)
    return np.hypot(dx, dy)


def _sample(points: Sequence[Sequence[float]], step: float = 2.5) -> np.ndarray:
    """Points every `step` pixels along a polyline."""
    out = []
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        n = max(2, int(math.hypot(x1 - x0, y1 - y0) / step) + 1)
        t = np.linspace(0, 1, n)[:, None]
        out.append(np.array([x0, y0]) * (1 - t) + np.array([x1, y1]) * t)
    return np.concatenate(out) if out else np.zeros((0, 2))


def _grid(x0: float, y0: float, x1: float, y1: float, w: float, h: float, step: float) -> np.ndarray:
    xs, ys = np.arange(x0, x1 - w + 1e-9, step), np.arange(y0, y1 - h + 1e-9, step)
    if not len(xs) or not len(ys):
        return np.zeros((0, 2))
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel()])


def _point_ring(cx: float, cy: float, r: float, w: float, h: float) -> np.ndarray:
    """Lower-left corners of boxes beside a marker: E, W, N, S and the diagonals, close then further."""
    out = []
    for g in (2.5, 6.0):
        d = 0.75 * r + g
        out += [(cx + r + g, cy - h / 2), (cx - r - g - w, cy - h / 2), (cx - w / 2, cy + r + g),
                (cx - w / 2, cy - r - g - h), (cx + d, cy + d), (cx - d - w, cy + d), (cx + d, cy - d - h),
                (cx - d - w, cy - d - h), (cx + r + g, cy - 0.15 * h), (cx + r + g, cy - 0.85 * h),
                (cx - r - g - w, cy - 0.15 * h), (cx - r - g - w, cy - 0.85 * h)]
    return np.array(out)


def _segment_ring(p0: np.ndarray, p1: np.ndarray, w: float, h: float) -> np.ndarray:
    """Lower-left corners of boxes beside a shaft's middle, the corner nearest the shaft at the shaft."""
    d = p1 - p0
    length = float(np.hypot(*d)) or 1.0
    normal = np.array([-d[1], d[0]]) / length
    out = []
    for t in (0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74):
        for side in (1, -1):
            nx, ny = normal * side
            qx, qy = p0 + t * d + np.array([nx, ny]) * 5.0
            x0 = qx - w / 2 if abs(nx) < 0.15 else qx if nx > 0 else qx - w
            y0 = qy - h / 2 if abs(ny) < 0.15 else qy if ny > 0 else qy - h
            out.append((x0, y0))
    return np.array(out)


class _Placer:
    """Greedy label placement: hard obstacles (texts, markers, the axes frame) must stay clear; lines
    (arrows, the model line, the front, leaders) are soft, each crossing costing pixels of distance.
    Each line is rasterised into a summed-area table (CELL-pixel cells), so whether a box crosses it
    is four look-ups, for every candidate box at once."""

    CELL = 2.0

    def __init__(self, axbox, markers: np.ndarray, size: tuple[float, float]):
        self.frame = (axbox.x0 + EDGE_GAP, axbox.y0 + EDGE_GAP, axbox.x1 - EDGE_GAP, axbox.y1 - EDGE_GAP)
        self.markers = markers  # M x 4 boxes
        self.texts = np.zeros((0, 4))
        self.shape = (int(size[1] / self.CELL) + 2, int(size[0] / self.CELL) + 2)
        self.lines: list[tuple[float, np.ndarray]] = []

    def add_line(self, points, weight: float) -> None:
        samples = _sample(points, self.CELL / 2)
        if not len(samples):
            return
        raster = np.zeros(self.shape, dtype=np.int32)
        ix = np.clip((samples[:, 0] / self.CELL).astype(int), 0, self.shape[1] - 1)
        iy = np.clip((samples[:, 1] / self.CELL).astype(int), 0, self.shape[0] - 1)
        raster[iy, ix] = 1
        table = np.zeros((self.shape[0] + 1, self.shape[1] + 1), dtype=np.int32)
        table[1:, 1:] = raster.cumsum(0).cumsum(1)
        self.lines.append((weight, table))

    def _candidates(self, corners: np.ndarray, w: float, h: float) -> np.ndarray:
        boxes = np.column_stack([corners[:, 0], corners[:, 1], corners[:, 0] + w, corners[:, 1] + h])
        x0, y0, x1, y1 = self.frame
        inside = (boxes[:, 0] >= x0) & (boxes[:, 1] >= y0) & (boxes[:, 2] <= x1) & (boxes[:, 3] <= y1)
        boxes = boxes[inside]
        free = ~_overlapping(boxes, self.texts, TEXT_GAP) & ~_overlapping(boxes, self.markers, MARKER_GAP)
        return boxes[free]

    def _penalty(self, boxes: np.ndarray) -> np.ndarray:
        penalty = np.zeros(len(boxes))
        if not len(boxes):
            return penalty
        c = self.CELL  # the cells the box touches
        x0 = np.clip(np.floor(boxes[:, 0] / c).astype(int), 0, self.shape[1])
        y0 = np.clip(np.floor(boxes[:, 1] / c).astype(int), 0, self.shape[0])
        x1 = np.clip(np.ceil(boxes[:, 2] / c).astype(int), 0, self.shape[1])
        y1 = np.clip(np.ceil(boxes[:, 3] / c).astype(int), 0, self.shape[0])
        for weight, t in self.lines:
            hits = t[y1, x1] - t[y0, x1] - t[y1, x0] + t[y0, x0]
            penalty += weight * (hits > 0)
        return penalty

    def place(self, w: float, h: float, ring: np.ndarray, window: tuple[float, float, float, float], cost):
        """The best free box (x0, y0, x1, y1) for a w x h label and its cost, or None where nothing is free:
        `ring` corners first (a small bonus), then a grid over `window`, then over the whole axes."""
        fx0, fy0, fx1, fy1 = self.frame
        wx0, wy0, wx1, wy1 = max(window[0], fx0), max(window[1], fy0), min(window[2], fx1), min(window[3], fy1)
        near = self._candidates(ring, w, h)
        for corners in (_grid(wx0, wy0, wx1, wy1, w, h, 4.0), _grid(*self.frame, w, h, 6.0)):
            boxes = np.concatenate([near, self._candidates(corners, w, h)])
            n_ring = len(near)
            if not len(boxes):
                continue
            total = cost(boxes) - np.where(np.arange(len(boxes)) < n_ring, 1.5, 0.0) + self._penalty(boxes)
            best = int(np.argmin(total))
            return boxes[best], float(total[best])
        return None

    def fallback(self, w: float, h: float, anchor: tuple[float, float]) -> np.ndarray:
        """Nothing free (the last margin tried): the box nearest the anchor, inside the frame."""
        x0, y0, x1, y1 = self.frame
        bx = min(max(anchor[0] + 4, x0), max(x0, x1 - w))
        by = min(max(anchor[1] + 4, y0), max(y0, y1 - h))
        return np.array([bx, by, bx + w, by + h])

    def take(self, box: np.ndarray) -> None:
        self.texts = np.vstack([self.texts, box[None, :]])


# ---------------------------------------------------------------- the figure

def _figure():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise CommitteeError("plots need matplotlib: `.venv/bin/pip install matplotlib`, or leave png out of "
                             "--formats") from err
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _fit_width(text, renderer, width: float, smallest: float) -> None:
    """Shrink a text's font until it is at most `width` pixels wide; wrap it at a space if even the
    smallest size is too wide."""
    while text.get_window_extent(renderer).width > width and text.get_fontsize() > smallest:
        text.set_fontsize(max(smallest, text.get_fontsize() - 0.5))
    words = text.get_text()
    if text.get_window_extent(renderer).width > width and " " in words:
        middle = len(words) // 2
        cut = min((i for i, ch in enumerate(words) if ch == " "), key=lambda i: abs(i - middle))
        text.set_text(words[:cut] + "\n" + words[cut + 1:])


def _legend_entries(plan: dict[str, Any]) -> tuple[list, list[str]]:
    from matplotlib.lines import Line2D

    result = plan["result"]
    metric = result["metric_name"]
    bound = "worst-case MACs" if result.get("worst_case") else "mean MACs"
    kinds = {p["kind"] == "ensemble" for p in plan["points"]}
    handles, labels = [], []
    if plan["members"]:
        handles.append(Line2D([], [], color=MEMBER_COLOR, marker="o", ms=MEMBER_MS, lw=1.6))
        labels.append("single models")
    if True in kinds:
        handles.append(Line2D([], [], ls="", marker="s", ms=math.sqrt(ENSEMBLE_S), color=ENSEMBLE_COLOR,
                              mec="white", mew=ENSEMBLE_EDGE))
        unnamed = plan["unnamed_ensembles"]
        labels.append(f"ensembles ({unnamed} off the front not named)" if unnamed else "ensembles")
    if False in kinds:
        handles.append(Line2D([], [], ls="", marker="*", ms=math.sqrt(CASCADE_S), color=CASCADE_COLOR,
                              mec="black", mew=CASCADE_EDGE))
        labels.append("cascades")
    if len(plan["front"]) > 1:
        handles.append(Line2D([], [], color=FRONT_COLOR, ls="--", lw=1.2))
        labels.append("Pareto front chosen on the calibration split")
    styles = {(a["color"], a["linestyle"]) for a in plan["arrows"]}
    worst = " (worst-case MACs \u2264 the model's)" if result.get("worst_case") else ""
    matching = f"similar accuracy: cheapest committee with \u2265 the model's {metric} on calibration{worst}"
    for color, style, text in (
            (ACCURACY_ARROW, "-", matching),
            (ACCURACY_ARROW, ":", "similar accuracy on calibration, below the model on evaluation"
             if (ACCURACY_ARROW, "-") in styles else f"{matching}, below it on evaluation"),
            (COST_ARROW, "--", f"similar cost: most accurate committee within the model's {bound} on calibration")):
        if (color, style) in styles:
            handles.append(Line2D([0, 1], [0, 0], color=color, lw=1.6, ls=style, marker=">", markevery=[1], ms=6))
            labels.append(text)
    return handles, labels


def _draw(plan: dict[str, Any], margin: float, last: bool):
    """The figure at one axes margin. A label with no free place raises _NoRoom, except at the `last`
    margin, where it goes to the nearest place inside the axes."""
    fig = _figure()
    ax = fig.add_axes((0.1, 0.25, 0.85, 0.62))
    _draw_data(ax, plan, margin)
    renderer = fig.canvas.get_renderer()
    title, legend = _frame(fig, ax, plan, renderer)
    # everything in display pixels from here: the axes box and limits are final
    markers, anchors = _marker_boxes(ax, plan)
    placer = _Placer(ax.get_window_extent(renderer), markers, (fig.bbox.width, fig.bbox.height))
    to_px = ax.transData.transform
    if len(plan["members"]) > 1:
        placer.add_line([to_px(m["xy"]) for m in plan["members"]], LINE_WEIGHT)
    if len(plan["front"]) > 1:
        placer.add_line([to_px(xy) for xy in plan["front"]], LINE_WEIGHT)
    arrows = _draw_arrows(ax, plan, anchors, placer)
    labels = _Labels(ax, renderer, placer, last)
    names = {label["name"]: labels.near_marker(label, anchors) for label in plan["labels"]}
    for arrow in arrows:
        arrow["label"] = labels.along_arrow(arrow)
    info = {"ax": ax, "labels": labels.texts, "names": names, "arrows": arrows, "title": title, "legend": legend,
            "margin": margin}
    return fig, info


ARROW_Z = 5.5  # above the single models' line, which an arrow between two models of equal MACs runs along


def _draw_data(ax, plan: dict[str, Any], margin: float) -> None:
    """Markers, the model line, the front, limits (the data with `margin` of its range each side, log
    x), ticks and axis labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    members, points = plan["members"], plan["points"]
    ensembles = [p["xy"] for p in points if p["kind"] == "ensemble"]
    cascades = [p["xy"] for p in points if p["kind"] != "ensemble"]
    if len(plan["front"]) > 1:
        ax.plot(*zip(*plan["front"]), color=FRONT_COLOR, ls="--", lw=1.2, zorder=1)
    if ensembles:
        ax.scatter(*zip(*ensembles), marker="s", s=ENSEMBLE_S, color=ENSEMBLE_COLOR, alpha=0.8,
                   edgecolors="white", linewidths=ENSEMBLE_EDGE, zorder=3)
    if cascades:
        ax.scatter(*zip(*cascades), marker="*", s=CASCADE_S, color=CASCADE_COLOR, edgecolors="black",
                   linewidths=CASCADE_EDGE, zorder=4)
    if members:
        ax.plot(*zip(*(m["xy"] for m in members)), "-o", color=MEMBER_COLOR, ms=MEMBER_MS, lw=1.6, zorder=5)
    ax.set_xscale("log")
    xy = [m["xy"] for m in members] + [p["xy"] for p in points]
    if xy:
        lx = [math.log10(x) for x, _ in xy]
        ys = [y for _, y in xy]
        span_x = (max(lx) - min(lx)) or 0.3
        span_y = (max(ys) - min(ys)) or max(1.0, abs(ys[0]) * 0.01)
        ax.set_xlim(10 ** (min(lx) - margin * span_x), 10 ** (max(lx) + margin * span_x))
        ax.set_ylim(min(ys) - margin * span_y, max(ys) + margin * span_y)
    ticks = FuncFormatter(_macs_ticks)
    ax.xaxis.set_major_formatter(ticks)
    xs = [x for x, _ in xy]
    if xs and max(xs) / min(xs) < 30:  # under ~1.5 decades the decade ticks alone are too few
        # within one decade, finer: a point between the labelled ticks is read off the log axis
        subs = (1.0, 2.0, 3.0, 4.0, 6.0) if max(xs) / min(xs) >= 8 else (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
        ax.xaxis.set_minor_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_minor_formatter(ticks)
    else:
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="both", which="both", labelsize=8.5)
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", axis="x", alpha=0.15)
    ax.set_xlabel("mean MACs per sample (multiply-adds, log scale)")
    unit = plan["result"].get("metric_unit")
    ax.set_ylabel(f"{plan['result']['metric_name']} ({f'{unit}, ' if unit else ''}evaluation split)")


def _frame(fig, ax, plan: dict[str, Any], renderer) -> tuple[list, Any]:
    """Title lines on top, the legend at the bottom, and the axes box fitted between them."""
    width, height = fig.bbox.width, fig.bbox.height
    pad = 8.0
    first, second = plan["title"]
    title = [fig.text(0.5, 1 - pad / height, first, ha="center", va="top", fontsize=11, fontweight="bold")]
    _fit_width(title[0], renderer, width - 2 * pad, 8.0)
    if second:
        below = title[0].get_window_extent(renderer).y0 - 3
        title.append(fig.text(0.5, below / height, second, ha="center", va="top", fontsize=8.5, color="0.3"))
        _fit_width(title[1], renderer, width - 2 * pad, 7.0)
    top = min(t.get_window_extent(renderer).y0 for t in title) - pad
    handles, labels = _legend_entries(plan)
    legend = None
    bottom = pad
    if handles:
        for ncols in (2, 1):
            if legend is not None:
                legend.remove()
            legend = fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, pad / height),
                                ncols=ncols, fontsize=7.5, framealpha=0.95, handlelength=2.6, columnspacing=1.5)
            if legend.get_window_extent(renderer).width <= width - 2 * pad:
                break
        bottom = legend.get_window_extent(renderer).y1 + pad
    for _ in range(3):
        box = ax.get_window_extent(renderer)
        xt, yt = ax.xaxis.get_tightbbox(renderer), ax.yaxis.get_tightbbox(renderer)
        left = pad + max(0.0, box.x0 - yt.x0)
        right = width - pad - max(0.0, xt.x1 - box.x1)
        low = bottom + max(0.0, box.y0 - xt.y0)
        high = top - max(0.0, yt.y1 - box.y1)
        ax.set_position(((left) / width, low / height, (right - left) / width, (high - low) / height))
    return title, legend


def _marker_boxes(ax, plan: dict[str, Any]) -> tuple[np.ndarray, dict[str, tuple[float, float, float]]]:
    """Every marker's display box (M x 4), and each name's marker centre and radius (pixels)."""
    to_px = ax.transData.transform
    px = ax.figure.dpi / 72
    markers, anchors = [], {}
    for m in plan["members"]:
        cx, cy = to_px(m["xy"])
        r = (MEMBER_MS / 2) * px
        markers.append((cx - r, cy - r, cx + r, cy + r))
        anchors[m["name"]] = (cx, cy, r)
    for p in plan["points"]:
        cx, cy = to_px(p["xy"])
        size, edge = (ENSEMBLE_S, ENSEMBLE_EDGE) if p["kind"] == "ensemble" else (CASCADE_S, CASCADE_EDGE)
        r = (math.sqrt(size) / 2 + edge / 2) * px
        markers.append((cx - r, cy - r, cx + r, cy + r))
        anchors.setdefault(p["name"], (cx, cy, r))
    return np.array(markers, dtype=float).reshape(-1, 4), anchors


def _draw_arrows(ax, plan: dict[str, Any], anchors, placer: _Placer) -> list[dict[str, Any]]:
    """Each arrow's shaft in its line style and a solid head (a dotted head's outline is a smudge),
    shortened to clear both markers; the shafts become soft obstacles of the placer."""
    from matplotlib.patches import FancyArrowPatch

    to_px = ax.transData.transform
    px = ax.figure.dpi / 72
    drawn = []
    for a in plan["arrows"]:
        start, end = np.array(to_px(a["start"])), np.array(to_px(a["end"]))
        d = end - start
        length = float(np.hypot(*d)) or 1.0
        r0 = anchors.get(a["reference"], (0, 0, 3 * px))[2] + 2 * px
        r1 = anchors.get(a["target"], (0, 0, 5 * px))[2] + 2 * px
        scale = min(1.0, 0.6 * length / (r0 + r1))  # a short arrow keeps 40% of its length
        shrink_a, shrink_b = r0 * scale / px, r1 * scale / px  # points
        visible = length - (r0 + r1) * scale
        head = min(12.0, visible / (1.2 * px))  # the head at most half of what is left
        head_px = 0.6 * head * px
        patch = FancyArrowPatch(a["start"], a["end"], arrowstyle="-", color=a["color"], lw=1.5,
                                linestyle=a["linestyle"], shrinkA=shrink_a, shrinkB=shrink_b + 0.8 * head_px / px,
                                zorder=ARROW_Z)
        ax.add_patch(patch)
        tail = ax.transData.inverted().transform(end - d / length * (shrink_b * px + 1.5 * head_px))
        ax.add_patch(FancyArrowPatch(tail, a["end"], arrowstyle="-|>,head_length=0.6,head_width=0.3",
                                     color=a["color"], lw=1.5, mutation_scale=head, shrinkA=0, shrinkB=shrink_b,
                                     zorder=ARROW_Z))
        shaft = (start + d / length * shrink_a * px, end - d / length * shrink_b * px)
        placer.add_line(shaft, ARROW_WEIGHT)
        drawn.append({**{k: a[k] for k in ("reference", "target", "groups", "miss", "delta", "ratio",
                                           "linestyle", "color", "variants")}, "patch": patch, "shaft": shaft})
    return drawn


class _Labels:
    """Places label texts with a `_Placer`, draws their leader lines, and keeps them (`texts`)."""

    STYLE = {"member": (MEMBER_COLOR, 8.0), "ensemble": (ENSEMBLE_TEXT, 7.0), "cascade": (CASCADE_TEXT, 7.5)}

    def __init__(self, ax, renderer, placer: _Placer, last: bool):
        self.ax, self.renderer, self.placer, self.last = ax, renderer, placer, last
        self.axbox = ax.get_window_extent(renderer)
        self.to_axes = ax.transAxes.inverted().transform
        self.texts: list = []

    def _make(self, text: str, color: str, fontsize: float):
        artist = self.ax.text(0, 0, text, transform=self.ax.transAxes, fontsize=fontsize, color=color, ha="left",
                              va="bottom", zorder=7, linespacing=1.15,
                              bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.75))
        extent = artist.get_window_extent(self.renderer)
        return artist, extent.width, extent.height, (extent.x0 - self.axbox.x0, extent.y0 - self.axbox.y0)

    def put(self, variants: Sequence[str], color: str, fontsize: float, ring, window, cost, anchor, leader_from):
        """Place the best of a label's wordings (the first preferred a little) and draw its leader."""
        from matplotlib.lines import Line2D

        found = []
        for i, text in enumerate(variants):
            artist, w, h, offset = self._make(text, color, fontsize)
            spot = self.placer.place(w, h, ring(w, h), window(w, h), cost)
            if spot is None:
                artist.remove()
            else:
                found.append((spot[1] + 4.0 * i, i, artist, spot[0], offset))
        if found:
            best = min(found, key=lambda f: f[:2])
            for f in found:
                if f is not best:
                    f[2].remove()
        else:
            if not self.last:
                raise _NoRoom(variants[0])
            artist, w, h, offset = self._make(variants[0], color, fontsize)
            best = (0.0, 0, artist, self.placer.fallback(w, h, anchor), offset)
        _, _, artist, box, offset = best
        artist.set_position(self.to_axes((box[0] - offset[0], box[1] - offset[1])))
        self.placer.take(box)
        start, gap = leader_from(box)
        if start is not None and gap:
            end = np.clip(start, box[:2], box[2:])
            self.ax.add_line(Line2D(*zip(*self.to_axes([start, end])), transform=self.ax.transAxes, color=color,
                                    lw=0.7, alpha=0.8, marker="None", zorder=6))
            self.placer.add_line([start, end], LEADER_WEIGHT)
        self.texts.append(artist)
        return artist

    def near_marker(self, label: dict[str, Any], anchors) -> Any:
        """A member's or committee's name beside its marker, never nearer another marker."""
        cx, cy, r = anchors[label["name"]]
        others = np.array([(x, y, rr) for x, y, rr in sorted(set(anchors.values())) if (x, y) != (cx, cy)])

        def cost(boxes):
            """Distance from the marker, and a penalty where another marker is as near (whose label is it?)."""
            own = np.maximum(_box_distance(boxes, np.array([[cx, cy]]))[:, 0] - r, 0)
            if not len(others):
                return own
            nearest = (_box_distance(boxes, others[:, :2]) - others[None, :, 2]).min(axis=1)
            return own + AMBIGUITY_WEIGHT * (nearest <= own + 4)

        def leader_from(box):
            near = np.clip((cx, cy), box[:2], box[2:])
            gap = math.hypot(near[0] - cx, near[1] - cy) - r
            if gap <= 8:
                return None, False
            unit = (near - (cx, cy)) / (gap + r)
            return np.array([cx, cy]) + unit * (r + 1.5), True

        color, size = self.STYLE[label["kind"]]
        return self.put([label["text"]], color, size, lambda w, h: _point_ring(cx, cy, r, w, h),
                        lambda w, h: (cx - 200 - w, cy - 160 - h, cx + 200 + w, cy + 160 + h), cost, (cx, cy),
                        leader_from)

    def along_arrow(self, arrow: dict[str, Any]) -> Any:
        """An arrow's label beside the middle of its shaft (a leader where it has to sit further away)."""
        p0, p1 = (np.asarray(p, dtype=float) for p in arrow["shaft"])
        samples = _sample([p0 + 0.2 * (p1 - p0), p0 + 0.8 * (p1 - p0)], 4.0)
        mid = (p0 + p1) / 2

        def cost(boxes):
            centres = np.column_stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2])
            return _box_distance(boxes, samples).min(axis=1) + 0.1 * np.hypot(*(centres - mid).T)

        def leader_from(box):
            dist = _box_distance(box[None, :], samples)[0]
            i = int(np.argmin(dist))
            return (samples[i], True) if dist[i] > 9 else (None, False)

        lo, hi = np.minimum(p0, p1), np.maximum(p0, p1)
        return self.put(arrow["variants"], arrow["color"], 7.5, lambda w, h: _segment_ring(p0, p1, w, h),
                        lambda w, h: (lo[0] - 150 - w, lo[1] - 120 - h, hi[0] + 150 + w, hi[1] + 120 + h),
                        cost, tuple(mid), leader_from)


class _NoRoom(Exception):
    """A label found no free place at this axes margin."""


def render_result(result: Mapping[str, Any], source: str = "<result>"):
    """Build one search result's figure without writing it: (figure, info).

    Reads (validated first; `source` names the file in errors) task, dataset, metric_name,
    members[].name/metric/macs_mean, points[].name/kind/metric/macs_mean and
    references[].reference/metric/macs_mean with similar_accuracy/similar_cost name/metric/macs_mean,
    every figure at its evaluation split (a plain number holds for both). Optional: dataset_title (else
    dataset), split.evaluation and split.calibration (the sample counts in the title), front (names
    cheapest first; else the points with pareto true), worst_case (which MACs bound "similar cost"
    means; else mean MACs), points[].members (else parsed from the name). The Δ and MACs ratios are
    recomputed from the evaluation figures, so similar_*.delta/speedup are not read.

    `info`: "ax"; "labels" (every placed label text); "names" (member or committee name -> its label);
    "arrows" (reference, target, groups, miss, delta, ratio, linestyle, color, variants: the wordings
    tried, label: the text drawn, patch: the shaft, shaft: its display end points); "title" (the title
    texts); "legend"; "margin" (the axes margin that gave every label a free place)."""
    validate_result(result, source)
    plan = _plan(result)
    for i, margin in enumerate(MARGINS):
        try:
            return _draw(plan, margin, last=i == len(MARGINS) - 1)
        except _NoRoom:
            continue
    raise AssertionError("unreachable: the last margin places every label")


def plot_result(result: Mapping[str, Any], path: str | Path) -> Path:
    """Draw one search result's figure into the PNG at `path` (written atomically); return the path."""
    fig, _ = render_result(result, str(path))
    buffer = io.BytesIO()
    # the result's provenance travels in the PNG's text chunks (`identify -verbose`, PIL's .text)
    metadata = {"Software": f"committee-tasks {toolkit_version()}"}
    if result.get("provenance"):
        metadata["Source"] = short_line(result["provenance"])
    fig.savefig(buffer, format="png", metadata=metadata)
    path = Path(path)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path
