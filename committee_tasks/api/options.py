"""Options shared by the API's requests: where the data is, how members run, how to split.

Plain frozen dataclasses, checked on construction, so a bad value fails before any model is
built whether it came from the command line, a config file or a notebook.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.precision import OUTPUT_DTYPE_NAMES
from committee_tasks.core.files import MEMORY_CACHE, wants_memory_cache

MEMORY = MEMORY_CACHE  # ExecutionOptions.cache_dir value: keep predictions in memory, write nothing


def at_least(minimum: int, **options: int | None) -> None:
    """Refuse any of ``options`` (flag name without dashes -> value; None: unset) below ``minimum``."""
    for name, value in options.items():
        if value is not None and value < minimum:
            flag = "--" + name.replace("_", "-")
            meaning = {"workers": " (0: decode in the main process)", "measure_samples": " (0: do not measure)"}
            raise CommitteeError(f"{flag} must be {'at least' if minimum else '>='} {minimum}"
                                 f"{meaning.get(name, '')}, got {value}")


@dataclass(frozen=True)
class DataOptions:
    """Which dataset of the task, and where it is."""

    dataset: str | None = None  # None: the task's default dataset
    data_root: Path | None = None
    split: str | None = None
    # The dataset's own options (see Task.dataset_options): key -> text or value, checked and typed
    # by the task when the dataset is built. Relative paths start at the working directory, or at
    # the folder an OptionValue carries (a config file's); a file not there is looked for in data_root.
    options: Mapping[str, Any] = field(default_factory=dict)
    limit: int | None = None  # an evenly spaced subset of this many samples

    def __post_init__(self):
        at_least(1, limit=self.limit)


@dataclass(frozen=True)
class ModelOptions:
    """Where members come from besides the task's built-in zoo."""

    weights_dir: Path | None = None  # checked before the torch.hub cache
    zoo_files: tuple[Path, ...] = ()  # more models described in files (--zoo)

    def __post_init__(self):
        if self.weights_dir is not None and Path(self.weights_dir).exists() and not Path(self.weights_dir).is_dir():
            raise CommitteeError(f"--weights-dir {self.weights_dir} is a file, not a folder: pass the folder holding "
                                 "the weight files")


@dataclass(frozen=True)
class ExecutionOptions:
    """How the shared loop runs members."""

    device: str = "auto"
    amp: str = "auto"  # "auto" (on CUDA), "on", "off"
    batch_size: int | None = None  # None: the task's default
    workers: int | None = None  # None: the dataset's preferred_workers, else the thread policy's default
    cache_dir: Path | str | None = None  # None: the default cache root; "memory": nothing written
    output_dtype: str = "float16"
    progress: bool = True
    threads: int | None = None  # torch CPU threads; None: the CPUs this process may use
    shard: str | None = None  # "I/N": only share I of N of the missing samples (engine/distributed.py)
    flush_seconds: float = 60.0  # outputs reach the cache at least this often (and every 4,096 samples)
    # image members' float conversion and normalisation on the device, uint8 pixels copied
    # (core/device_preprocessing.py): "auto" (on CUDA), "on", "off"
    device_preprocessing: str = "auto"

    def __post_init__(self):
        if self.amp not in ("auto", "on", "off"):
            raise CommitteeError(f"amp must be 'auto', 'on' or 'off', got {self.amp!r}")
        if self.device_preprocessing not in ("auto", "on", "off"):
            raise CommitteeError(f"device_preprocessing must be 'auto', 'on' or 'off', got {self.device_preprocessing!r}")
        if self.output_dtype not in OUTPUT_DTYPE_NAMES:
            raise CommitteeError(f"unknown output dtype {self.output_dtype!r}; valid: {list(OUTPUT_DTYPE_NAMES)}")
        at_least(0, workers=self.workers)
        at_least(1, batch_size=self.batch_size, threads=self.threads)
        if not (isinstance(self.flush_seconds, (int, float)) and 0 <= self.flush_seconds < float("inf")):
            raise CommitteeError(f"--flush-seconds must be a finite number >= 0 (0: write after every batch), "
                                 f"got {self.flush_seconds!r}")
        if self.shard is not None:
            from committee_tasks.engine.distributed import Share

            Share.parse(self.shard)  # refused before any work
            if wants_memory_cache(self.cache_dir):
                raise CommitteeError(f"--shard {self.shard} with --cache-dir memory: shares meet only in a cache "
                                     "on disk, where a later run reads their union; give a --cache-dir folder "
                                     "(shared by every share), or drop --shard")

    @property
    def amp_mode(self) -> str | bool:
        return {"auto": "auto", "on": True, "off": False}[self.amp]


@dataclass(frozen=True)
class CalibrationOptions:
    """Where thresholds and temperatures are fitted: a share of the evaluated samples (chosen by a
    hash of their id) or a separate dataset (then every evaluated sample is for evaluation)."""

    fraction: float = 0.5
    dataset: str | None = None
    data_root: Path | None = None  # None: DataOptions.data_root
    split: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # the calibration dataset's own (as DataOptions')

    def __post_init__(self):
        if not 0 < self.fraction < 1:
            raise CommitteeError(f"calibration fraction must be in (0, 1), got {self.fraction}: the share of samples "
                                 "used to fit thresholds (--calibration-fraction)")


@dataclass(frozen=True)
class MeasureOptions:
    """Timing committees for real: samples held in memory preprocessed, interleaved rounds."""

    samples: int | None = None  # None: the task's default; 0: do not measure
    rounds: int = 5
    # A cascade's later stages: "gathered" into full batches across batches, or "per-batch"
    # (engine/executor.py: CommitteeExecutor)
    later_stages: str = "gathered"

    def __post_init__(self):
        from committee_tasks.engine.executor import LATER_STAGES  # torch: measuring loads it anyway

        at_least(0, measure_samples=self.samples)
        at_least(1, measure_rounds=self.rounds)
        if self.later_stages not in LATER_STAGES:
            raise CommitteeError(f"--later-stages {self.later_stages!r}: choose one of {', '.join(LATER_STAGES)}")


@dataclass(kw_only=True)
class PoolRequest:
    """What every request that evaluates a pool shares: the task, its data, where members come
    from, how they run, the calibration split, and the provenance of the request."""

    task: str = "classification"
    data: DataOptions = field(default_factory=DataOptions)
    models_from: ModelOptions = field(default_factory=ModelOptions)
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)
    calibration: CalibrationOptions = field(default_factory=CalibrationOptions)
    command: Sequence[str] | None = None  # the command line, for provenance
    config: dict | None = None  # {"path", "content"} of a config file, for provenance

    def settings(self, default_batch_size: int) -> dict[str, Any]:
        """The settings its figures depend on, resolved (defaults included), for provenance: the
        cached outputs' dtype sets where confidences round (a threshold of 1 exits the samples
        whose float16 confidence rounds to 1), AMP and the batch the members' arithmetic, and the
        calibration split which samples the thresholds were fitted on."""
        from committee_tasks.core.splits import SPLIT_SALT

        execution, calibration = self.execution, self.calibration
        split = ({"dataset": calibration.dataset, "split": calibration.split} if calibration.dataset else
                 {"fraction": calibration.fraction,
                  "rule": f"first 8 bytes of sha256('{SPLIT_SALT}/' + sample id), big-endian, / 2**64 < fraction"})
        return {"output_dtype": execution.output_dtype, "amp": execution.amp,
                "batch_size": execution.batch_size or default_batch_size,
                "device_preprocessing": execution.device_preprocessing, "limit": self.data.limit,
                "calibration": split}
