"""The task plugin interface: what differs between tasks, and nothing else.

A task says how to build members and read datasets, how outputs combine across members, the
per-sample additive statistics and the metric computed from their sums. The loop, cache,
committees, executor and reports are shared and call only these methods.
"""
from __future__ import annotations

import abc
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import torch

from committee_tasks.core.errors import CommitteeError, unknown_name
from committee_tasks.core.macs import count_macs
from committee_tasks.core.zoo import ZooEntry, filter_names, resolve_weights


@dataclass
class Sample:
    """One decoded sample: a stable id (the cache key), the decoded data and its target."""

    id: str
    data: Any
    target: Any


class SampleDataset(torch.utils.data.Dataset, abc.ABC):
    """A dataset whose items are `Sample`s, decoded once and shared by every member.

    ``ids`` lists every sample id without decoding anything; ``fingerprint`` identifies the
    content (file list, labels) so a changed dataset invalidates its cache.
    """

    name: str = "dataset"
    title: str = ""  # the dataset in words for reports and plot titles ("CIFAR-10 test set")

    def describe(self) -> str:
        return self.title or self.name

    @property
    @abc.abstractmethod
    def ids(self) -> Sequence[str]: ...

    @abc.abstractmethod
    def fingerprint(self) -> str: ...

    @abc.abstractmethod
    def __getitem__(self, index: int) -> Sample: ...

    def __len__(self) -> int:
        return len(self.ids)


class Member:
    """A built, loaded member: the module, its own preprocessing, and its cost.

    ``fingerprint`` hashes the weights and the preprocessing: it keys the prediction cache.
    """

    def __init__(self, name: str, module: torch.nn.Module, transform: Callable[[Any], torch.Tensor],
                 weights_sha256: str, num_classes: int, to_probs: Callable[[torch.Tensor], torch.Tensor],
                 entry: ZooEntry | None = None):
        self.name = name
        self.module = module.eval()
        self.transform = transform
        self.weights_sha256 = weights_sha256
        self.num_classes = num_classes
        self.to_probs = to_probs
        self.entry = entry
        self._macs_by_shape: dict[tuple, int] = {}

    @property
    def transform_key(self) -> str:
        """Identifies the preprocessing; members with equal keys share the preprocessed tensor.

        It is part of the cache key, so it must be stable across runs."""
        key = repr(self.transform)
        if re.search(r" at 0x[0-9a-fA-F]+", key):
            raise CommitteeError(
                f"the preprocessing of member {self.name!r} has no stable repr ({key[:120]!r}): it holds a "
                "memory address, so its cached outputs could never be found again. Use a transform class "
                "whose __repr__ lists its parameters (torchvision transforms do) instead of a lambda"
            )
        return key

    @property
    def fingerprint(self) -> str:
        blob = json.dumps({"weights": self.weights_sha256, "preprocessing": self.transform_key,
                           "num_classes": self.num_classes}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def macs_per_sample(self, inputs: torch.Tensor) -> np.ndarray:
        """MACs of each sample of a batch, counted once per distinct input shape."""
        shape = tuple(inputs.shape[1:])
        if shape not in self._macs_by_shape:
            self._macs_by_shape[shape] = count_macs(self.module, inputs[:1].to(_module_device(self.module)))
        return np.full(len(inputs), self._macs_by_shape[shape], dtype=np.int64)

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities (float32) of a batch already on the member's device."""
        return self.to_probs(self.module(inputs)).float()

    def predict_with_cost(self, inputs: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """Probabilities and the MACs each sample actually cost. Members whose cost depends on
        the input (a video member that stops adding views once confident) override this."""
        return self.predict(inputs), self.macs_per_sample(inputs)

    def cost_note(self) -> str | None:
        """A line explaining how this member's per-sample cost is made up, for reports."""
        return None


def load_weights(entry: ZooEntry, module: torch.nn.Module, weights_dir: str | Path | None = None) -> str:
    """Load a zoo entry's weights into its built module (all keys must fit); returns their sha256,
    or "random-init" for an entry without weights."""
    if entry.weights is None:
        return "random-init"
    path, digest = resolve_weights(entry.weights, weights_dir)
    if entry.state_dict_loader is not None:
        state = entry.state_dict_loader(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:  # missing, unexpected or mis-shaped keys
        raise CommitteeError(f"{path} does not fit {entry.name}'s architecture: {str(err)[:400]}") from err
    return digest


def _module_device(module: torch.nn.Module) -> torch.device:
    tensor = next(module.parameters(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


class Task(abc.ABC):
    """Base class of task plugins. Subclasses set ``name`` and implement the abstract methods."""

    name: ClassVar[str]
    metric_name: ClassVar[str] = "metric"
    default_batch_size: ClassVar[int] = 128  # samples per batch of the shared loop
    default_dataset: ClassVar[str | None] = None  # used when --dataset is not given
    default_measure_samples: ClassVar[int] = 2048  # samples held in memory to time committees on
    prefetch_batches: ClassVar[int] = 4  # batches each DataLoader worker prepares ahead
    # Outputs too big to cache (segmentation: C x H x W per image)? Then the loop caches, per sample,
    # the statistics and these confidences of every member subset of up to max_subset_size members.
    caches_outputs: ClassVar[bool] = True
    cached_confidences: ClassVar[tuple[str, ...]] = ("max_prob", "margin", "neg_entropy", "frac_above_0.9")
    max_subset_size: ClassVar[int] = 4

    def add_zoo_file(self, path: str | Path) -> None:
        """Add the models a user describes in a file (``--zoo FILE``) to this task's zoo."""
        raise CommitteeError(f"task {self.name!r} does not read extra zoo files (--zoo {path})")

    # ---- members -------------------------------------------------------------------------
    @abc.abstractmethod
    def zoo(self) -> Mapping[str, ZooEntry]:
        """Every model this task can build, by name."""

    def list_models(self, pattern: str = "*") -> list[str]:
        return filter_names(self.zoo(), pattern)

    def model_entry(self, name: str) -> ZooEntry:
        zoo = self.zoo()
        if name not in zoo:
            raise unknown_name("model", name, zoo,
                               fix=f"List them with `tools/eval.py --list-models --task {self.name}`.")
        return zoo[name]

    @abc.abstractmethod
    def to_probs(self, outputs: torch.Tensor) -> torch.Tensor:
        """Turn a member's raw outputs into probabilities."""

    def build_member(self, name: str, weights_dir: str | Path | None = None) -> Member:
        entry = self.model_entry(name)
        module = entry.builder()
        digest = load_weights(entry, module, weights_dir)
        return Member(name, module, entry.preprocessing(), digest, entry.num_classes, self.to_probs, entry)

    # ---- data ----------------------------------------------------------------------------
    @abc.abstractmethod
    def list_datasets(self) -> list[str]: ...

    @abc.abstractmethod
    def build_dataset(self, name: str, root: str | Path | None, **options: Any) -> SampleDataset: ...

    def member_inputs(self, data: Any, transforms: Mapping[str, Callable[[Any], torch.Tensor]]
                      ) -> tuple[dict[str, torch.Tensor], list[str]]:
        """Every member's input from one sample, keyed like ``transforms``, and notes on how the
        sample was handled (e.g. "shorter than a clip: frames repeated"), which reports count.

        Runs in DataLoader workers. The default applies each transform to the decoded data; a task
        whose decoding depends on what the members need (a video decodes only the frames some
        member samples) overrides it."""
        return {key: transform(data) for key, transform in transforms.items()}, []

    # ---- combining outputs and scoring ---------------------------------------------------
    def combine(self, outputs: Sequence[np.ndarray]) -> np.ndarray:
        """The committee's output from its members' outputs (default: mean of probabilities).

        Summed left to right in float32 so a cascade's stage-k output is bit-identical whether it
        is computed from the cache or live by the executor.
        """
        total = np.asarray(outputs[0], dtype=np.float32).copy()
        for out in outputs[1:]:
            total += np.asarray(out, dtype=np.float32)
        return total / np.float32(len(outputs))

    @abc.abstractmethod
    def sample_statistics(self, combined: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Per-sample additive statistics, shape (N, K): summing rows gives the dataset's."""

    @abc.abstractmethod
    def metric(self, summed_statistics: np.ndarray) -> float | np.ndarray:
        """The metric (e.g. top-1 in %) from statistics summed over samples.

        Takes (..., K) and returns (...): the search scores many committees in one call."""

    def sample_scores(self, statistics: np.ndarray) -> np.ndarray | None:
        """Per-sample scores whose mean is the metric, or None when the metric is not such a mean
        (mIoU): statistical guarantees on the metric need them."""
        return None

    score_range: ClassVar[float] = 1.0  # scores lie in [0, score_range]

    def sample_statistics_torch(self, combined: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """`sample_statistics` on tensors (the search's hot loop). The default goes through numpy,
        whose SIMD argmax is several times faster than torch's on CPU; override if that is slow."""
        stats = self.sample_statistics(combined.cpu().numpy(), targets.cpu().numpy())
        return torch.from_numpy(np.ascontiguousarray(stats))
