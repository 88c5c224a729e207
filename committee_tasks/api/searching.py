"""Search every ensemble and cascade of a pool from its cached predictions: the typed request
behind `tools/search.py`.

Thresholds are chosen on the calibration split and every figure is reported on both splits; for
each reference model: the committee matching its metric at the fewest MACs (similar accuracy)
and the best one within its MACs (similar cost), plus the Pareto front.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from committee_tasks.api.evaluation import (cache_confidences, calibration_dataset, check_pool, load_pool,
                                            prepare_task, task_default_confidence)
from committee_tasks.api.options import PoolRequest
from committee_tasks.search.committee_search import SearchSettings

@dataclass
class SearchRequest(SearchSettings, PoolRequest):
    """`SearchSettings` (pool, references, sizes, grid, intervals) on top of `PoolRequest`'s task,
    data and options, and the confidence functions to compare."""

    confidences: Sequence[str] | None = None  # None: the task's default_confidence
    temperature: bool = False  # also compare each confidence after temperature scaling

    def __post_init__(self):
        from committee_tasks.committees.scoring import check_unique

        super().__post_init__()  # the search's settings: pool, references, alpha, ...
        if self.confidences is None:
            self.confidences = (task_default_confidence(self.task),)
        check_unique(list(self.confidences), "--confidence")


@dataclass
class SearchResult:
    """``report``: the JSON `tools/report.py` reads; ``pool``: the evaluated pool it came from."""

    report: dict[str, Any]
    pool: Any

    def cards(self) -> dict[str, Any]:
        """A committee card of every committee chosen for a reference (similar accuracy or cost),
        with its figures on both splits; and of those each other confidence variant (``--confidence
        a,b``, ``--temperature``) chose against the most expensive model, with its confidence and
        temperatures. Keyed by `CommitteeCard.qualified_name` (``<name> [margin, tempered]``), which
        names their files."""
        report = self.report
        points = {p["name"]: p for p in report["points"]}
        picks: dict[str, list[tuple[str, dict]]] = {}  # committee -> every (what it was chosen for, pick)
        for entry in report["references"]:
            for key in ("similar_accuracy", "similar_cost"):
                if entry.get(key):
                    picks.setdefault(entry[key]["name"], []).append(
                        (f"{key.replace('_', ' ')} to {entry['reference']}", entry[key]))
        cards = {}
        for name, chosen in picks.items():  # its figures (Δ, speedup) are against the first; the others named
            (chosen_for, pick), others = chosen[0], [what for what, _ in chosen[1:]]
            card = self._card(pick, points.get(name), chosen_for, report["confidence"], report["temperatures"],
                              also_chosen_for=others)
            cards[card.qualified_name] = card
        for variant in report.get("comparison", [])[1:]:  # the first is the search above
            label = variant["confidence"] + (", tempered" if variant["temperature"] else "")
            for key, pick in variant.get("picks", {}).items():
                card = self._card(pick, pick["point"], f"{key.replace('_', ' ')} to {variant['reference']} ({label})",
                                  variant["confidence"], variant["temperatures"])
                cards.setdefault(card.qualified_name, card)
        return cards

    def _card(self, pick: dict, point: dict | None, chosen_for: str, confidence: str, temperatures: dict,
              also_chosen_for: list[str] | None = None):
        from committee_tasks.committees.scoring import Cascade, Ensemble, Single

        report = self.report
        if point is None:
            # a pick may be a member on its own (the cheapest model that matches is another member):
            # its card runs that member, as `tools/eval.py --committee` and `load_committee` take
            member = next(m for m in report["members"] if m["name"] == pick["name"])
            point = {"kind": "member", "members": [member["name"]], "macs_worst": member["macs_worst"],
                     "exit_fractions": [1.0]}
        committee = (Cascade(point["members"], point["thresholds"], confidence=confidence,
                             combine=report["combine"]) if point["kind"] == "cascade"
                     else Ensemble(point["members"]) if point["kind"] == "ensemble"
                     else Single(pick["name"]))
        # in the shape tools/eval.py's cards have: the evaluation split's figures, the calibration's apart
        figures = {k: v for k, v in pick.items() if k not in ("name", "metric", "macs_mean", "point")} | {
            "metric": pick["metric"]["evaluation"], "macs_mean": pick["macs_mean"]["evaluation"],
            "samples": report["split"]["evaluation"],
            "calibration": {"metric": pick["metric"]["calibration"],
                            "macs_mean": pick["macs_mean"]["calibration"],
                            "samples": report["split"]["calibration"]},
            "chosen_for": chosen_for, "metric_name": report["metric_name"],
            "macs_worst": point["macs_worst"], "exit_fractions": point["exit_fractions"],
            "split": report["split"], "worst_case": report["worst_case"]}
        if also_chosen_for:  # a committee picked for several references (CIFAR: ≈ cost to resnet44 and resnet56)
            figures["also_chosen_for"] = also_chosen_for
        return self.pool.card(committee, figures, temperatures)


def search_committees(request: SearchRequest) -> SearchResult:
    """The search result: every confidence variant searched, the first one's committees in full
    and a comparison line per variant."""
    from committee_tasks.committees.confidence import get_confidence
    from committee_tasks.core.provenance import SCHEMA_VERSION, provenance
    from committee_tasks.search.committee_search import compare_line, search_variant

    task = prepare_task(request.task, request.models_from)  # first: a plugin registers its confidences on import
    for name in request.confidences:
        get_confidence(name)  # an unknown name fails before anything runs
    cache_confidences(task, request.confidences)
    check_pool(task, request.pool)
    pool = load_pool(task, request.pool, request.data, request.models_from, request.execution)
    calib, evaluation = pool.calibration_and_evaluation(
        request.calibration, lambda c: calibration_dataset(task, request.data, c))
    summaries = []
    for confidence, temper in _variants(request):
        cal, ev, temps = calib, evaluation, {}
        if temper:
            temps = calib.fit_temperatures()
            cal, ev = calib.tempered(temps), evaluation.tempered(temps)
        result = search_variant(task, cal.predictions, ev.predictions, confidence, request)
        summaries.append(result | {"confidence": confidence, "temperatures": temps})
    bootstrap = request.interval
    report = {"schema_version": SCHEMA_VERSION,
              "provenance": provenance(request.execution.device, request.config, pool.predictions.fingerprints,
                                       list(request.command) if request.command else None,
                                       request.settings(task.default_batch_size)),
              "task": task.name, "dataset": pool.dataset.name, "dataset_title": pool.dataset.describe(),
              "metric_name": task.metric_name, "metric_unit": "%" if task.score_range == 100 else "",
              "worst_case": request.worst_case, "combine": request.combine,
              "any_order": request.any_order,
              "split": {"calibration": len(calib.predictions.ids), "evaluation": len(evaluation.predictions.ids)},
              "interval": {"confidence": bootstrap.confidence, "resamples": bootstrap.resamples,
                           "seed": bootstrap.seed, "split": "evaluation",
                           "method": "percentile bootstrap over samples, paired across rows"}, **summaries[0]}
    if len(summaries) > 1:
        report["comparison"] = [compare_line(s) for s in summaries]
    return SearchResult(report, pool)



def _variants(request: SearchRequest) -> list[tuple[str, bool]]:
    plain = [(c, False) for c in request.confidences]
    return plain + ([(c, True) for c in request.confidences] if request.temperature else [])
