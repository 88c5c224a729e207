"""Confidence and statistics of the mean prediction of every member subset, from the members'
cached outputs: the search's first phase. For 8 members x 50,000 samples x 1,000 classes that is
162 subsets, 8 billion additions if every class of every subset's mean is formed.

Two paths, with equal results:

* **Candidate classes** (classification-like outputs, a confidence of the mean's largest values
  such as max_prob or margin, statistics of its top class such as top-1): a subset's mean is
  formed only on each sample's candidate classes, every member's ``CANDIDATES`` most probable
  ones. Outside them a member's probability is at most its next-largest one (its bound), so a
  class outside has a mean at most the mean of the members' bounds: sums run in the same member
  order and float rounding is monotone. Where the candidates' largest values beat that, they are
  the full mean's, and numpy's first-of-ties argmax over the candidates (sorted by class) is its
  argmax. The few samples where they do not (about 1% of an ImageNet-like pool) take the full path.
* **Full**: each subset's probability sum made from its parent's with one add, depth-first.

Sums run in member order in float32 and means divide by the member count, as `Task.combine`
does, so the figures equal the committees' (`PoolPredictions.stage`). Both paths run in worker
threads over disjoint chunks of samples (`core.threads.map_in_threads`).
"""
from __future__ import annotations

import threading
from typing import Callable, Sequence

import numpy as np
import torch

from committee_tasks.committees.confidence import get_torch_confidence, top_value_form
from committee_tasks.committees.subsets import member_subsets, subset_sums
from committee_tasks.core.task import Task, as_float32
from committee_tasks.core.threads import available_cpus, map_in_threads

CANDIDATES = 2  # most probable classes per member; 1 leaves ~4x more samples to the full path
SubsetColumns = tuple[dict[tuple[int, ...], np.ndarray], dict[tuple[int, ...], np.ndarray]]


class _Columns:
    """The per-sample arrays being filled, one confidence and one statistics array per subset;
    workers write disjoint rows."""

    def __init__(self, subsets: list[tuple[int, ...]], n: int, width: int):
        self.conf = {s: np.empty(n, np.float32) for s in subsets}
        self.stats = {s: np.empty((n, width), np.float64) for s in subsets}

    def put(self, subset: tuple[int, ...], rows: np.ndarray | slice, conf, stats) -> None:
        self.conf[subset][rows] = conf
        self.stats[subset][rows] = stats


def subset_columns(outputs: Sequence[np.ndarray], targets: np.ndarray, confidence, task: Task,
                   max_size: int, chunk: int | None = None) -> SubsetColumns:
    """Per-sample confidence (float32) and statistics (float64) of the mean of every subset of up
    to ``max_size`` members, keyed by sorted member-index tuples; ``chunk`` samples per piece of
    work (default: about 8 pieces per worker thread, so that a slow one is not waited for long)."""
    n = len(targets)
    subsets = member_subsets(len(outputs), max_size)
    top_form, top_statistics = top_value_form(confidence), _top_class_statistics(task)
    shortcut = top_form is not None and top_statistics is not None and outputs[0].ndim == 2
    chunk = chunk or _rows_per_piece(n)
    chunks = [slice(start, min(start + chunk, n)) for start in range(0, n, chunk)]
    width = task.sample_statistics(np.asarray(outputs[0][:1], np.float32), targets[:1]).shape[1]
    columns = _Columns(subsets, n, width)
    if shortcut:
        work = _CandidateClasses(outputs, targets, confidence, task, max_size, columns, top_form, top_statistics)
    else:
        work = _FullSums(outputs, targets, confidence, task, max_size, columns)
    map_in_threads(work, chunks)
    return columns.conf, columns.stats


def _rows_per_piece(n: int) -> int:
    per_piece = -(-n // (8 * available_cpus()))
    return min(16384, max(1024, -(-per_piece // 1024) * 1024))


def _top_class_statistics(task: Task) -> Callable | None:
    """The task's statistics from the top class alone, unless a subclass changed its statistics
    below the class that defined that shortcut (a top-5 task built on `Top1Statistics`)."""
    shortcut = getattr(task, "statistics_of_top_class", None)
    if shortcut is None:
        return None
    mro = type(task).__mro__

    def owner(name: str):
        return next((c for c in mro if name in c.__dict__), None)

    defining = owner("statistics_of_top_class")
    same = owner("sample_statistics") is defining and owner("sample_statistics_torch") in (defining, Task)
    return shortcut if same else None


class _FullSums:
    """Every subset's mean formed on every class (any confidence, any task)."""

    def __init__(self, outputs, targets, confidence, task: Task, max_size: int, columns: _Columns):
        self.outputs, self.targets, self.task, self.max_size = outputs, torch.from_numpy(np.asarray(targets)), task, max_size
        self.conf_fn, self.columns = get_torch_confidence(confidence), columns
        self.buffers = threading.local()

    def __call__(self, rows: slice) -> None:
        outs = [torch.from_numpy(np.asarray(o[rows])).float() for o in self.outputs]
        targets = self.targets[rows]
        # Buffers per thread, reused by every subset and chunk: fresh multi-MB tensors per subset
        # would be page-faulted in each time, which costs more than the arithmetic.
        sums, mean = getattr(self.buffers, "sums", None), getattr(self.buffers, "mean", None)
        if sums is None or sums.shape[1:] != outs[0].shape:
            sums = self.buffers.sums = torch.empty((self.max_size,) + outs[0].shape)
            mean = self.buffers.mean = torch.empty(outs[0].shape)
        for child, child_total in subset_sums(outs, self.max_size, sums):
            combined = torch.div(child_total, float(len(child)), out=mean)
            self.columns.put(child, rows, self.conf_fn(combined).numpy(),
                             self.task.sample_statistics_torch(combined, targets).numpy())


class _CandidateClasses:
    """Every subset's mean formed on each sample's candidate classes (see the module's text).

    Candidates lie along the first axis, (candidates, samples): reductions over a handful of
    candidates then run across samples in SIMD instead of row by row."""

    def __init__(self, outputs, targets, confidence, task: Task, max_size: int, columns: _Columns,
                 top_form: tuple[int, Callable], top_statistics: Callable):
        self.outputs, self.targets, self.task, self.max_size, self.columns = outputs, targets, task, max_size, columns
        self.conf_fn = get_torch_confidence(confidence)
        (self.top, self.of_top), self.of_top_class = top_form, top_statistics

    def __call__(self, rows: slice) -> None:
        candidates, values = _candidates([o[rows] for o in self.outputs])
        targets = self.targets[rows]
        inexact: list[tuple[tuple[int, ...], np.ndarray, np.ndarray, np.ndarray]] = []
        for child, total in subset_sums(values, self.max_size):
            mean = _mean(total, len(child))
            top, top_class, exact = _top_of_candidates(mean[:-1], candidates, self.top, bound=mean[-1])
            conf, stats = self.of_top(top), self.of_top_class(top_class, targets)
            if exact.all():
                self.columns.put(child, rows, conf, stats)
            else:
                inexact.append((child, np.flatnonzero(~exact), conf, stats))
        if inexact:
            self._full(rows, inexact, targets)

    def _full(self, rows: slice, inexact: list, targets: np.ndarray) -> None:
        """Every class for the samples where the candidates did not decide: each such sample's
        probabilities read once, for every subset that needs them."""
        samples = np.unique(np.concatenate([where for _, where, _, _ in inexact]))
        probs = [as_float32(o[rows][samples]) for o in self.outputs]
        for child, where, conf, stats in inexact:
            at = np.searchsorted(samples, where)
            total = probs[child[0]][at]  # a copy: indexing by an array
            for m in child[1:]:
                total += probs[m][at]
            mean = total / np.float32(len(child))
            conf[where] = self.conf_fn(torch.from_numpy(mean)).numpy()
            stats[where] = self.task.sample_statistics(mean, targets[where])
            self.columns.put(child, rows, conf, stats)


def _mean(total: np.ndarray, count: int) -> np.ndarray:
    """``total / count`` in float32, as `Task.combine` divides: by a power of two as a product with
    its inverse, which is exact too (the same correctly rounded value) and several times faster."""
    if count & (count - 1) == 0:
        return total * np.float32(1.0 / count)
    return total / np.float32(count)


def _candidates(outputs: list[np.ndarray], piece: int = 1024) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each sample's candidate classes, (candidates, samples): every member's ``CANDIDATES`` most
    probable, sorted by class. Per member, its probabilities of them (-inf where a class repeats,
    so it counts once) followed by its bound, the largest probability outside its own most
    probable classes: (candidates + 1, samples) float32. Read in pieces that stay in cache."""
    n, classes = len(outputs[0]), outputs[0].shape[1]
    tops = np.empty((n, CANDIDATES * len(outputs)), np.int64)
    bounds = np.empty((len(outputs), n), np.float32)
    buffer: dict = {}  # one per dtype, for every piece: fresh multi-MB arrays cost page faults
    for start in range(0, n, piece):
        rows = slice(start, min(start + piece, n))
        for m, out in enumerate(outputs):
            top, bound = _most_probable(np.asarray(out[rows]), buffer)
            tops[rows, m * CANDIDATES:(m + 1) * CANDIDATES], bounds[m, rows] = top, bound
    candidates = np.sort(tops, axis=1)
    repeat = np.zeros(candidates.shape, bool)
    repeat[:, 1:] = candidates[:, 1:] == candidates[:, :-1]
    values = [np.empty((candidates.shape[1] + 1, n), np.float32) for _ in outputs]
    for m in range(len(outputs)):
        values[m][-1] = bounds[m]
    for start in range(0, n, piece):
        rows = slice(start, min(start + piece, n))
        flat = (np.arange(rows.stop - rows.start)[:, None] * classes + candidates[rows]).T  # (candidates, rows)
        for m, out in enumerate(outputs):
            taken = np.take(np.ascontiguousarray(out[rows]).reshape(-1), flat).astype(np.float32)
            taken[repeat[rows].T] = -np.inf
            values[m][:-1, rows] = taken
    return candidates.T.copy(), values


def _most_probable(rows: np.ndarray, buffer: dict) -> tuple[np.ndarray, np.ndarray]:
    """The ``CANDIDATES`` most probable classes of each row, (rows, CANDIDATES), and the largest
    probability outside them, as float32.

    Non-negative IEEE floats order as their bits do, read as signed integers (NaN above inf, as
    numpy's argmax puts it), so float16 probabilities are ranked on their int16 bits in SIMD,
    without a float32 copy; rows with a negative value (where that order fails) take float32."""
    key_type = np.dtype(f"i{rows.dtype.itemsize}") if rows.dtype.kind == "f" else None
    keys = _buffer(buffer, key_type or np.dtype(np.float32), rows.shape)
    if key_type is not None:
        np.copyto(keys, rows.view(key_type))
        smallest = -1  # below every non-negative float's bits
    if key_type is None or keys.min() < 0:
        keys = _buffer(buffer, np.dtype(np.float32), rows.shape)
        keys[...] = as_float32(rows)
        smallest = -np.inf
    at = np.arange(len(rows))
    index = np.empty((len(rows), CANDIDATES), np.int64)
    for j in range(CANDIDATES):
        index[:, j] = keys.argmax(axis=1)
        keys[at, index[:, j]] = smallest
    bound = keys.max(axis=1)
    return index, (bound.view(rows.dtype) if keys.dtype != np.float32 else bound).astype(np.float32)


def _buffer(buffers: dict, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    held = buffers.get(dtype)
    if held is None or held.shape[0] < shape[0] or held.shape[1:] != shape[1:]:
        held = buffers[dtype] = np.empty(shape, dtype)
    return held[: shape[0]]


def _top_of_candidates(mean: np.ndarray, candidates: np.ndarray, r: int, bound: np.ndarray):
    """The ``r`` largest candidate means per sample, (samples, r), the class of the largest (the
    first of tied ones, as argmax over every class gives), and where they are the full mean's:
    each strictly above ``bound`` (NaN anywhere fails that, and takes the full path)."""
    first = mean.max(axis=0)
    at_first = mean == first
    top_class = np.where(at_first, candidates, np.iinfo(candidates.dtype).max).min(axis=0)
    top = [first]
    if r >= 2:  # a second class tied with the first gives it again, as topk does
        second = np.where(at_first, -np.inf, mean).max(axis=0)
        top.append(np.where(at_first.sum(axis=0) > 1, first, second))
    if r > 2:
        raise NotImplementedError("top-value confidences use at most the 2 largest values")
    top = np.stack(top, axis=1)
    return top, top_class, (top > bound[:, None]).all(axis=1)
