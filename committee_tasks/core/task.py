"""The task plugin interface: what differs between tasks, and nothing else.

A task says how to build members and read datasets, how outputs combine across members, the
per-sample additive statistics and the metric computed from their sums. The loop, cache,
committees, executor and reports are shared and call only these methods.
"""
from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from committee_tasks.core.dataset_options import DatasetOption, parse_dataset_options
from committee_tasks.core.errors import CommitteeError, unknown_name
from committee_tasks.core.member_spec import MemberSpec, describe_entry
from committee_tasks.core.zoo import ZooEntry, filter_names

if TYPE_CHECKING:
    import torch

    from committee_tasks.core.members import Member
    from committee_tasks.core.samples import SampleDataset
    from committee_tasks.core.zoo_files import ZooFileModel

class Task(abc.ABC):
    """Base class of task plugins. Subclasses set ``name`` and ``DATASETS`` (or override
    ``list_datasets``) and implement the abstract methods."""

    name: ClassVar[str]
    metric_name: ClassVar[str] = "metric"
    default_batch_size: ClassVar[int] = 128  # samples per batch of the shared loop
    default_dataset: ClassVar[str | None] = None  # used when --dataset is not given
    default_measure_samples: ClassVar[int] = 2048  # samples held in memory to time committees on
    prefetch_batches: ClassVar[int] = 4  # batches each DataLoader worker prepares ahead
    # said after a member's failure on a batch: how a model that takes only some input sizes is fixed
    member_failure_hint: ClassVar[str] = ""
    # the confidence a cascade exits on where none is named (--confidence, the requests, Pool.fit):
    # a multi-label task's, say, where the largest class probability says little
    default_confidence: ClassVar[str] = "max_prob"
    # Outputs too big to cache (segmentation: C x H x W per image)? Then the loop caches, per sample,
    # the statistics and these confidences of every member subset of up to max_subset_size members.
    caches_outputs: ClassVar[bool] = True
    cached_confidences: ClassVar[tuple[str, ...]] = ("max_prob", "margin", "neg_entropy", "frac_above_0.9")
    max_subset_size: ClassVar[int] = 4
    DATASETS: ClassVar[Sequence[str]] = ()  # the dataset names build_dataset reads (list_datasets)
    # Per dataset name: what it is in one line, and the options it takes (--data-option KEY=VALUE).
    DATASET_DESCRIPTIONS: ClassVar[Mapping[str, str]] = {}
    DATASET_OPTIONS: ClassVar[Mapping[str, Sequence[DatasetOption]]] = {}
    list_models_example: ClassVar[str] = ""  # a pattern an unknown-model error suggests ('segformer*')

    # Fields a zoo file's models may have besides the common ones (`committee_tasks.core.zoo_files`),
    # with their help; and the task's own keys of the ``outputs`` field.
    zoo_file_fields: ClassVar[Mapping[str, str]] = {}
    zoo_file_output_fields: ClassVar[tuple[str, ...]] = ()

    # ---- members -------------------------------------------------------------------------
    @abc.abstractmethod
    def zoo(self) -> Mapping[str, ZooEntry]:
        """The task's own models, by name (a subclass adds models by overriding this)."""

    def entries(self) -> dict[str, ZooEntry]:
        """Every model this task can build: `zoo` plus the models of zoo files added to it (a
        file's model replaces a built-in one of the same name)."""
        return {**self.zoo(), **self.__dict__.get("_file_entries", {})}

    def add_zoo_file(self, path: str | Path) -> None:
        """Add the models a user describes in a JSON or YAML file (``--zoo FILE``): see
        `committee_tasks.core.zoo_files` for the format. Their builders are imported when built."""
        from committee_tasks.core.zoo_files import read_zoo_file

        models = read_zoo_file(path, self.zoo_file_fields, self.zoo_file_output_fields)
        added = {name: self.entry_from_zoo_file(model) for name, model in models.items()}
        self.__dict__.setdefault("_file_entries", {}).update(added)

    def entry_from_zoo_file(self, model: ZooFileModel) -> ZooEntry:
        """The `ZooEntry` of one model of a zoo file (``model.entry(...)`` does the common part;
        the task supplies its preprocessing and input size)."""
        raise CommitteeError(f"task {self.name!r} does not read zoo files ({model.where[:-2]}): it does not "
                             "implement entry_from_zoo_file")

    def base_entry(self, model: ZooFileModel) -> ZooEntry | None:
        """The zoo model a zoo file's model starts from (its ``base`` field), if any."""
        base = model.get("base")
        if base is None:
            return None
        zoo = self.entries()
        if not isinstance(base, str) or base not in zoo:
            raise model.error("base", str(unknown_name("model", str(base), zoo,
                                                       fix=f"List them with `tools/eval.py --list-models --task "
                                                           f"{self.name}`.")))
        return zoo[base]

    def list_models(self, pattern: str = "*") -> list[str]:
        return filter_names(self.entries(), pattern)

    def model_entry(self, name: str) -> ZooEntry:
        zoo = self.entries()
        if name not in zoo:
            pattern = f" {self.list_models_example!r}" if self.list_models_example else ""
            raise unknown_name("model", name, zoo,
                               fix=f"List them with `tools/eval.py --task {self.name} --list-models{pattern}` "
                                   "(the pattern right after --list-models).")
        return zoo[name]

    @abc.abstractmethod
    def to_probs(self, outputs: torch.Tensor) -> torch.Tensor:
        """Turn a member's raw outputs into probabilities."""

    def build_member(self, name: str, weights_dir: str | Path | None = None) -> Member:
        from committee_tasks.core.members import build_module, load_weights

        entry = self.model_entry(name)
        module = build_module(entry)
        digest = load_weights(entry, module, weights_dir)
        return self.member_from_module(name, entry, module, digest)

    def member_from_module(self, name: str, entry: ZooEntry, module: torch.nn.Module, digest: str) -> Member:
        """The member around ``module``, built from ``entry`` with weights of sha256 ``digest``
        loaded (default: a plain `Member`; a task whose members wrap the module overrides it)."""
        from committee_tasks.core.members import Member

        return Member(name, module, entry.preprocessing(), digest, entry.num_classes, self.probabilities_of(entry),
                      entry)

    def probabilities_of(self, entry: ZooEntry) -> Callable[[torch.Tensor], torch.Tensor]:
        """How ``entry``'s outputs become probabilities: its zoo file's ``outputs`` (type and class
        map), else the task's ``to_probs``."""
        return entry.outputs if entry.outputs is not None else self.to_probs

    def describe_member(self, name: str, weights_dir: str | Path | None = None) -> MemberSpec:
        """The member's name, classes and cache key without building it (see `MemberSpec`); the
        loop builds it only if some sample is not cached. A task whose ``build_member`` changes
        the entry's classes, preprocessing or key overrides this to match."""
        entry = self.model_entry(name)
        return describe_entry(name, entry, weights_dir, lambda: self.build_member(name, weights_dir))

    # ---- data ----------------------------------------------------------------------------
    def list_datasets(self) -> list[str]:
        """The dataset names `build_dataset` reads (default: the class's ``DATASETS``)."""
        return list(self.DATASETS)

    def describe_dataset(self, name: str) -> str:
        """Dataset ``name`` in one line, for ``--list-datasets`` (default: ``DATASET_DESCRIPTIONS``)."""
        return self.DATASET_DESCRIPTIONS.get(name, "")

    def dataset_options(self, name: str) -> Sequence[DatasetOption]:
        """The options dataset ``name`` takes (default: ``DATASET_OPTIONS``); `build_dataset` gets
        each of them as a keyword, typed, set to its default when not given."""
        return tuple(self.DATASET_OPTIONS.get(name, ()))

    def read_dataset_options(self, name: str, values: Mapping[str, Any], flag: str = "--data-option",
                             root: str | Path | None = None) -> dict[str, Any]:
        """The typed options of dataset ``name`` from what a user wrote (``{key: text or value}``):
        an unknown dataset or key, or a value not of the option's kind, is refused. A relative
        file not found from the working directory is looked for in ``root`` (``--data-root``)."""
        self._check_dataset_name(name)
        return parse_dataset_options(name, self.dataset_options(name), values, flag,
                                     fix=f"List them with `tools/eval.py --task {self.name} --list-datasets`.",
                                     root=root)

    def _check_dataset_name(self, name: str) -> None:
        if name not in self.list_datasets():
            raise unknown_name("dataset", name, self.list_datasets())

    def dataset_root(self, name: str, root: str | Path | None, holding: str = "") -> str | Path:
        """``root`` for dataset ``name``, or the error for a name not in `list_datasets` or a root
        not given (``holding`` says what the folder should hold)."""
        self._check_dataset_name(name)
        if root is None:
            raise CommitteeError(f"dataset {name!r} needs --data-root DIR" + (f" ({holding})" if holding else ""))
        return root

    @abc.abstractmethod
    def build_dataset(self, name: str, root: str | Path | None, **options: Any) -> SampleDataset:
        """Dataset ``name`` at ``root``; ``options`` are ``split`` (None: the dataset's default) and
        every option of `dataset_options(name)`, typed by `read_dataset_options`."""

    def decode(self, data: Any) -> Any:
        """An item given to a loaded committee's ``predict_samples`` (an uploaded image, say) as
        this task's datasets yield their samples' data, decoded as they decode theirs, so that the
        members see what they saw in evaluation. The default takes it as it is."""
        return data

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
        total = as_float32(outputs[0], copy=True)
        for out in outputs[1:]:
            total += as_float32(out)
        return total / np.float32(len(outputs))

    def check_targets(self, targets: np.ndarray, ids: Sequence[str], num_classes: int) -> None:
        """Refuse targets this task cannot score (``ids``: their samples'), before they are scored
        as if they were right; the default takes any."""

    @abc.abstractmethod
    def sample_statistics(self, combined: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Per-sample additive statistics, shape (N, K): summing rows gives the dataset's."""

    @abc.abstractmethod
    def metric(self, summed_statistics: np.ndarray) -> float | np.ndarray:
        """The metric (e.g. top-1 in %) from statistics summed over samples.

        Takes (..., K) and returns (...): the search scores many committees in one call."""

    def check_statistics(self, statistics: np.ndarray, samples: int) -> None:
        """Refuse `sample_statistics` that are not one row per sample, (N, K): summed, or with
        more axes, they scored members above 100% or broke deep inside a fit."""
        shape = tuple(np.shape(statistics))
        if len(shape) != 2 or shape[0] != samples:
            raise CommitteeError(f"task {self.name!r}: sample_statistics gave shape {shape} for {samples} samples, "
                                 "where (N, K) is due: one row of additive statistics per sample (e.g. [correct, 1] "
                                 "for accuracy), which the search and the metric sum over samples")

    def check_metric(self, summed_statistics: np.ndarray) -> None:
        """Refuse a `metric` that does not take (..., K) to (...), once the statistics are known:
        written for one (K,) vector, it works for members and breaks deep in a search or a fit.
        Tried on copies of the statistics with leading axes (2, 3), which must give each copy's own
        value: (2, 3), not what unpacking the first axis gives."""
        copies = np.broadcast_to(summed_statistics, (2, 3, *np.shape(summed_statistics)))
        fix = ("it must take (..., K) and return (...), as the search scores many committees in one call: index the "
               "last axis, e.g. 100 * summed[..., 0] / summed[..., 1]")
        try:
            value = np.asarray(self.metric(copies), dtype=np.float64)
            alone = float(self.metric(np.asarray(summed_statistics)))
        except Exception as err:
            raise CommitteeError(f"task {self.name!r}: metric(summed) failed on statistics of shape {copies.shape} "
                                 f"({type(err).__name__}: {err}); {fix}") from err
        if value.shape != (2, 3) or not np.allclose(value, alone, equal_nan=True):
            raise CommitteeError(f"task {self.name!r}: metric(summed) gave shape {value.shape} for statistics of "
                                 f"shape {copies.shape}, where (2, 3) of its value on one sample is due; {fix}")

    def per_class(self, summed_statistics: np.ndarray) -> dict[str, np.ndarray] | None:
        """Per-class figures (in the metric's units) from the summed statistics, each an array of
        one value per class (NaN for a class they say nothing of), or None when the statistics hold
        none (top-1's [correct, 1]). Reports show them beside the metric (segmentation: IoU, Acc)."""
        return None

    def sample_scores(self, statistics: np.ndarray) -> np.ndarray | None:
        """Per-sample scores whose mean is the metric, or None when the metric is not such a mean
        (mIoU): statistical guarantees on the metric need them."""
        return None

    score_range: ClassVar[float] = 1.0  # scores lie in [0, score_range]

    def sample_statistics_torch(self, combined: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """`sample_statistics` on tensors (the search's hot loop). The default goes through numpy,
        whose SIMD argmax is several times faster than torch's on CPU; override if that is slow."""
        import torch

        stats = self.sample_statistics(combined.cpu().numpy(), targets.cpu().numpy())
        return torch.from_numpy(np.ascontiguousarray(stats))


def as_float32(values, copy: bool = False) -> np.ndarray:
    """``values`` as float32 (a copy if asked): float16 through torch, whose cast is the same
    exact conversion as numpy's and ~10x faster (a cached pool is float16)."""
    array = np.asarray(values)
    if array.dtype == np.float16:
        import torch  # here, not at import: listing the zoo loads no torch

        return torch.from_numpy(np.ascontiguousarray(array)).float().numpy()
    return np.array(array, dtype=np.float32, copy=copy or None)
