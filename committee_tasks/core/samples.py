"""Samples and the datasets that yield them, decoded once and shared by every member.

Kept apart from `committee_tasks.core.task` because a `SampleDataset` is a torch ``Dataset``:
the task contract itself imports no torch, so listing tasks, models and datasets stays fast.
"""
from __future__ import annotations

import abc
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

    def describe(self) -> str:
        return self.title or self.name

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
