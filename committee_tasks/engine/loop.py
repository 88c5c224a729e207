"""The shared evaluation loop: one pass over the data for the whole pool, results into the cache.

Each sample is decoded once; each member gets its own preprocessing of it and runs only on the
samples it has no cached output for. Outputs are flushed to the cache shard by shard, so an
interrupted run resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from committee_tasks.engine.cache import MemberCache, PredictionCache
from committee_tasks.committees.scoring import PoolPredictions, SubsetRecord
from committee_tasks.committees.confidence import get_torch_confidence
from committee_tasks.core.devices import Stopwatch, autocast, place_module, resolve_device, to_device, use_amp
from committee_tasks.core.errors import CommitteeError
from committee_tasks.engine.inputs import make_loader
from committee_tasks.committees.subsets import member_subsets, subset_sums
from committee_tasks.core.threads import default_workers
from committee_tasks.core.task import Member, SampleDataset, Task

log = logging.getLogger(__name__)

OUTPUT_DTYPES = {"float16": np.float16, "float32": np.float32}


class NonFiniteOutputError(CommitteeError):
    """A member produced NaN or inf for a sample."""


@dataclass
class LoopOptions:
    batch_size: int = 128
    num_workers: int = field(default_factory=default_workers)  # the thread policy's (threads.py)
    device: str = "auto"
    amp: str | bool = "auto"
    shard_size: int = 4096
    output_dtype: str = "float16"
    progress: bool = True


@dataclass
class _Pending:
    cache: MemberCache
    needed: set[str]
    arrays: dict[str, list] = field(default_factory=lambda: defaultdict(list))  # key -> batches of rows
    count: int = 0

    def flush(self) -> None:
        if self.count:
            self.cache.write_shard({k: np.concatenate(v) for k, v in self.arrays.items() if v})
            for v in self.arrays.values():
                v.clear()
            self.count = 0


def subset_indices(n: int, limit: int | None) -> np.ndarray:
    """Indices of an evenly spaced subset of ``limit`` samples (all when None): class-sorted
    layouts (ImageNet folders) then still give every class, and the subset is deterministic."""
    if limit is None or limit >= n:
        return np.arange(n)
    if limit <= 0:
        raise CommitteeError(f"--limit must be positive, got {limit}")
    return np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))


def member_description(member: Member, output_dtype: str) -> dict:
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


def evaluate_pool(task: Task, members: Sequence[Member], dataset: SampleDataset,
                  cache: PredictionCache, limit: int | None = None,
                  options: LoopOptions | None = None) -> tuple[PoolPredictions, dict[str, float | None]]:
    """Cached outputs of every member on the dataset (computing what is missing), and each
    member's measured throughput (samples/s of its forward passes, as cached)."""
    options = options or LoopOptions()
    if options.output_dtype not in OUTPUT_DTYPES:
        raise CommitteeError(f"unknown output dtype {options.output_dtype!r}; valid: {list(OUTPUT_DTYPES)}")
    check_same_classes({m.name: m.num_classes for m in members})
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise CommitteeError(f"a member is listed twice: {names}")

    dataset_fp = dataset.fingerprint()
    folder = cache.dataset_folder(task.name, dataset.name, dataset_fp)
    all_ids = list(dataset.ids)
    indices = subset_indices(len(all_ids), limit)
    wanted = [all_ids[i] for i in indices]
    skipped = cache.skipped(folder)

    pending: dict[str, _Pending] = {}
    for m in members:
        mc = cache.member(folder, m.name, m.fingerprint, member_description(m, options.output_dtype))
        needed = set(wanted) - mc.cached_ids() - set(skipped)
        pending[m.name] = _Pending(mc, needed)
    subsets: dict[tuple[int, ...], _Pending] = {}
    if not task.caches_outputs:  # statistics of every member subset, computed while outputs are in memory
        for subset in member_subsets(len(members), task.max_subset_size):
            sc = subset_cache(task, cache, folder, [members[i] for i in subset])
            subsets[subset] = _Pending(sc, set(wanted) - sc.cached_ids() - set(skipped))
    todo = [i for i, sid in zip(indices, wanted)
            if any(sid in p.needed for p in (*pending.values(), *subsets.values()))]

    if todo:
        new_skips, new_notes = _run(task, members, dataset, todo, pending, options, subsets)
        skipped.update(new_skips)
        cache.record_dataset(folder, dataset_fp, new_skips, new_notes)
    else:
        log.info("all %d samples of %d members are cached in %s", len(wanted), len(members), folder)

    kept = [sid for sid in wanted if sid not in skipped]
    if not kept:
        raise CommitteeError(f"no sample of {dataset.name} could be read ({len(skipped)} skipped)")
    loaded = {m.name: pending[m.name].cache.load(kept) for m in members}
    notes = cache.notes(folder)
    preds = PoolPredictions.from_members(loaded, {sid: skipped[sid] for sid in wanted if sid in skipped},
                                         {sid: notes[sid] for sid in kept if sid in notes})
    preds.fingerprints = {"dataset": {"name": dataset.name, "fingerprint": dataset_fp},
                          "members": {m.name: m.fingerprint for m in members}}
    if subsets:
        preds.subsets = {frozenset(members[i].name for i in subset): _record(p.cache.load(kept))
                         for subset, p in subsets.items()}
    return preds, {m.name: pending[m.name].cache.throughput() for m in members}


def subset_cache(task: Task, cache: PredictionCache, folder, members: Sequence[Member]) -> MemberCache:
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
                       subsets: dict[tuple[int, ...], _Pending], ids: list[str], shard_size: int) -> None:
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
        p.count += len(rows)
        if p.count >= shard_size:
            p.flush()


def _run(task: Task, members: Sequence[Member], dataset: SampleDataset, todo: list[int],
         pending: dict[str, _Pending], options: LoopOptions,
         subsets: dict[tuple[int, ...], _Pending] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    device = resolve_device(options.device)
    amp = use_amp(device, options.amp)
    out_dtype = OUTPUT_DTYPES[options.output_dtype]
    transforms = {m.transform_key: m.transform for m in members}
    loader = make_loader(dataset, transforms, todo, options.batch_size, options.num_workers,
                         pin_memory=device.type == "cuda", member_inputs=task.member_inputs,
                         prefetch_batches=task.prefetch_batches)
    for m in members:
        m.module = place_module(m.module, device)
    watches = {m.name: Stopwatch(device) for m in members}
    timed = {m.name: 0 for m in members}
    skipped: dict[str, str] = {}
    notes: dict[str, str] = {}
    bar = tqdm(total=len(todo), desc=f"evaluating {len(members)} members", unit="sample",
               disable=not options.progress)
    try:
        for batch in loader:
            for s in batch.skipped:
                skipped[s.id] = s.reason
                log.warning("skipped sample %s: %s", s.id, s.reason)
            notes.update(batch.notes)
            kept = {}  # statistics-caching tasks: every member's probabilities of the batch, on the device
            for m in members:
                p = pending[m.name]
                rows = [i for i, sid in enumerate(batch.ids) if sid in p.needed]
                if subsets:  # every member runs on every sample some subset still needs
                    rows = list(range(len(batch.ids)))
                if not rows:
                    continue
                x = batch.inputs[m.transform_key]
                x = x[rows] if len(rows) < len(batch.ids) else x
                x = to_device(x, device)
                try:
                    with watches[m.name].section(), autocast(device, amp):
                        probs, macs = m.predict_with_cost(x)
                except Exception as err:  # e.g. a model fed another dataset's input size
                    raise CommitteeError(
                        f"member {m.name!r} failed on a batch of inputs of shape {tuple(x.shape)} "
                        f"(samples {[batch.ids[i] for i in rows][:3]}...): {type(err).__name__}: {err}"
                    ) from err
                timed[m.name] += len(rows)
                _check_finite(probs, m.name, [batch.ids[i] for i in rows])
                if subsets:
                    kept[m.name] = probs.float()
                    rows_new = [i for i in rows if batch.ids[i] in p.needed]
                    p.arrays["ids"].append(np.asarray([batch.ids[i] for i in rows_new]))
                    p.arrays["targets"].append(np.zeros(len(rows_new), dtype=np.int8))  # targets live in the statistics
                    p.arrays["macs"].append(np.asarray(macs)[rows_new])
                    p.count += len(rows_new)
                    if p.count >= options.shard_size:
                        p.flush()
                    continue
                probs = probs.cpu().numpy()
                p.arrays["ids"].append(np.asarray([batch.ids[i] for i in rows]))
                p.arrays["targets"].append(np.asarray([batch.targets[i] for i in rows]))
                p.arrays["outputs"].append(probs.astype(out_dtype))
                p.arrays["macs"].append(macs)
                p.count += len(rows)
                if p.count >= options.shard_size:
                    p.flush()
            if kept:
                targets = to_device(torch.stack([torch.as_tensor(t) for t in batch.targets]), device)
                _subset_statistics(task, members, kept, targets, subsets, batch.ids, options.shard_size)
            bar.update(len(batch.ids) + len(batch.skipped))
    finally:  # keep what was computed, even when interrupted or failing
        bar.close()
        for p in (subsets or {}).values():
            p.flush()
        for m in members:
            pending[m.name].flush()
            if timed[m.name]:
                pending[m.name].cache.add_timing(timed[m.name], watches[m.name].seconds, str(device),
                                                 options.batch_size)
    if skipped:
        log.warning("skipped %d unreadable samples", len(skipped))
    return skipped, notes


def _check_finite(probs: torch.Tensor, member: str, ids: list[str]) -> None:
    """Checked on the device, before outputs are copied anywhere."""
    bad = (~torch.isfinite(probs.reshape(len(probs), -1)).all(dim=1)).cpu().numpy()
    if bad.any():
        first = [ids[i] for i in np.flatnonzero(bad)[:5]]
        raise NonFiniteOutputError(
            f"member {member!r} produced NaN/inf outputs for {int(bad.sum())} samples, e.g. {first}; "
            "check its weights and preprocessing (or disable AMP with --amp off if it overflows in float16)"
        )
