"""Samples and the datasets that yield them, decoded once and shared by every member.

Kept apart from `committee_tasks.core.task` because a `SampleDataset` is a torch ``Dataset``:
the task contract itself imports no torch, so listing tasks, models and datasets stays fast.
"""
from __future__ import annotations

import abc
import ntpath
import posixpath
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from committee_tasks.core.errors import CommitteeError


@dataclass
class Sample:
    """One decoded sample: a stable id (the cache key), the decoded data and its target."""

    id: str
    data: Any
    target: Any


class SampleDataset(torch.utils.data.Dataset, abc.ABC):
    """A dataset whose items are `Sample`s, decoded once and shared by every member.

    ``ids`` lists every sample id, in item order, without decoding anything: subclasses set
    ``self._ids`` (a list) in ``__init__``, or override the ``ids`` property. ``fingerprint``
    identifies the content (file list, labels) so a changed dataset invalidates its cache.
    """

    name: str = "dataset"
    title: str = ""  # the dataset in words for reports and plot titles ("CIFAR-10 test set")
    _ids: Sequence[str]  # what ``ids`` serves unless a subclass overrides it
    num_classes: int | None = None  # classes the targets index, when the dataset knows (its class names)
    preferred_workers: int | None = None  # DataLoader workers when the user names none; None: the thread policy's

    def describe(self) -> str:
        return self.title or self.name

    classes_fix: str = "see its options: tools/eval.py --list-datasets"  # how to name the classes right

    def check_classes(self, num_classes: int) -> None:
        """Refuse members that predict ``num_classes`` classes if the targets index another number
        (the loop calls it before running anything)."""
        if self.num_classes is not None and self.num_classes != num_classes:
            raise CommitteeError(f"{self.describe()} has {self.num_classes} classes but the members predict "
                                 f"{num_classes}: the dataset's class names must be the members' label set, in "
                                 f"their index order ({self.classes_fix})")

    @property
    def ids(self) -> Sequence[str]:
        try:
            return self._ids
        except AttributeError:
            raise CommitteeError(f"{type(self).__name__} has no sample ids: set self._ids (a list of ids in item "
                                 "order) in __init__, or override the ids property") from None

    @abc.abstractmethod
    def fingerprint(self) -> str: ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> Sample: ...

    def __len__(self) -> int:
        return len(self.ids)


def check_sample_dataset(dataset: Any) -> None:
    """Refuse what is not a `SampleDataset` (a torch ``Dataset`` of ``(x, y)`` pairs, a list),
    saying what to pass: its samples need stable ids and a content fingerprint (the cache key)."""
    if isinstance(dataset, SampleDataset):
        return
    raise CommitteeError(
        f"a committee evaluates a SampleDataset, got {type(dataset).__name__}: samples need ids and a fingerprint "
        "of the content to be cached. For arrays or (x, y) pairs in memory, pass ArrayDataset(inputs, targets), "
        "e.g. ArrayDataset(torch.stack([x for x, _ in data]), [y for _, y in data]); for files, subclass "
        "SampleDataset (ids, __getitem__ -> Sample(id, data, target), fingerprint()) or use a task's dataset "
        "(get_task(...).build_dataset(...))")


def contained_path(entry: str, where: str) -> str:
    """``entry`` (a path read from a label file or a CSV, relative to the data root) if it stays
    inside the data root, read as a POSIX or as a Windows path; else an error naming ``where`` (the
    file and line). Checked lexically: a symlink inside the root is the user's own and is followed."""
    escapes = [p == ".." or p.startswith(("../", "..\\")) for p in (posixpath.normpath(entry), ntpath.normpath(entry))]
    if posixpath.isabs(entry) or ntpath.isabs(entry) or ntpath.splitdrive(entry)[0] or any(escapes):
        raise CommitteeError(f"{where}: {entry!r} is outside the data root: list paths relative to --data-root, "
                             "without '..' or a leading '/'")
    return entry
