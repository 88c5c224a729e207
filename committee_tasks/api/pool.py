"""An evaluated pool: members, what the loop kept for each sample, and the questions asked of it.

    pool = Pool.evaluate([small, large], ArrayDataset(x, y))     # members: zoo names or Members
    calib, test = pool.split(0.5)
    cascade = calib.fit(["small", "large"], Match("large"))      # None if nothing qualifies
    test.score(cascade).metric
    test.card(cascade).save("cascade.json")                      # run it later: load_committee

`Pool.evaluate` runs the shared loop only for samples its cache lacks (the disk cache by default,
``cache="memory"`` for one that writes nothing); with everything cached, no model is built.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from committee_tasks.api.objectives import FitSettings, Guarantee, Objective
from committee_tasks.api.options import MEMORY, CalibrationOptions, ExecutionOptions
from committee_tasks.core.errors import CommitteeError

if TYPE_CHECKING:
    from committee_tasks.committees.predictions import PoolPredictions
    from committee_tasks.committees.scoring import CommitteeResult
    from committee_tasks.core.members import Member
    from committee_tasks.core.samples import SampleDataset
    from committee_tasks.core.task import Task
    from committee_tasks.committees.cards import CommitteeCard

log = logging.getLogger("committee_tasks")


def resolve_task(task: str | Task) -> Task:
    from committee_tasks.core.registry import get_task

    return get_task(task) if isinstance(task, str) else task


def open_cache(cache_dir: Path | str | None):
    """The prediction cache at ``cache_dir`` (None: the default root), or an in-memory one."""
    from committee_tasks.core.files import wants_memory_cache
    from committee_tasks.engine.cache import MemoryPredictionCache, PredictionCache

    if wants_memory_cache(cache_dir):
        return MemoryPredictionCache()
    return PredictionCache(cache_dir)


def describe_members(task: Task, members: Sequence[str | Member], weights_dir: Path | None) -> dict[str, Any]:
    """Members by name: zoo names are described without building them (built only if the cache
    lacks something); `Member` objects are taken as they are."""
    from committee_tasks.core.zoo import each_with_weights

    described: dict[str, Any] = {}
    specs = each_with_weights(members, lambda m: task.describe_member(m, weights_dir) if isinstance(m, str) else m)
    for spec in specs:
        if spec.name in described:
            raise CommitteeError(f"a member is listed twice: {[getattr(x, 'name', x) for x in members]}")
        described[spec.name] = spec
    return described


MIN_SPLIT_SAMPLES = 10  # fewer on a side of the split, and what is fitted or scored there means nothing


def check_split_sizes(calibration: int, total: int, fraction: float) -> None:
    """Refuse a fraction that leaves fewer than `MIN_SPLIT_SAMPLES` on a side, where the pool is large
    enough (4x that) for a sensible fraction to leave more; smaller pools (quick tries) need only
    both sides non-empty (`calibration_mask` checks that)."""
    if total < 4 * MIN_SPLIT_SAMPLES:
        return
    for side, count in (("calibration", calibration), ("evaluation", total - calibration)):
        if count < MIN_SPLIT_SAMPLES:
            low, high = MIN_SPLIT_SAMPLES / total, 1 - MIN_SPLIT_SAMPLES / total
            raise CommitteeError(f"--calibration-fraction {fraction:g} leaves {count} of {total} samples for "
                                 f"{side}, fewer than {MIN_SPLIT_SAMPLES}: use a fraction between about "
                                 f"{low:.3g} and {high:.3g} (0.5 by default)")


class FittedTemperatures(dict):
    """Per-member temperatures (name -> T), with the ids of the samples they were fitted on."""

    def __init__(self, temperatures: Mapping[str, float], fitted_on):
        super().__init__(temperatures)
        self.fitted_on = frozenset(fitted_on.tolist() if hasattr(fitted_on, "tolist") else fitted_on)


@dataclass
class Pool:
    """Members and their cached predictions on the same samples."""

    task: Task
    members: dict[str, Any]  # name -> Member, or a MemberSpec built on demand
    predictions: PoolPredictions
    dataset: SampleDataset | None = None
    loop_throughput: dict[str, float | None] = field(default_factory=dict)
    cache: Any = None
    options: ExecutionOptions = field(default_factory=ExecutionOptions)
    temperatures: dict[str, float] = field(default_factory=dict)  # `tempered`: what its predictions were scaled by
    tempered_on: frozenset = frozenset()  # ids of the samples its temperatures were fitted on (`FittedTemperatures`)

    def __repr__(self) -> str:  # what it holds, not every per-sample array (a notebook cell of 10,000 rows)
        dataset = f", dataset={self.dataset.name!r}" if self.dataset is not None else ""
        tempered = f", temperatures={self.temperatures}" if self.temperatures else ""
        return (f"Pool(task={self.task.name!r}, members={list(self.members)}, samples={len(self.predictions.ids)}"
                f"{dataset}{tempered})")

    @classmethod
    def evaluate(cls, members: Sequence[str | Member], dataset: SampleDataset, task: str | Task = "classification",
                 *, cache: Path | str | None = MEMORY, limit: int | None = None,
                 options: ExecutionOptions | None = None, weights_dir: Path | None = None) -> Pool:
        """Every member's predictions on ``dataset`` (computing only what ``cache`` lacks).
        ``cache``: "memory" (default here: nothing written), None (the default disk cache) or a folder."""
        options = options or ExecutionOptions(cache_dir=cache)
        task = resolve_task(task)
        return cls.from_described(task, describe_members(task, members, weights_dir), dataset,
                                  open_cache(cache), limit, options)

    @classmethod
    def from_described(cls, task: Task, members: Mapping[str, Any], dataset: SampleDataset, cache,
                       limit: int | None, options: ExecutionOptions) -> Pool:
        from committee_tasks.core.samples import check_sample_dataset
        from committee_tasks.core.threads import apply_thread_policy, default_workers
        from committee_tasks.engine.distributed import Share
        from committee_tasks.engine.loop import LoopOptions, evaluate_pool

        check_sample_dataset(dataset)
        apply_thread_policy(options.threads)
        workers = options.workers if options.workers is not None else dataset.preferred_workers
        loop = LoopOptions(batch_size=options.batch_size or task.default_batch_size, device=options.device,
                           num_workers=default_workers() if workers is None else workers,
                           amp=options.amp_mode, output_dtype=options.output_dtype, progress=options.progress,
                           share=None if options.shard is None else Share.parse(options.shard),
                           flush_seconds=options.flush_seconds, device_preprocessing=options.device_preprocessing)
        preds, throughput = evaluate_pool(task, list(members.values()), dataset, cache, limit, loop)
        return cls(task, dict(members), preds, dataset, throughput, cache, options)

    # ---- views of the same pool ----------------------------------------------------------
    def _with(self, predictions: PoolPredictions, dataset: SampleDataset | None = None) -> Pool:
        return Pool(self.task, self.members, predictions, dataset or self.dataset, self.loop_throughput,
                    self.cache, self.options, dict(self.temperatures), self.tempered_on)

    def split(self, fraction: float = 0.5) -> tuple[Pool, Pool]:
        """(calibration, evaluation): a split deterministic by sample id (see core/splits.py)."""
        from committee_tasks.core.splits import calibration_mask

        mask = calibration_mask(self.predictions.ids, fraction)
        check_split_sizes(int(mask.sum()), len(mask), fraction)
        return self._with(self.predictions.subset(mask)), self._with(self.predictions.subset(~mask))

    def calibration_and_evaluation(self, calibration: CalibrationOptions, build_dataset) -> tuple[Pool, Pool]:
        """A split of this pool, or a separate calibration dataset (``build_dataset(options)``)
        evaluated with the same members and cache."""
        if not calibration.dataset:
            return self.split(calibration.fraction)
        other = build_dataset(calibration)
        if self.dataset is not None and other.fingerprint() == self.dataset.fingerprint():
            # every figure would be in-sample, yet labelled the evaluation split's
            raise CommitteeError(f"--calibration-dataset {calibration.dataset} is the dataset being evaluated (the same "
                                 "samples, by content): thresholds would be fitted on the samples they are then scored "
                                 "on; fit on a part of it (--calibration-fraction, 0.5 by default) or give another "
                                 "dataset")
        calib = Pool.from_described(self.task, self.members, other, self.cache, None, self.options)
        return calib, self

    def tempered(self, temperatures: Mapping[str, float]) -> Pool:
        """This pool with each member's predictions temperature-scaled (``fit_temperatures()``);
        its cards carry the temperatures, so a loaded committee exits as this pool scores it.
        Tempering a tempered pool multiplies the temperatures."""
        from committee_tasks.committees.temperature import check_temperature

        unknown = sorted(set(temperatures) - set(self.members))
        if unknown:
            raise CommitteeError(f"temperatures for {unknown}, which are not members of this pool "
                                 f"({list(self.members)})")
        fitted_on = getattr(temperatures, "fitted_on", frozenset())
        temperatures = {name: check_temperature(value, f"member {name!r}") for name, value in temperatures.items()}
        pool = self._with(self.predictions.tempered(temperatures))
        pool.tempered_on = self.tempered_on | fitted_on
        for name, value in temperatures.items():
            pool.temperatures[name] = pool.temperatures.get(name, 1.0) * float(value)
        return pool

    def fit_temperatures(self) -> FittedTemperatures:
        """Per-member temperatures minimising the NLL of this pool's targets (a dict, which also
        remembers those samples: a pool tempered with it fits no `Guarantee` on them)."""
        from committee_tasks.committees.temperature import fit_temperature

        self.predictions.require_outputs("temperature scaling (--temperature)")
        return FittedTemperatures({m: fit_temperature(self.predictions.outputs[m], self.predictions.targets)
                                   for m in self.members}, self.predictions.ids)

    # ---- questions ------------------------------------------------------------------------
    def score(self, committee) -> CommitteeResult:
        """A member's name, or a Single / Ensemble / Cascade, scored from the cached predictions."""
        return _committee(committee).evaluate(self.predictions, self.task)

    def fit(self, members: Sequence[str] | str, objective: Objective, settings: FitSettings | None = None):
        """The cascade ``members`` (in this order; a list, or "a,b" as the command line takes it)
        with thresholds fitted on this pool for ``objective``; None when no setting meets it.
        ``settings`` default to the task's confidence (`Task.default_confidence`)."""
        from committee_tasks.committees.scoring import member_names

        settings = settings or FitSettings(confidence=self.task.default_confidence)
        seen = self.tempered_on.intersection(self.predictions.ids.tolist()) if isinstance(objective, Guarantee) else ()
        if seen:  # what `EvalRequest` refuses as --guarantee with --temperature
            raise CommitteeError(f"a Guarantee needs members fixed before the calibration samples are seen; this "
                                 f"pool's temperatures were fitted on {len(seen)} of its {len(self.predictions.ids)} "
                                 "samples: fit them on other samples (another split or dataset), or fit a Match or "
                                 "Budget objective")
        return objective.fit(self.predictions, self.task, member_names(members), settings)

    def member(self, name: str) -> Member:
        """The built member (building it now if it was only described)."""
        spec = self.members[name]
        if not hasattr(spec, "module"):
            spec = self.members[name] = spec.build()
        return spec

    def card(self, committee, figures: Mapping[str, Any] | None = None,
             temperatures: Mapping[str, float] | None = None) -> CommitteeCard:
        """A committee card: what `load_committee` needs to run ``committee`` (a member's name, or
        a Single / Ensemble / Cascade) on new batches. ``temperatures``: the members' temperature
        scaling (a `tempered` pool's own by default). ``figures``: what it was chosen with; by
        default its figures on this pool (metric, MACs, exits and the number of samples), in the
        shape `tools/eval.py --cards` writes them."""
        from committee_tasks.committees.cards import CommitteeCard

        if committee is None:
            raise CommitteeError("no committee to make a card of: fit() returns None when no setting meets its "
                                 "objective (check before making a card)")
        committee = _committee(committee)
        if temperatures is None:
            temperatures = self.temperatures
        elif self.temperatures and dict(temperatures) != self.temperatures:
            raise CommitteeError(f"this pool is tempered with {self.temperatures}, which its committees were scored "
                                 f"and fitted with; a card with temperatures {dict(temperatures)} would exit "
                                 "otherwise: leave temperatures= out")
        used = {m: self.members[m] for m in committee.members}
        evaluated_with = self.predictions.fingerprints.get("members", {})
        for name, member in used.items():
            if name in evaluated_with and member.fingerprint != evaluated_with[name]:
                raise CommitteeError(f"member {name!r} changed since this pool was evaluated (its weights were "
                                     "written in place, e.g. trained further): the pool's figures are not its "
                                     "figures; evaluate the pool again (Pool.evaluate) and fit on that")
        if figures is None:
            scored = self.score(committee)
            figures = {"metric_name": self.task.metric_name, "metric": scored.metric, "samples": len(scored.macs),
                       "macs_mean": scored.macs_mean, "macs_worst": scored.macs_worst,
                       "exit_fractions": scored.exit_fractions}
        fingerprints = dict(self.predictions.fingerprints.get("dataset", {}))
        return CommitteeCard.from_committee(committee, self.task.name, used, temperatures=temperatures,
                                            figures=dict(figures or {}), output_dtype=self.options.output_dtype,
                                            dataset=fingerprints or None)


def _committee(committee):
    """A member's name as its `Single`; a committee as it is."""
    from committee_tasks.committees.scoring import Single

    return Single(committee) if isinstance(committee, str) else committee
