"""The rows of an evaluation: fit cascades on the calibration split, score every member and
committee on the evaluation split with intervals, and time them for real."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from committee_tasks.api.evaluation import (EvalReport, EvalRequest, calibration_dataset, fit_settings)
from committee_tasks.api.objectives import Match, Objective
from committee_tasks.core.errors import CommitteeError

if TYPE_CHECKING:
    from committee_tasks.api.pool import Pool
    from committee_tasks.core.task import Task

log = logging.getLogger("committee_tasks")


class UnsatisfiedFit:
    """A cascade whose fit found no threshold setting meeting its objective: reported as a row
    with no figures, never dropped silently."""

    kind = "cascade"

    def __init__(self, members: Sequence[str], fit: str):
        self.members = list(members)
        self.name = "cascade(" + ">".join(self.members) + ")"
        self.fit = fit


@dataclass
class _Split:
    calib: Pool | None
    evaluation: Pool
    temperatures: dict[str, float] = field(default_factory=dict)


def fixed_committees(request: EvalRequest) -> list:
    from committee_tasks.committees.scoring import Cascade, Ensemble

    committees: list = [Ensemble(m) for m in request.ensembles]
    committees += [Cascade(c.members, c.thresholds, confidence=request.confidence, combine=request.combine)
                   for c in request.cascades if c.thresholds is not None]
    return committees + [card.committee() for card in request.cards]


def card_temperatures(request: EvalRequest) -> dict[str, float]:
    """The temperatures the request's cards were chosen with ({} when all are 1): the whole run
    is scored and timed with them, so each card's committee exits as it did when it was chosen."""
    temperatures: dict[str, float] = {}
    chosen_by: dict[str, str] = {}
    for card in request.cards:
        for member, value in card.temperatures.items():
            if temperatures.setdefault(member, value) != value:
                raise CommitteeError(f"cards {chosen_by[member]} and {card.name} scale member {member!r} by other "
                                     f"temperatures ({temperatures[member]:g}, {value:g}): evaluate them in separate "
                                     "runs")
            chosen_by.setdefault(member, card.name)
    if all(value == 1.0 for value in temperatures.values()):
        return {}
    if request.temperature:
        raise CommitteeError(f"--temperature with card(s) chosen with their own temperatures ({temperatures}): drop "
                             "--temperature (the cards' temperatures are used)")
    return temperatures


def split_pool(task: Task, request: EvalRequest, pool: Pool, fitting: bool) -> _Split:
    """Calibration and evaluation pools (temperature-scaled when asked, or with the temperatures of
    the cards evaluated); no split when nothing is fitted."""
    temperatures = card_temperatures(request)
    if temperatures:
        log.info("scored with the temperatures the cards were chosen with: %s",
                 ", ".join(f"{m}={t:.3f}" for m, t in temperatures.items()))
    if not (fitting or request.temperature):
        return _Split(None, pool.tempered(temperatures) if temperatures else pool, temperatures)
    calib, evaluation = pool.calibration_and_evaluation(
        request.calibration, lambda c: calibration_dataset(task, request.data, c))
    if request.temperature:
        temperatures = calib.fit_temperatures()
        log.info("temperatures fitted on the calibration split: %s",
                 ", ".join(f"{m}={t:.3f}" for m, t in temperatures.items()))
    if temperatures:
        calib, evaluation = calib.tempered(temperatures), evaluation.tempered(temperatures)
    return _Split(calib, evaluation, temperatures)


def fit_cascades(request: EvalRequest, calib: Pool, objectives: Sequence[Objective]) -> list:
    """One fitted cascade per threshold-less cascade and objective; unmet objectives stay rows."""
    settings = fit_settings(request, calib, objectives)
    fitted = []
    for cascade in (c for c in request.cascades if c.thresholds is None):
        for objective in objectives:
            result = calib.fit(cascade.members, objective, settings)
            if result is None:
                log.warning("no threshold setting of cascade %s satisfies '%s' on the calibration split",
                            ",".join(cascade.members), objective.label)
                result = UnsatisfiedFit(cascade.members, objective.label)
            result.fit = objective.label
            result.fit_target = objective.reference if objective.reference in calib.members else None
            fitted.append(result)
    return fitted


def score_rows(task: Task, request: EvalRequest, pool: Pool, objectives: Sequence[Objective]) -> EvalReport:
    from committee_tasks.committees.scoring import Single

    split = split_pool(task, request, pool, bool(objectives))
    specs = [Single(m) for m in pool.members] + fixed_committees(request)
    if objectives:
        specs += fit_cascades(request, split.calib, objectives)
    ev = split.evaluation
    scored = [s for s in specs if not isinstance(s, UnsatisfiedFit)]
    _check_distinct_names(scored)
    results = {s.name: ev.score(s) for s in scored}
    reference = request.reference or _fit_reference(objectives) or max(
        pool.members, key=lambda m: ev.predictions.macs[m].mean())
    if reference not in pool.members:
        raise CommitteeError(f"--reference {reference!r} is not among the evaluated models {list(pool.members)}")
    intervals = _intervals(task, request, results, reference)
    from committee_tasks.api.measuring import measure_rows, measure_samples

    measure_n = measure_samples(request.measure, task, len(ev.predictions.ids), split.calib is not None)
    measured = measure_rows(task, request, pool, ev.predictions.ids, scored, reference, split.temperatures,
                            measure_n)
    rows = [_row(task, spec, results, reference, intervals, measured, pool, split) for spec in specs]
    return _report(task, request, pool, ev, rows, split.temperatures, intervals.spec, measure_n,
                   {s.name: s for s in scored if s.kind != "member"})


def _check_distinct_names(specs: Sequence) -> None:
    """Rows are keyed by name: two different committees of one name (a card's thresholds and the
    same cascade retyped from a name printed before names round-tripped) would show one's figures
    twice. The same committee twice is one committee."""
    defined: dict[str, tuple] = {}
    for spec in specs:
        definition = (spec.kind, tuple(spec.members), tuple(getattr(spec, "thresholds", None) or ()),
                      repr(getattr(spec, "confidence", None)), getattr(spec, "combine", None))
        if defined.setdefault(spec.name, definition) != definition:
            raise CommitteeError(f"two different committees are named {spec.name!r} ({defined[spec.name]} and "
                                 f"{definition}): evaluate them in separate runs")


def _fit_reference(objectives: Sequence[Objective]) -> str | None:
    return next((o.reference for o in objectives if isinstance(o, Match)), None)


def _intervals(task: Task, request: EvalRequest, results: dict, reference: str):
    from committee_tasks.search.intervals import bootstrap_intervals

    return bootstrap_intervals(task, {name: r.sample_statistics for name, r in results.items()},
                               [(name, reference) for name in results], request.interval)


def _row(task: Task, spec, results: dict, reference: str, intervals, measured: dict, pool: Pool,
         split: _Split) -> dict[str, Any]:
    from committee_tasks.engine.timing import implausible
    from committee_tasks.reporting.eval_table import result_row, unsatisfied_row

    if isinstance(spec, UnsatisfiedFit):
        return unsatisfied_row(spec.name, spec.members, task.metric_name, reference, spec.fit)
    r = results[spec.name]
    flag = measured and implausible(r.kind, r.members, measured[r.name], measured)
    entry = getattr(pool.members[r.name], "entry", None) if r.kind == "member" else None
    row = result_row(r, task.metric_name, results[reference], intervals, measured.get(r.name), flag or None,
                     entry.published() if entry else None)
    if r.kind == "cascade":  # its thresholds mean nothing without the confidence they are on
        confidence = spec.confidence
        row["confidence"] = confidence if isinstance(confidence, str) else getattr(confidence, "__name__", "custom")
        row["combine"] = spec.combine
    per_class = task.per_class(r.statistics)
    if per_class is not None:  # e.g. segmentation's IoU per class: where a committee gains, and loses
        row["per_class"] = {name: [None if np.isnan(v) else float(v) for v in values]
                            for name, values in per_class.items()}
    if r.kind == "member":  # forward-pass throughput inside the shared loop, when it ran
        row["throughput_eval_loop"] = pool.loop_throughput.get(r.name)
        by_writer = getattr(pool.loop_throughput, "by_writer", {}).get(r.name)
        if by_writer and len(by_writer) > 1:  # ranks, shards or runs that computed part of the cache
            row["throughput_eval_loop_by_writer"] = by_writer
    if split.calib is not None:  # figures on the calibration split too: overfitting stays visible
        on_calib = split.calib.score(spec)
        row["calibration"] = {"metric": on_calib.metric, "macs_mean": on_calib.macs_mean,
                              "samples": len(split.calib.predictions.ids)}
    if getattr(spec, "fit", None):
        row["fit"] = spec.fit
        if getattr(spec, "fit_target", None):  # the model the objective names (match it, stay within its MACs)
            row["fit_target"] = spec.fit_target
    return row


def _report(task: Task, request: EvalRequest, pool: Pool, ev: Pool, rows: list, temperatures: dict, bootstrap,
            measure_n: int, committees: dict) -> EvalReport:
    from committee_tasks.core.devices import resolve_device
    from committee_tasks.core.provenance import provenance
    from committee_tasks.engine.timing import NOISY_SPREAD

    preds = ev.predictions
    cost_notes = {name: note for name, m in pool.members.items()
                  if (note := m.cost_note())}
    batch = request.execution.batch_size or task.default_batch_size
    measurement = {"samples": measure_n, "rounds": request.measure.rounds, "batch_size": batch,
                   "later_stages": request.measure.later_stages, "noisy_spread": NOISY_SPREAD} if measure_n > 0 else None
    level = f"{100 * bootstrap.confidence:g}%"
    note = (f"{task.metric_name} and Δ with {level} intervals (percentile bootstrap over samples, paired, "
            f"{bootstrap.resamples} resamples); MACs are multiply-adds per sample")
    if measure_n > 0:
        note += (f"; throughput is samples/s of model execution (data already preprocessed) on "
                 f"{resolve_device(request.execution.device)}, batch {batch}, over the first {measure_n} samples: "
                 f"median (interquartile range) of {request.measure.rounds} rounds interleaved with {rows[0]['reference']}")
        if any(r["kind"] == "cascade" for r in rows):
            note += ("; a cascade's later stages run on rows gathered across batches into full batches"
                     if request.measure.later_stages == "gathered" else
                     "; a cascade's later stages run on each batch's remaining rows (--later-stages per-batch)")
    else:
        note += "; throughput not measured (--measure-samples 0)"
    return EvalReport(
        task.name, pool.dataset.name, pool.dataset.describe(), len(preds.ids), rows, temperatures,
        dict(preds.skipped), dict(preds.notes), cost_notes,
        {"confidence": bootstrap.confidence, "resamples": bootstrap.resamples, "seed": bootstrap.seed,
         "method": "percentile bootstrap over samples, paired across rows"},
        measurement, provenance(request.execution.device, request.config, preds.fingerprints,
                                list(request.command) if request.command else None,
                                request.settings(task.default_batch_size)),
        note, _class_names(pool.dataset, rows), ev, committees)


def _class_names(dataset, rows: list) -> list[str] | None:
    """The dataset's class names, where the rows have per-class figures of as many classes."""
    classes = getattr(dataset, "classes", None)
    counts = {len(v) for r in rows for v in (r.get("per_class") or {}).values()}
    if not counts:
        return None
    if classes is not None and counts == {len(classes)}:
        return [str(c) for c in classes]
    return [str(i) for i in range(max(counts))]
