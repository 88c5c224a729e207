"""The shared evaluation loop: one pass over the data for the whole pool, results into the cache.

Each sample is decoded once; each member gets its own preprocessing of it and runs only on the
samples it has no cached output for. Outputs are flushed to the cache shard by shard, so an
interrupted run resumes where it stopped.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from committee_tasks.engine.cache import BaseMemberCache, BasePredictionCache, MemoryPredictionCache
from committee_tasks.committees.predictions import PoolPredictions, SubsetRecord
from committee_tasks.committees.confidence import get_torch_confidence
from committee_tasks.core.devices import Stopwatch, autocast, place_module, resolve_device, to_device, use_amp
from committee_tasks.core.errors import CommitteeError, ShareDone
from committee_tasks.engine.distributed import Rank, Share, join, rank_device, torchrun_rank, wait_for_every_rank
from committee_tasks.engine.inputs import PoolInputs, Skipped, declared_input_shapes, make_loader
from committee_tasks.committees.subsets import member_subsets, subset_sums
from committee_tasks.core.threads import default_workers, other_ranks_done
from committee_tasks.core.member_spec import MemberSpec
from committee_tasks.core.device_preprocessing import device_splits
from committee_tasks.core.members import Member, check_eval_mode
from committee_tasks.core.samples import SampleDataset
from committee_tasks.core.task import Task
from committee_tasks.core.zoo import each_with_weights

log = logging.getLogger(__name__)

OUTPUT_DTYPES = {"float16": np.float16, "float32": np.float32}
MEMBER_FAILURE = "member failure"  # how the reason of a sample skipped for a member's failure starts


# never the sample's fault: the run ends (a CUDA error leaves the device unusable, so every sample would "fail")
DEVICE_TROUBLE = (MemoryError, torch.cuda.OutOfMemoryError,
                  getattr(torch, "AcceleratorError", torch.cuda.OutOfMemoryError))


class MemberFailure(CommitteeError):
    """A member raised on a batch (its cause is the member's own exception)."""


def output_dtype(name: str) -> type[np.floating]:
    """The numpy dtype cached outputs are rounded to; an unknown name is refused."""
    if name not in OUTPUT_DTYPES:
        raise CommitteeError(f"unknown output dtype {name!r}; valid: {list(OUTPUT_DTYPES)}")
    return OUTPUT_DTYPES[name]


class LoopThroughput(dict):
    """Each member's samples/s of forward passes in the loop (all writers together), in
    ``by_writer`` each writer's own (a torchrun rank's or a shard's on its device), and in
    ``phases`` where this process's pass over the missing samples spent its wall time (empty when
    everything was cached)."""

    def __init__(self, overall: dict[str, float | None], by_writer: dict[str, dict[str, float]],
                 phases: dict[str, float] | None = None):
        super().__init__(overall)
        self.by_writer = by_writer
        self.phases = phases or {}


class LoopPhases:
    """Wall seconds of one pass by phase: set-up (fingerprint, cache listing, building members),
    waiting for the next batch, the members (on CUDA: launching them, and waiting for them where
    their outputs are read), keeping outputs (copies, rounding, checks), and cache writes. Each
    ``lap`` gives the time since the previous one to a phase, so the phases sum to the pass."""

    NAMES = ("setup", "waiting_for_data", "members", "outputs", "cache_writes")

    def __init__(self):
        self.seconds = dict.fromkeys(self.NAMES, 0.0)
        self.samples = 0
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] += now - self._last
        self._last = now

    def summary(self) -> dict[str, float]:
        total = sum(self.seconds.values())
        return {**self.seconds, "total": total, "samples": self.samples,
                "samples_per_s": self.samples / total if total > 0 else 0.0}


class NonFiniteOutputError(CommitteeError):
    """A member produced NaN or inf for a sample."""


@dataclass
class LoopOptions:
    batch_size: int = 128
    num_workers: int = field(default_factory=default_workers)  # the thread policy's (threads.py)
    device: str = "auto"
    amp: str | bool = "auto"
    shard_size: int = 4096
    flush_seconds: float = 60.0  # also flushed when this old: a kill loses at most about this much work
    output_dtype: str = "float16"
    progress: bool = True
    share: Share | None = None  # --shard I/N: only this share of the missing samples (engine/distributed.py)
    # image members' float conversion and normalisation run on the batch on the device, so uint8
    # pixels are stacked and copied (core/device_preprocessing.py): "auto" (on CUDA), "on", "off"
    device_preprocessing: str = "auto"


@dataclass
class _Pending:
    cache: BaseMemberCache
    needed: set[str]
    arrays: dict[str, list] = field(default_factory=lambda: defaultdict(list))  # key -> batches of rows
    count: int = 0
    since: float = field(default_factory=time.monotonic)  # the last write (or the pass's start)
    phases: LoopPhases | None = None

    def flush(self) -> None:
        if self.count:
            if self.phases:
                self.phases.lap("outputs")
            self.cache.write_shard({k: np.concatenate(v) for k, v in self.arrays.items() if v})
            for v in self.arrays.values():
                v.clear()
            self.count = 0
            if self.phases:
                self.phases.lap("cache_writes")
        self.since = time.monotonic()

    def added(self, rows: int, options: "LoopOptions") -> None:
        """Count ``rows`` more; flush at the shard size or when the last write is ``flush_seconds``
        old, so an interruption loses at most about that much work."""
        self.count += rows
        if self.count >= options.shard_size or time.monotonic() - self.since >= options.flush_seconds:
            self.flush()


def subset_indices(n: int, limit: int | None, warn: bool = True) -> np.ndarray:
    """Indices of an evenly spaced subset of ``limit`` samples (all when None): class-sorted
    layouts (ImageNet folders) then still give every class, and the subset is deterministic."""
    if limit is not None and limit > n and warn:
        log.warning("--limit %d is more than the dataset's %d samples: evaluating all %d", limit, n, n)
    if limit is None or limit >= n:
        return np.arange(n)
    if limit <= 0:
        raise CommitteeError(f"--limit must be positive, got {limit}")
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def member_cache_key(task: Task, member: Member | MemberSpec, output_dtype: str) -> str:
    """The key of a member's cache folder: its fingerprint, and the output dtype where outputs are
    cached and it is not the default float16 (so float16 caches written before keep their key,
    and float32 outputs never share a folder with float16 ones)."""
    if not task.caches_outputs or output_dtype == "float16":
        return member.fingerprint
    return hashlib.sha256(f"{member.fingerprint}|outputs:{output_dtype}".encode()).hexdigest()


def member_description(member: Member | MemberSpec, output_dtype: str) -> dict:
    return {"member": member.name, "weights_sha256": member.weights_sha256,
            "preprocessing": member.transform_key, "num_classes": member.num_classes,
            "output_dtype": output_dtype}


def check_same_classes(counts: dict[str, int]) -> None:
    """Members of one committee must predict the same classes: ``counts`` maps name -> classes."""
    if len(set(counts.values())) > 1:
        raise CommitteeError(
            f"members predict different numbers of classes ({counts}); a committee needs members "
            "trained on the same label set"
        )


def evaluate_pool(task: Task, members: Sequence[Member | MemberSpec], dataset: SampleDataset,
                  cache: BasePredictionCache, limit: int | None = None,
                  options: LoopOptions | None = None) -> tuple[PoolPredictions, dict[str, float | None]]:
    """Cached outputs of every member on the dataset (computing what is missing), and each
    member's measured throughput (samples/s of its forward passes, as cached).

    ``members`` are built `Member`s or `MemberSpec`s (`Task.describe_member`): a spec is built
    only when some sample is missing for it, so a fully cached pool needs no model and no weights."""
    options = options or LoopOptions()
    phases = LoopPhases()
    rank = torchrun_rank()
    if rank is not None:  # a torchrun job: this rank's share, on its own device
        if options.share is not None:
            raise CommitteeError(f"--shard {options.share} inside a torchrun job: torchrun already shares the "
                                 "samples between its ranks; drop --shard")
        if isinstance(cache, MemoryPredictionCache):
            raise CommitteeError("a torchrun job with --cache-dir memory: its ranks' shares meet only in a cache on "
                                 "disk (one folder every rank writes); give a --cache-dir folder, or run one process")
        options = replace(options, device=rank_device(rank, options.device), share=rank.share)
        join(rank, options.device)
    _check_pool(members, options, task)  # at least one member: members[0] below
    dataset.check_classes(members[0].num_classes)
    known = getattr(dataset, "targets", None)  # an ArrayDataset's: checked before anything runs
    if isinstance(known, np.ndarray):
        task.check_targets(known, dataset.ids, members[0].num_classes)
    dataset_fp = dataset.fingerprint()
    folder = cache.dataset_folder(task.name, dataset.name, dataset_fp)
    all_ids = list(dataset.ids)
    indices = subset_indices(len(all_ids), limit)
    wanted = [all_ids[i] for i in indices]
    skipped = cache.skipped(folder)

    pending, subsets = _open_caches(task, members, cache, folder, set(wanted), options)
    retry = _skips_to_retry(task, members, dataset, pending, subsets, indices, wanted, skipped)
    todo = [i for rank, (i, sid) in enumerate(zip(indices, wanted))
            if any(sid in p.needed for p in (*pending.values(), *subsets.values()))
            and (options.share is None or options.share.holds(rank, options.batch_size))]
    computed = 0  # samples this process computed (skips not counted)
    if todo:
        cache.require_writable(f"{len(todo)} samples are missing from it")  # before any member is built or run
        built = _build_needed(members, pending, every=bool(subsets))
        new_skips, new_notes = _run(task, built, dataset, todo, pending, options, subsets, phases)
        read_again = retry & {all_ids[i] for i in todo} - set(new_skips)
        for sid in read_again:
            skipped.pop(sid)
        if read_again:
            log.info("%d samples skipped by an earlier run were read this time", len(read_again))
        skipped.update(new_skips)
        cache.record_dataset(folder, dataset_fp, new_skips, new_notes, read_again)
        computed = len(todo) - len(new_skips)
    elif options.share is None:
        log.info("all %d samples of %d members are cached in %s", len(wanted), len(members), folder)
    else:  # this share's part only: the rest may well be missing
        held = sum(options.share.holds(place, options.batch_size) for place in range(len(wanted)))
        batches = -(-len(wanted) // options.batch_size)
        log.info("share %s: %s", options.share,
                 f"its {held} samples are cached" if held else
                 f"holds none of the {len(wanted)} samples ({batches} batches of {options.batch_size} shared among "
                 f"{options.share.count}: fewer batches than shares)")
    if options.share is not None:  # every share's shards, skips and timings, read afresh
        skipped, pending, subsets = _after_share(task, members, cache, folder, wanted, options, rank,
                                                 computed)

    kept = [sid for sid in wanted if sid not in skipped]
    if not kept:
        raise CommitteeError(f"no sample of {dataset.name} could be read ({len(skipped)} skipped)")
    loaded = {m.name: pending[m.name].cache.load(kept) for m in members}
    notes = cache.notes(folder)
    records = {frozenset(members[i].name for i in subset): _record(p.cache.load(kept)) for subset, p in subsets.items()}
    preds = PoolPredictions.from_members(loaded, {sid: skipped[sid] for sid in wanted if sid in skipped},
                                         {sid: notes[sid] for sid in kept if sid in notes},
                                         subsets=records or None, num_classes=members[0].num_classes)
    for m in members:  # a member read from the cache alone still says how its cost is made up
        if isinstance(m, MemberSpec) and not m.is_built:
            m.cached_cost_note = pending[m.name].cache.manifest.get("cost_note")
    if getattr(preds, "targets", None) is not None and not isinstance(known, np.ndarray):  # what the dataset gave
        task.check_targets(preds.targets, preds.ids, members[0].num_classes)
    # a plugin's metric, before any search; a few samples' statistics tell (not the whole pool's, on every load)
    few = preds.stage([members[0].name], task, np.arange(min(len(kept), 8))).statistics
    task.check_statistics(few, min(len(kept), 8))
    task.check_metric(few.sum(axis=0))
    preds.fingerprints = {"dataset": {"name": dataset.name, "fingerprint": dataset_fp},
                          "members": {m.name: m.fingerprint for m in members}}
    return preds, LoopThroughput({m.name: pending[m.name].cache.throughput() for m in members},
                                 {m.name: pending[m.name].cache.writer_throughputs() for m in members},
                                 phases.summary() if todo else None)


def _after_share(task: Task, members, cache: BasePredictionCache, folder, wanted: list[str], options: LoopOptions,
                 rank: Rank | None, computed: int) -> tuple[dict[str, str], dict, dict]:
    """After this process's share: torchrun's barrier (rank 0 goes on), then the union of every
    share's shards, which must be complete to go on; returns every share's skipped samples and
    the caches reopened (with every writer's shards and timings)."""
    if rank is not None:
        wait_for_every_rank()
        if rank.rank != 0:
            raise ShareDone(f"rank {rank.rank} of {rank.world}: computed {computed} samples; rank 0 reports")
        other_ranks_done()  # its measuring then runs on every CPU, not its rank's share
    skipped = cache.skipped(folder)  # other shares' skips too
    pending, subsets = _open_caches(task, members, cache, folder, set(wanted) - set(skipped), options)
    missing = set().union(*(p.needed for p in (*pending.values(), *subsets.values())))
    if not missing:
        return skipped, pending, subsets
    if rank is not None:
        raise CommitteeError(f"after every rank's share {len(missing)} samples are still missing from {folder} "
                             f"(e.g. {sorted(missing)[:3]}); a rank failed: run the job again to compute them")
    # whose they are by this run's split: shares run with another --batch-size or --limit split
    # otherwise, which can leave samples in no share that ran; naming the owners tells how to finish
    place = {sid: i for i, sid in enumerate(wanted)}
    count, batch = options.share.count, options.batch_size
    owners = sorted({Share.owner(place[sid], batch, count) for sid in missing})
    raise ShareDone(f"share {options.share}: computed {computed} samples; {len(missing)} of the {len(wanted)} samples "
                    f"are still missing, in share(s) {', '.join(f'{i}/{count}' for i in owners)} of this split "
                    f"(batches of {batch}). Run them with the same options: shares split by batches, so every "
                    "share must use the same --batch-size and --limit. The same command without --shard, after "
                    "them, reads the union (or computes what is still missing)")


def _skips_to_retry(task: Task, members: Sequence[Member | MemberSpec], dataset: SampleDataset,
                    pending: dict[str, _Pending], subsets: dict, indices, wanted: list[str],
                    skipped: dict[str, str]) -> set[str]:
    """Which samples skipped by an earlier run this run tries again (a file unreadable then may
    have been fixed since); the others leave every cache's ``needed``. When the run computes other
    samples anyway, all of them (they are few); when all else is cached, only those that now read,
    decode and preprocess to the members' sizes as the loop would (`read_as_the_loop`: one read
    each, no model built), so a fully cached pool with a still-corrupt video builds nothing; not
    those a member failed on."""
    everyone = (*pending.values(), *subsets.values())
    before = [(i, sid) for i, sid in zip(indices, wanted) if sid in skipped]
    if not before:
        return set()
    others = set().union(*(p.needed for p in everyone)) - set(skipped)
    read = None if others else read_as_the_loop(task, members, dataset)
    # a sample a member failed on reads well: it is tried again only with other samples (a changed
    # member has none cached), not by building every member for it alone
    retry = {sid for i, sid in before
             if read is None or (not skipped[sid].startswith(MEMBER_FAILURE) and read(int(i)))}
    if retry:
        log.info("trying again %d samples skipped by an earlier run", len(retry))
    still_skipped = set(skipped) - retry
    for p in everyone:
        p.needed -= still_skipped
    return retry


def read_as_the_loop(task: Task, members: Sequence[Member | MemberSpec], dataset: SampleDataset):
    """``read(index)``: whether the sample reads, decodes and preprocesses (to the sizes the members
    declare) as the loop's data loading would take it, without building a member: a video's
    decoding is in its preprocessing, so reading the dataset alone would pass a corrupt file."""
    transforms = {}
    for m in members:
        transform = m.transform if isinstance(m, Member) else getattr(m.entry, "preprocessing", None)
        if transform is None:  # a spec of no zoo entry: its preprocessing is known only once built
            return lambda index: _reads(dataset, index)
        transforms[m.transform_key] = transform if isinstance(m, Member) else transform()
    inputs = PoolInputs(dataset, transforms, task.member_inputs, declared_input_shapes(members))
    return lambda index: not isinstance(inputs[index], Skipped)


def _reads(dataset: SampleDataset, index: int) -> bool:
    try:
        dataset[index]
    except Exception:  # still unreadable: stays skipped
        return False
    return True


def _check_pool(members: Sequence[Member | MemberSpec], options: LoopOptions, task: Task) -> None:
    if not members:
        raise CommitteeError("no members to evaluate: give at least one (a zoo model's name or a Member)")
    for m in members:
        made_for = _made_for_another_task(m, task)
        if made_for:
            raise CommitteeError(f"member {m.name!r} was made for task {made_for!r}, whose to_probs turns its outputs "
                                 f"into probabilities, but the pool is of task {task.name!r}: make it with "
                                 f"Member.from_module(..., task={task.name!r})")
    output_dtype(options.output_dtype)
    check_same_classes({m.name: m.num_classes for m in members})
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise CommitteeError(f"a member is listed twice: {names}")


def _made_for_another_task(member: Member | MemberSpec, task: Task) -> str | None:
    """The task whose ``to_probs`` a member turns its outputs into probabilities with (a
    `Member.from_module` member's), where it is another rule than ``task``'s (softmax for a
    multi-label task's sigmoid outputs); None where the rule is the same (a subclass of its task)
    or the member's rule is no task's (an outputs spec)."""
    made_for = getattr(getattr(member, "to_probs", None), "__self__", None)
    if not isinstance(made_for, Task) or type(made_for).to_probs is type(task).to_probs:
        return None
    return made_for.name


def _open_caches(task: Task, members: Sequence[Member | MemberSpec], cache: BasePredictionCache, folder,
                 wanted: set[str], options: LoopOptions
                 ) -> tuple[dict[str, _Pending], dict[tuple[int, ...], _Pending]]:
    """Each member's cache and the samples it lacks; for statistics-caching tasks, the same for
    every member subset (computed while the members' outputs are in memory)."""
    pending = {}
    for m in members:
        mc = cache.member(folder, m.name, member_cache_key(task, m, options.output_dtype),
                          member_description(m, options.output_dtype))
        pending[m.name] = _Pending(mc, wanted - mc.cached_ids())
    subsets: dict[tuple[int, ...], _Pending] = {}
    if not task.caches_outputs:
        for subset in member_subsets(len(members), task.max_subset_size):
            sc = subset_cache(task, cache, folder, [members[i] for i in subset])
            subsets[subset] = _Pending(sc, wanted - sc.cached_ids())
    return pending, subsets


def _build_needed(members: Sequence[Member | MemberSpec], pending: dict[str, _Pending], every: bool) -> list[Member]:
    """The members that must run, built: those missing some sample, or all of them when ``every``
    (a subset's statistics need every member's outputs). Specs of the others stay unbuilt."""
    needed = [m for m in members if every or pending[m.name].needed]
    specs = [m.name for m in needed if isinstance(m, MemberSpec) and not m.is_built]
    if specs:
        log.info("building %d of %d members (the rest are cached): %s", len(specs), len(members), ", ".join(specs))
    return each_with_weights(needed, lambda m: m.build() if isinstance(m, MemberSpec) else m)


def subset_cache(task: Task, cache: BasePredictionCache, folder,
                 members: Sequence[Member | MemberSpec]) -> BaseMemberCache:
    """The cache of one member subset's per-sample statistics and confidences. Its key is the
    members' fingerprints (as a set: the mean does not depend on order) and the confidences."""
    description = {"members": sorted(m.name for m in members),
                   "member_fingerprints": sorted(m.fingerprint for m in members),
                   "confidences": list(task.cached_confidences), "task": task.name}
    fingerprint = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()
    return cache.member(folder, "subset", fingerprint, description)


def _record(arrays: dict[str, np.ndarray]) -> SubsetRecord:
    confidence = {k.removeprefix("confidence_"): v for k, v in arrays.items() if k.startswith("confidence_")}
    return SubsetRecord(arrays["statistics"], confidence)


def _subset_statistics(task: Task, members: Sequence[Member], probs: dict[str, "torch.Tensor"], targets,
                       subsets: dict[tuple[int, ...], _Pending], ids: list[str], options: LoopOptions) -> None:
    """Statistics and confidences of each subset's mean prediction for one batch, each subset's
    probability sum made from its parent's with one add (depth-first)."""
    confidences = {name: get_torch_confidence(name) for name in task.cached_confidences}
    outputs = [probs[m.name] for m in members]
    for subset, total in subset_sums(outputs, max(len(s) for s in subsets)):
        p = subsets[subset]
        rows = [i for i, sid in enumerate(ids) if sid in p.needed]
        if not rows:
            continue
        combined = total[rows] / float(len(subset))
        p.arrays["ids"].append(np.asarray([ids[i] for i in rows]))
        p.arrays["statistics"].append(
            task.sample_statistics_torch(combined, targets[rows]).cpu().numpy().astype(np.float64))
        for name, fn in confidences.items():
            p.arrays[f"confidence_{name}"].append(fn(combined).float().cpu().numpy())
        p.added(len(rows), options)


@dataclass
class _Runner:
    """One pass of the loop over the samples still missing: runs each member on the rows it
    lacks (every row, for statistics-caching tasks) and hands the results to its cache."""

    task: Task
    members: Sequence[Member]
    pending: dict[str, _Pending]
    options: LoopOptions
    subsets: dict[tuple[int, ...], _Pending] | None = None
    phases: LoopPhases = field(default_factory=LoopPhases)

    def __post_init__(self):
        for p in (*self.pending.values(), *(self.subsets or {}).values()):
            p.phases = self.phases
            p.since = time.monotonic()  # the pass starts: nothing computed is unwritten yet
        self.device = resolve_device(self.options.device)
        self.amp = use_amp(self.device, self.options.amp)
        self.out_dtype = output_dtype(self.options.output_dtype)
        for m in self.members:
            check_eval_mode(m)
            m.module = place_module(m.module, self.device)
        self.watches = {m.name: Stopwatch(self.device) for m in self.members}
        self.timed = {m.name: 0 for m in self.members}
        self.split = device_splits(self.members, self.device, self.options.device_preprocessing)

    def host_transforms(self) -> dict[str, Any]:
        """What the data loading applies to each sample, by transform key: the whole preprocessing,
        or its host part where the rest runs on the device."""
        return {m.transform_key: self.split[m.transform_key].host if m.transform_key in self.split else m.transform
                for m in self.members}

    def to_member_inputs(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """``x``, a batch on the device as the data loading made it, as the members of ``key`` take it."""
        return self.split[key].device(x) if key in self.split else x

    def predict(self, m: Member, batch, rows: list[int], on_device: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, np.ndarray]:
        """``on_device``: the batch's whole inputs by preprocessing, copied to the device once and
        shared by the members that take them."""
        self.phases.lap("outputs")
        key = m.transform_key
        x = batch.inputs[key]
        if len(rows) < len(batch.ids):
            x = self.to_member_inputs(key, to_device(x[rows], self.device))
        else:
            if key not in on_device:
                on_device[key] = self.to_member_inputs(key, to_device(x, self.device))
            x = on_device[key]
        try:
            with self.watches[m.name].section(), autocast(self.device, self.amp):
                probs, macs = m.predict_with_cost(x)
        except Exception as err:  # e.g. a model fed another dataset's input size
            if worker_died(err):  # raised wherever the main thread was, here too: not the member's failure
                raise
            hint = f" ({self.task.member_failure_hint})" if self.task.member_failure_hint else ""
            raise MemberFailure(
                f"member {m.name!r} failed on a batch of inputs of shape {tuple(x.shape)} "
                f"(samples {[batch.ids[i] for i in rows][:3]}...): {type(err).__name__}: {err}{hint}"
            ) from err
        self.timed[m.name] += len(rows)
        if probs.dim() < 2 or probs.shape[1] != m.num_classes:  # scored as if it had the classes it declares
            raise CommitteeError(f"member {m.name!r} declares {m.num_classes} classes but outputs shape "
                                 f"{tuple(probs.shape)} (classes on dimension 1): give its num_classes as the "
                                 "module's output width, or a class map selecting the dataset's classes")
        if self.subsets:  # kept on the device; otherwise checked on the host copy (one wait per member)
            _check_finite(probs, m.name, [batch.ids[i] for i in rows])
        self.phases.lap("members")
        return probs, macs

    def run_batch(self, batch) -> dict[str, str]:
        """Run every member on the batch's rows it lacks and hand the results to the caches; returns
        the samples skipped because a member fails on them alone (see `isolate`), with the reason.
        A skipped sample is kept in no member's cache: a committee needs every member's output."""
        on_device: dict[str, torch.Tensor] = {}  # freed with the batch, before the next one arrives
        results = {}  # member -> (rows, probabilities or host outputs, MACs)
        failed: dict[int, str] = {}  # row -> why
        try:
            for m in self.members:
                p = self.pending[m.name]
                rows = (list(range(len(batch.ids))) if self.subsets  # every member runs where any subset needs it
                        else [i for i, sid in enumerate(batch.ids) if sid in p.needed])
                rows = [i for i in rows if i not in failed]
                if not rows:
                    continue
                try:
                    probs, macs = self.predict(m, batch, rows, on_device)
                except MemberFailure as failure:
                    alone = self.isolate(m, batch, rows, failure)  # raises unless some fail alone, others run
                    failed.update(alone)
                    rows = [i for i in rows if i not in alone]
                    if not rows:
                        continue
                    probs, macs = self.predict(m, batch, rows, on_device)
                if not self.subsets:
                    probs = probs.cpu().numpy()  # waits for the member on CUDA
                    self.phases.lap("members")
                    _check_finite(probs, m.name, [batch.ids[i] for i in rows])
                results[m.name] = (rows, probs, np.asarray(macs))
        except BaseException:  # interrupted, or a member's error: the members that finished keep the batch
            if not self.subsets:
                self.keep(batch, results, failed)
            raise
        self.keep(batch, results, failed)
        return {batch.ids[i]: reason for i, reason in failed.items()}

    def keep(self, batch, results: dict[str, tuple], failed: dict[int, str]) -> None:
        """Hand each member's results of the batch to its cache, without the rows a member failed
        on (members before the failing one ran on them too); for statistics-caching tasks also
        every subset's statistics, which need every member's probabilities."""
        for name, (rows, probs, macs) in results.items():
            keep = [k for k, i in enumerate(rows) if i not in failed]
            rows, probs, macs = [rows[k] for k in keep], probs[keep], macs[keep]
            results[name] = rows, probs, macs
            p = self.pending[name]
            if not rows:
                continue
            if self.subsets:
                needed = [k for k, i in enumerate(rows) if batch.ids[i] in p.needed]
                self.append(p, batch, [rows[k] for k in needed], macs[needed])
            else:
                self.append(p, batch, rows, macs, targets=[batch.targets[i] for i in rows],
                            outputs=probs.astype(self.out_dtype))
        rows = next(iter(results.values()))[0] if results else []  # statistics-caching: the same for every member
        if self.subsets and rows:
            kept = {name: probs.float() for name, (_, probs, _) in results.items()}
            targets = to_device(torch.stack([torch.as_tensor(batch.targets[i]) for i in rows]), self.device)
            _subset_statistics(self.task, self.members, kept, targets, self.subsets, [batch.ids[i] for i in rows],
                               self.options)

    def isolate(self, m: Member, batch, rows: list[int], error: MemberFailure) -> dict[int, str]:
        """The rows ``m`` fails on when run on each alone, with why, after it failed on them
        together: those samples are odd (a size the model cannot take, a degenerate image), and a
        long run skips and counts them rather than dying. The batch's failure is raised instead when
        no row fails alone (the batch as a whole was the trouble), or every row does and the member
        has run on nothing yet (the member is the trouble: wrong weights, a size it never takes),
        or on running out of memory or a device error (after which the device runs nothing)."""
        if isinstance(error.__cause__, DEVICE_TROUBLE):
            raise error
        alone = {}
        for i in rows:
            x = self.to_member_inputs(m.transform_key, to_device(batch.inputs[m.transform_key][[i]], self.device))
            try:
                with torch.no_grad(), autocast(self.device, self.amp):
                    m.predict_with_cost(x)
            except DEVICE_TROUBLE:
                raise error from None
            except Exception as err:
                if worker_died(err):  # as in `predict`: the data loading's failure, not this sample's
                    raise
                first_line = (str(err).strip().splitlines() or [""])[0][:300]
                alone[i] = (f"{MEMBER_FAILURE}: member {m.name!r} fails on this sample alone (input shape "
                            f"{tuple(x.shape)}): {type(err).__name__}: {first_line}")
        ran_before = self.timed[m.name] > 0 or bool(self.pending[m.name].cache.cached_ids())
        if not alone or (len(alone) == len(rows) and not ran_before):
            raise error
        for i, reason in alone.items():
            log.warning("skipped sample %s: %s", batch.ids[i], reason)
        return alone

    def append(self, p: _Pending, batch, rows: list[int], macs, **arrays) -> None:
        p.arrays["ids"].append(np.asarray([batch.ids[i] for i in rows]))
        p.arrays["macs"].append(macs)
        for key, value in arrays.items():
            p.arrays[key].append(np.asarray(value))
        p.added(len(rows), self.options)

    def finish(self) -> None:
        """Flush every pending shard and record each member's timing; one member's failure (a
        full disk) does not keep the others' outputs from their caches: all are tried, then the
        first error is raised."""
        errors = []

        def attempt(step, *args):
            try:
                step(*args)
            except Exception as err:
                errors.append(err)

        for p in (self.subsets or {}).values():
            attempt(p.flush)
        for m in self.members:
            attempt(self.pending[m.name].flush)
            if self.timed[m.name]:
                attempt(self.pending[m.name].cache.add_timing, self.timed[m.name], self.watches[m.name].seconds,
                        str(self.device), self.options.batch_size)
                if m.cost_note():
                    attempt(self.pending[m.name].cache.record_cost_note, m.cost_note())
        if errors:
            raise errors[0]


def worker_died(err: BaseException) -> bool:
    """A DataLoader worker process died (killed, out of memory). torch's SIGCHLD handler raises
    this in the main thread wherever it is, in a member's forward pass too."""
    return isinstance(err, RuntimeError) and str(err).startswith("DataLoader worker (pid")


def _run(task: Task, members: Sequence[Member], dataset: SampleDataset, todo: list[int],
         pending: dict[str, _Pending], options: LoopOptions,
         subsets: dict[tuple[int, ...], _Pending] | None = None,
         phases: LoopPhases | None = None) -> tuple[dict[str, str], dict[str, str]]:
    phases = phases or LoopPhases()
    runner = _Runner(task, members, pending, options, subsets, phases)
    loader = make_loader(dataset, runner.host_transforms(), todo, options.batch_size,
                         options.num_workers, pin_memory=runner.device.type == "cuda",
                         member_inputs=task.member_inputs, prefetch_batches=task.prefetch_batches,
                         input_shapes=declared_input_shapes(members))
    skipped: dict[str, str] = {}
    notes: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc=f"evaluating {len(members)} members", unit="sample",
               disable=not options.progress)
    phases.lap("setup")
    # warnings during the pass (a skipped sample, outputs that look like probabilities) on lines of
    # their own, above the bar, not written over by it
    redirect = logging_redirect_tqdm([logging.root, log]) if options.progress else contextlib.nullcontext()
    try:
        with redirect:
            for batch in loader:
                phases.lap("waiting_for_data")
                phases.samples += len(batch)
                for s in batch.skipped:
                    skipped[s.id] = s.reason
                    log.warning("skipped sample %s: %s", s.id, s.reason)
                for part in batch.parts():  # one per input shape (images of different sizes)
                    notes.update(part.notes)
                    skipped.update(runner.run_batch(part))
                bar.update(len(batch) + len(batch.skipped))
                phases.lap("outputs")
    except RuntimeError as err:
        if not worker_died(err):
            raise
        raise CommitteeError(f"the data loading failed, not a member: {str(err).splitlines()[0]} Most often the "
                             "system ran out of memory and killed it (dmesg says); what was computed is kept. Run the "
                             "same command again to go on, with fewer --workers if memory is short") from err
    finally:  # keep what was computed, even when interrupted or failing
        bar.close()
        runner.finish()
        phases.lap("outputs")
    log.info("loop: %s", ", ".join(f"{k} {v:.2f} s" for k, v in phases.seconds.items()))
    if skipped:
        log.warning("skipped %d samples (each with its reason above)", len(skipped))
    return skipped, notes


def non_finite_rows(probs: torch.Tensor | np.ndarray) -> np.ndarray:
    """Which rows of ``probs`` (N, ...) hold a NaN or inf, as a boolean array."""
    if isinstance(probs, np.ndarray):
        return ~np.isfinite(probs.reshape(len(probs), -1)).all(axis=1)
    return (~torch.isfinite(probs.reshape(len(probs), -1)).all(dim=1)).cpu().numpy()


def _check_finite(probs: torch.Tensor | np.ndarray, member: str, ids: list[str]) -> None:
    """Checked before outputs are kept anywhere (on the device, or on their host copy)."""
    bad = non_finite_rows(probs)
    if bad.any():
        first = [ids[i] for i in np.flatnonzero(bad)[:5]]
        raise NonFiniteOutputError(
            f"member {member!r} produced NaN/inf outputs for {int(bad.sum())} samples, e.g. {first}; "
            "check its weights and preprocessing (or disable AMP with --amp off if it overflows in float16)"
        )
