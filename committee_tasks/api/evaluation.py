"""Evaluate members and committees: the typed request behind `tools/eval.py`.

    report = evaluate(EvalRequest(models=["resnet20"], cascades=[CascadeRequest(["resnet20", "resnet56"])],
                                  data=DataOptions("cifar10", Path("data/cifar10"))))
    report.rows  # one dict per member / committee (metric, interval, MACs, measured speed)

Cascades without thresholds are fitted on the calibration split for each objective (by default:
match the cascade's last member), then every row is scored on the evaluation split.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from committee_tasks.api.objectives import Budget, FitSettings, Guarantee, Match, Objective
from committee_tasks.api.options import (CalibrationOptions, DataOptions, ExecutionOptions, MeasureOptions,
                                         ModelOptions, PoolRequest)
from committee_tasks.core.errors import CommitteeError

if TYPE_CHECKING:
    from committee_tasks.api.pool import Pool
    from committee_tasks.core.task import Task
    from committee_tasks.search.intervals import Bootstrap

log = logging.getLogger("committee_tasks")


@dataclass(frozen=True)
class CascadeRequest:
    """A cascade's members, cheapest first; thresholds one per stage but the last (or one for all),
    or None to fit them for the request's objectives."""

    members: tuple[str, ...]
    thresholds: tuple[float, ...] | None = None

    def __post_init__(self):
        from committee_tasks.committees.scoring import check_unique, member_names

        object.__setattr__(self, "members", tuple(member_names(self.members)))
        if len(self.members) < 2:
            raise CommitteeError(f"a cascade needs at least 2 members, got {list(self.members)}")
        check_unique(self.members, f"--cascade {','.join(self.members)}")
        if self.thresholds is not None:
            thresholds = tuple(self.thresholds) if isinstance(self.thresholds, (list, tuple)) else (self.thresholds,)
            if len(thresholds) not in (1, len(self.members) - 1):
                raise CommitteeError(f"--cascade {','.join(self.members)} needs {len(self.members) - 1} thresholds "
                                     f"(one per stage but the last) or one for all stages; got {list(thresholds)}")
            object.__setattr__(self, "thresholds", thresholds)  # checked against the confidence by EvalRequest


def _bootstrap() -> Bootstrap:
    from committee_tasks.search.intervals import Bootstrap

    return Bootstrap()


def _committees(value: Any, what: str) -> list:
    """A list of committees (each a list of names, "a,b", or for cascades a `CascadeRequest`); one
    committee given on its own ("a,b") is a list of one."""
    if isinstance(value, (str, CascadeRequest)):
        return [value]
    value = list(value)
    if len(value) > 1 and all(isinstance(v, str) and "," not in v for v in value):
        raise CommitteeError(f"{what} takes a list of committees, got the names {value}: for one committee of "
                             f"these members pass {what}=[{value!r}] or {what}=[{','.join(value)!r}]")
    return value


@dataclass
class EvalRequest(PoolRequest):
    """Members and committees to evaluate (on top of `PoolRequest`'s task, data and options)."""

    models: Sequence[str] = ()  # reported on their own
    ensembles: Sequence[Sequence[str]] = ()
    cascades: Sequence[CascadeRequest] = ()
    objectives: Sequence[Objective] = ()  # fit every threshold-less cascade for each
    confidence: str | None = None  # None: the task's default_confidence
    combine: str = "mean"  # a cascade stage's prediction: mean of members so far, or "last"
    # speedups against it (default: the model a fit matches, else the member with the most MACs, first on a tie)
    reference: str | None = None
    levels: int = 20
    temperature: bool = False
    worst_case: bool = False
    interval: Bootstrap = field(default_factory=_bootstrap)
    measure: MeasureOptions = field(default_factory=MeasureOptions)
    cards: Sequence[Any] = ()  # saved committee cards (paths or CommitteeCard) to evaluate as rows

    def __post_init__(self):
        from committee_tasks.committees.confidence import check_thresholds, get_confidence
        from committee_tasks.committees.scoring import check_unique, member_names

        # names as a list or as "a,b" (a string is never read letter by letter); a flat list of single
        # names where a list of committees is due is refused below with the nesting it needs
        self.models = member_names(self.models)
        self.ensembles = [member_names(e) for e in _committees(self.ensembles, "ensembles")]
        self.cascades = [c if isinstance(c, CascadeRequest) else CascadeRequest(c)
                         for c in _committees(self.cascades, "cascades")]
        # every committee spec is checked here, before any model runs
        check_unique(self.models, "--models")
        for members in self.ensembles:
            if len(members) < 2:
                raise CommitteeError(f"--ensemble needs at least 2 members, got {list(members)}")
            check_unique(members, f"--ensemble {','.join(members)}")
        if self.confidence is None:
            self.confidence = task_default_confidence(self.task)
        get_confidence(self.confidence)  # an unknown name fails now
        FitSettings(self.confidence, self.combine, self.levels)  # --levels, checked before any work
        if self.combine not in ("mean", "last"):
            raise CommitteeError(f"unknown cascade combine rule {self.combine!r}; valid: 'mean', 'last'")
        for c in self.cascades:
            if c.thresholds is not None:
                where = f"--thresholds of --cascade {','.join(c.members)}"
                object.__setattr__(c, "thresholds", tuple(check_thresholds(c.thresholds, self.confidence, where)))
        self.cards = [load_card(c) for c in self.cards]
        guarantees = [o for o in self.objectives if isinstance(o, Guarantee)]
        if guarantees and self.temperature:
            raise CommitteeError("--guarantee needs members fixed before the calibration samples are seen; "
                                 "--temperature fits them on those samples: drop one of the two")
        if self.objectives and any(c.thresholds is not None for c in self.cascades):
            raise CommitteeError("--thresholds fixes a cascade's thresholds; --match/--budget/--guarantee fit "
                                 "them: pass one or the other")
        if self.objectives and not self.cascades:
            raise CommitteeError("--match/--budget/--guarantee fit the thresholds of a --cascade: pass one")

    def fit_objectives(self) -> list[Objective]:
        """The objectives, or by default the paper's question: the cheapest setting matching the
        reference (or the first cascade's last, largest, member)."""
        if self.objectives or all(c.thresholds is not None for c in self.cascades):
            return list(self.objectives)
        target = self.reference or self.cascades[0].members[-1]
        log.info("no thresholds given: fitting the cascade thresholds to match %s on the calibration split "
                 "(as --match %s)", target, target)
        return [Match(target)]

    def pool_names(self, objectives: Sequence[Objective]) -> list[str]:
        named = [m for o in objectives for m in o.models]
        names = [*self.models, *(m for e in self.ensembles for m in e), *(m for c in self.cascades for m in c.members),
                 *(m for card in self.cards for m in card.member_names), *named,
                 *([self.reference] if self.reference else [])]
        pool = list(dict.fromkeys(names))
        if not pool:
            raise CommitteeError("nothing to evaluate: pass --models, --ensemble or --cascade (or --config)")
        return pool


@dataclass
class EvalReport:
    """Every figure of an evaluation: ``to_dict()`` is the JSON `tools/eval.py --json` writes."""

    task: str
    dataset: str
    dataset_title: str
    samples: int
    rows: list[dict[str, Any]]
    temperatures: dict[str, float]
    skipped: dict[str, str]
    notes: dict[str, str]
    cost_notes: dict[str, str]
    interval: dict[str, Any]
    measurement: dict[str, Any] | None
    provenance: dict[str, Any]
    note: str = ""
    classes: list[str] | None = None  # names of the classes of the rows' per-class figures, when they have them
    pool: Pool | None = None  # the evaluation split's pool (not serialised)
    committees: dict[str, Any] = field(default_factory=dict)  # row name -> committee object (not serialised)

    def to_dict(self) -> dict[str, Any]:
        from committee_tasks.core.provenance import SCHEMA_VERSION

        return {"schema_version": SCHEMA_VERSION, "provenance": self.provenance, "task": self.task,
                "dataset": self.dataset, "dataset_title": self.dataset_title, "samples": self.samples,
                "skipped": self.skipped, "notes": self.notes, "cost_notes": self.cost_notes, "rows": self.rows,
                "note": self.note, "temperatures": self.temperatures, "interval": self.interval,
                "measurement": self.measurement, "classes": self.classes}

    def cards(self) -> dict[str, Any]:
        """The committee card of every ensemble and cascade row, by row name."""
        return {name: self.card(name) for name in self.committees}

    def card(self, name: str):
        """The committee card of row ``name`` (an ensemble or cascade), with its figures."""
        row = next((r for r in self.rows if r["name"] == name), None)
        if row is None or name not in self.committees:
            choices = [r["name"] for r in self.rows if r["name"] in self.committees]
            raise CommitteeError(f"no committee row {name!r}; committees: {choices}")
        return self.pool.card(self.committees[name], figures=card_figures(row), temperatures=self.temperatures)


def card_figures(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("metric_name", "metric", "metric_ci", "delta_metric", "delta_ci", "reference", "macs_mean", "macs_worst",
            "speedup_macs", "exit_fractions", "fit", "calibration",
            # measured, where it was: the speedup a deployment may expect, with its spread over rounds
            "throughput", "speedup_measured", "measurement", "measurement_flag")
    return {k: row[k] for k in keys if k in row}


def evaluate(request: EvalRequest, task: Task | None = None) -> EvalReport:
    """Evaluate the request's pool (cached), fit and score its committees, measure them."""
    from committee_tasks.api.scoring_rows import card_temperatures, score_rows

    task = task or prepare_task(request.task, request.models_from)
    cache_confidences(task, [request.confidence])
    objectives = request.fit_objectives()
    pool_names = request.pool_names(objectives)
    from committee_tasks.engine.runnable import task_of

    for card in request.cards:  # before the pool's names are looked up in the task's zoo
        task_of(card, task)
    check_pool(task, pool_names)
    card_temperatures(request)  # cards that disagree, or --temperature with theirs: refused before any work
    limit, timed = request.data.limit, request.measure.samples
    if limit is not None and timed is not None and timed > limit:  # known now, not after the evaluation pass
        raise CommitteeError(f"--measure-samples {timed} is more than the {limit} samples --limit evaluates: pass "
                             f"at most {limit}, or leave it out to time on all of them")
    pool = load_pool(task, pool_names, request.data, request.models_from, request.execution, request.cards,
                     before_evaluating=lambda dataset: _check_measure_samples(task, request, objectives, dataset))
    evaluated = pool.predictions.fingerprints.get("dataset", {}).get("fingerprint")
    for card in request.cards:
        fitted_on = (card.dataset or {}).get("fingerprint")
        if fitted_on and fitted_on == evaluated and "calibration" in card.figures:
            log.warning("card %s was fitted on %s samples of this dataset, which are scored here too: its figures "
                        "include the samples it was fitted on (its card records those of the held-out split)",
                        card.name, card.figures["calibration"].get("samples", "some"))
    return score_rows(task, request, pool, objectives)


def _check_measure_samples(task: Task, request: EvalRequest, objectives: Sequence[Objective], dataset) -> None:
    """``--measure-samples`` more than the samples the evaluation split can hold, refused once the
    dataset is listed, not after the evaluation pass: the split is by sample id, so its size is
    known now (skipped samples can only make it smaller)."""
    if request.measure.samples is None:
        return
    from committee_tasks.api.measuring import measure_samples
    from committee_tasks.core.splits import calibration_mask
    from committee_tasks.engine.loop import subset_indices

    ids = [dataset.ids[i] for i in subset_indices(len(dataset.ids), request.data.limit, warn=False)]
    split = bool(objectives or request.temperature) and not request.calibration.dataset
    available = int((~calibration_mask(ids, request.calibration.fraction)).sum()) if split else len(ids)
    measure_samples(request.measure, task, available, split)


def load_card(card):
    """A `CommitteeCard`, from itself or its JSON file."""
    from committee_tasks.committees.cards import CommitteeCard

    return card if isinstance(card, CommitteeCard) else CommitteeCard.load(card)


def prepare_task(name: str, models_from: ModelOptions) -> Task:
    """The task, with the models of any zoo files."""
    from committee_tasks.api.pool import resolve_task

    task = resolve_task(name)
    for path in models_from.zoo_files:
        task.add_zoo_file(path)
    return task


def task_default_confidence(task: str | Task) -> str:
    """The confidence a request's cascades exit on where it names none: its task's
    ``default_confidence`` (a task not yet known is refused where it is prepared)."""
    from committee_tasks.committees.confidence import DEFAULT_CONFIDENCE
    from committee_tasks.core.registry import get_task

    try:
        return (get_task(task) if isinstance(task, str) else task).default_confidence
    except CommitteeError:
        return DEFAULT_CONFIDENCE


def cache_confidences(task: Task, confidences: Sequence[Any]) -> None:
    """A task that caches statistics instead of outputs (segmentation) computes its confidences
    while the outputs are in memory: named ``confidences`` it does not cache by default
    (``frac_above_0.8``) are computed too, in subset caches of their own, rather than refused
    after the evaluation pass. Changes this task object, not its class."""
    from committee_tasks.committees.confidence import get_torch_confidence

    extra = [c for c in dict.fromkeys(confidences) if isinstance(c, str) and c not in task.cached_confidences]
    if not extra or task.caches_outputs:
        return
    for c in extra:
        get_torch_confidence(c)  # an unknown name: the registry's error names the valid ones
    log.info("the %s task caches statistics, not outputs: computing confidence(s) %s too while the outputs are in "
             "memory (subset statistics of their own, computed once)", task.name, ", ".join(extra))
    task.cached_confidences = (*task.cached_confidences, *extra)


def check_pool(task: Task, names: Sequence[str]) -> None:
    """Bad names and mismatched label sets fail before anything is loaded."""
    from committee_tasks.engine.loop import check_same_classes

    check_same_classes({name: task.model_entry(name).num_classes for name in names})


def build_dataset(task: Task, data: DataOptions):
    """``--dataset`` (or the task's default) with its options, checked and typed by the task."""
    dataset = data.dataset or task.default_dataset
    if dataset is None:
        raise CommitteeError(f"pass --dataset (one of {task.list_datasets()})")
    options = task.read_dataset_options(dataset, data.options, root=data.data_root)
    with unreadable_data_is_an_error(dataset):
        return task.build_dataset(dataset, data.data_root, split=data.split, **options)


@contextlib.contextmanager
def unreadable_data_is_an_error(dataset: str):
    """A folder or file of the dataset that cannot be listed or read while it is being indexed
    (permissions, a stale network mount) is an error naming it, not a traceback. Samples that
    cannot be read later, in the loop, are skipped and counted instead."""
    try:
        yield
    except OSError as err:
        where = err.filename or "its data root"
        raise CommitteeError(f"dataset {dataset!r}: cannot read {where} ({err.strerror or err}): check that it "
                             "exists and that this user may read it") from err


def load_pool(task: Task, names: Sequence[str], data: DataOptions, models_from: ModelOptions,
              execution: ExecutionOptions, cards: Sequence = (), before_evaluating=None) -> Pool:
    """The dataset and every member's predictions (from the cache, or the loop for what it lacks).
    ``cards`` run only on the members they were chosen with: a changed member is refused once
    described, before the evaluation pass; ``before_evaluating(dataset)`` checks what else can
    be checked then."""
    from committee_tasks.api.pool import Pool, describe_members, open_cache
    from committee_tasks.engine.runnable import check_members

    dataset = build_dataset(task, data)
    members = describe_members(task, names, models_from.weights_dir)
    for card in cards:
        check_members(card, members)
    if before_evaluating is not None:
        before_evaluating(dataset)
    return Pool.from_described(task, members, dataset, open_cache(execution.cache_dir), data.limit, execution)


def calibration_dataset(task: Task, data: DataOptions, calibration: CalibrationOptions):
    """The separate calibration dataset of ``--calibration-dataset``, with its own options
    (``--calibration-data-option``); its errors say they are about it."""
    options = task.read_dataset_options(calibration.dataset, calibration.options, "--calibration-data-option",
                                        root=calibration.data_root or data.data_root)
    try:
        with unreadable_data_is_an_error(calibration.dataset):
            return task.build_dataset(calibration.dataset, calibration.data_root or data.data_root,
                                      split=calibration.split, **options)
    except CommitteeError as err:
        raise CommitteeError(f"calibration dataset {calibration.dataset!r} (--calibration-data-option gives its "
                             f"options): {err}") from err


def fit_settings(request: EvalRequest, calib: Pool, objectives: Sequence[Objective]) -> FitSettings:
    """The request's fit settings; with ``worst_case``, bounded by the reference's worst-case MACs."""
    worst = None
    if request.worst_case:
        bound_by = next((o.reference for o in objectives if isinstance(o, (Match, Budget)) and o.reference),
                        request.reference)
        if not bound_by:
            raise CommitteeError("--worst-case needs a reference model: --match, --budget MODEL or --reference")
        worst = calib.score(bound_by).macs_worst
    return FitSettings(request.confidence, request.combine, request.levels, worst)
