"""The prediction cache: every member's per-sample outputs and MACs, written once, reused forever.

Layout (documented in the README)::

    <root>/<task>/<dataset name>-<dataset fingerprint[:16]>/
        dataset.json                        # dataset fingerprint, skipped samples and why, notes
        <member>-<member fingerprint[:16]>/
            manifest.json                   # fingerprint parts, output dtype, measured timing
            shard-000000.npz ...            # ids, targets, outputs, macs of a chunk of samples

A member's fingerprint hashes its weights and preprocessing and the dataset's hashes its content,
so a changed weight file, transform or dataset lands in a new folder: stale results are never
read. Every file is written to a temporary name and renamed (atomic on POSIX), so an interrupted
run leaves only whole shards, and the next run computes only the sample ids no shard holds.

Several writers may share one cache (torchrun ranks, job-array tasks, two notebooks), on one
machine or on a shared filesystem: each names its shards with its own writer id
(``shard-<host>-<pid>-<random>-<n>.npz``), so no two pick the same name; the read-modify-writes
of manifest.json and dataset.json run under a file lock (``filelock``); readers list the shards
afresh each time and see only renamed, whole files. A sample two writers both computed is read
from the first shard in name order, deterministically, and a warning says whether the copies
were identical.

`MemoryPredictionCache` has the same interface and keeps everything in dictionaries: a run that
should leave nothing on disk (a quick look, a test) uses it instead.
"""
from __future__ import annotations

import abc
import logging
import os
import secrets
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.files import atomic_write, atomic_write_json, default_cache_root, read_json

FORMAT_VERSION = 1
LOCK_TIMEOUT_S = 600  # a writer holds a lock for one small JSON rewrite; minutes mean a stuck one
log = logging.getLogger(__name__)


@contextmanager
def locked(path: Path):
    """An exclusive lock beside ``path`` (``.<name>.lock``), held across processes and machines
    sharing the filesystem, for a read-modify-write of ``path``."""
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path.parent / f".{path.name}.lock"), timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            yield
    except Timeout:
        raise CommitteeError(f"could not lock {path} within {LOCK_TIMEOUT_S} s: another writer holds "
                             f"{lock.lock_file}; if no run uses this cache, delete that file") from None


def writer_id() -> str:
    """A name no other writer of a cache has: host, process and a random part."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:32] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"


class BaseMemberCache(abc.ABC):
    """The cached outputs of one member on one dataset, as chunks of rows (each with "ids");
    subclasses say where the chunks and the manifest are kept."""

    def __init__(self, folder: Path, fingerprint: str, description: Mapping[str, Any]):
        self.folder = folder
        self.fingerprint = fingerprint
        manifest = self._read_manifest()
        if manifest is not None and manifest.get("fingerprint") != fingerprint:
            raise CommitteeError(f"{folder}/manifest.json belongs to another member; delete the folder")
        if manifest is None:
            manifest = {"format": FORMAT_VERSION, "fingerprint": fingerprint, **description,
                        "timing": {"samples": 0, "seconds": 0.0}}
            self._save_manifest(manifest)
        self.manifest = manifest

    @abc.abstractmethod
    def _read_manifest(self) -> dict | None: ...

    @abc.abstractmethod
    def _save_manifest(self, manifest: dict) -> None: ...

    @abc.abstractmethod
    def _chunks(self) -> Iterator[Mapping[str, np.ndarray]]:
        """Each stored chunk, read lazily (only the arrays a caller indexes)."""

    @abc.abstractmethod
    def write_shard(self, arrays: Mapping[str, np.ndarray]) -> Any: ...

    def cached_ids(self) -> set[str]:
        ids: set[str] = set()
        for chunk in self._chunks():
            ids.update(chunk["ids"].tolist())
        return ids

    @contextmanager
    def _manifest_lock(self):
        yield  # one process holds a memory cache: nothing to lock

    def add_timing(self, samples: int, seconds: float, device: str, batch_size: int) -> None:
        with self._manifest_lock():  # another writer may have added its own since we read it
            self.manifest = self._read_manifest() or self.manifest
            timing = self.manifest["timing"]
            timing["samples"] += samples
            timing["seconds"] += seconds
            timing.update(device=device, batch_size=batch_size)
            # each writer's own figures too: a torchrun rank's or a shard's throughput on its device
            mine = timing.setdefault("by_writer", {}).setdefault(self.writer, {"samples": 0, "seconds": 0.0})
            mine["samples"] += samples
            mine["seconds"] += seconds
            mine.update(device=device, batch_size=batch_size)
            self._save_manifest(self.manifest)

    writer = "memory"  # the name of this process's shards and timing (MemberCache: host-pid-random)

    def throughput(self) -> float | None:
        t = self.manifest["timing"]
        return t["samples"] / t["seconds"] if t["seconds"] > 0 else None

    def writer_throughputs(self) -> dict[str, float]:
        """Samples/s of each writer's forward passes (ranks, shards, earlier runs), as recorded."""
        return {w: t["samples"] / t["seconds"] for w, t in self.manifest["timing"].get("by_writer", {}).items()
                if t["seconds"] > 0}

    def load(self, ids: Iterable[str]) -> dict[str, np.ndarray]:
        """Arrays of the requested ids, in the requested order."""
        ids = list(ids)
        parts: dict[str, list[np.ndarray]] = {}
        for chunk in self._chunks():
            for key in chunk:
                parts.setdefault(key, []).append(chunk[key])
        if not parts:
            raise CommitteeError(f"{self.folder} holds no shards")
        # Keys every shard holds: shards of older versions may carry a key since dropped (the
        # placeholder targets of statistics-caching members), which must not break a resumed cache.
        shards = len(parts["ids"])
        arrays = {k: np.concatenate(v) for k, v in parts.items() if len(v) == shards}
        row: dict[str, int] = {}
        for i, sid in enumerate(arrays["ids"].tolist()):
            row.setdefault(sid, i)  # a sample two writers computed: the first shard's, in name order
        if len(row) < len(arrays["ids"]):
            self._report_duplicates(arrays, row)
        missing = [sid for sid in ids if sid not in row]
        if missing:
            raise CommitteeError(f"{self.folder} lacks {len(missing)} requested samples, e.g. {missing[:3]}")
        order = np.fromiter((row[sid] for sid in ids), dtype=np.int64, count=len(ids))
        return {k: v[order] for k, v in arrays.items()}


    def _report_duplicates(self, arrays: Mapping[str, np.ndarray], row: Mapping[str, int]) -> None:
        ids = arrays["ids"]
        first = np.array([row[sid] for sid in ids.tolist()])
        again = np.flatnonzero(first != np.arange(len(ids)))
        same = all(np.array_equal(v[again], v[first[again]], equal_nan=v.dtype.kind == "f")
                   for k, v in arrays.items() if k != "ids")
        log.warning("%s: %d samples were computed by two writers; read from the first shard in name order "
                    "(the copies are %s)", self.folder, len(again),
                    "identical" if same else "NOT identical: the writers ran the member differently")


class MemberCache(BaseMemberCache):
    """A member's outputs in npz shards next to its manifest.json."""

    def __init__(self, folder: Path, fingerprint: str, description: Mapping[str, Any]):
        self.writer, self._written = writer_id(), 0
        with locked(folder / "manifest.json"):  # two writers opening a new folder at once write it once
            super().__init__(folder, fingerprint, description)

    def _manifest_lock(self):
        return locked(self.folder / "manifest.json")

    def _read_manifest(self) -> dict | None:
        return read_json(self.folder / "manifest.json")

    def _save_manifest(self, manifest: dict) -> None:
        atomic_write_json(self.folder / "manifest.json", manifest)

    def shards(self) -> list[Path]:
        """Every whole shard, listed afresh (other writers add theirs), in name order."""
        return sorted(self.folder.glob("shard-*.npz"))

    def _chunks(self) -> Iterator[Mapping[str, np.ndarray]]:
        for shard in self.shards():
            with np.load(shard) as data:
                yield data

    def write_shard(self, arrays: Mapping[str, np.ndarray]) -> Path:
        path = self.folder / f"shard-{self.writer}-{self._written:06d}.npz"
        atomic_write(path, lambda f: np.savez(f, **arrays))
        self._written += 1
        return path


class MemoryMemberCache(BaseMemberCache):
    """A member's outputs held in memory (copies of what was written)."""

    def __init__(self, folder: Path, fingerprint: str, description: Mapping[str, Any]):
        self._stored: list[dict[str, np.ndarray]] = []
        super().__init__(folder, fingerprint, description)

    def _read_manifest(self) -> dict | None:
        return None  # one object per folder lives as long as its cache

    def _save_manifest(self, manifest: dict) -> None:
        pass  # self.manifest is the record

    def _chunks(self) -> Iterator[Mapping[str, np.ndarray]]:
        return iter(self._stored)

    def write_shard(self, arrays: Mapping[str, np.ndarray]) -> int:
        self._stored.append({k: np.array(v, copy=True) for k, v in arrays.items()})
        return len(self._stored) - 1


class BasePredictionCache(abc.ABC):
    """All cached outputs under one root, one folder (or key) per (task, dataset, member)."""

    root: Path

    def dataset_folder(self, task: str, dataset_name: str, dataset_fingerprint: str) -> Path:
        return self.root / task / f"{dataset_name}-{dataset_fingerprint[:16]}"

    def member(self, dataset_folder: Path, name: str, fingerprint: str,
               description: Mapping[str, Any]) -> BaseMemberCache:
        """The cache of one member (``description`` goes into a new manifest)."""
        return self._open_member(dataset_folder / f"{name}-{fingerprint[:16]}", fingerprint, description)

    @abc.abstractmethod
    def _open_member(self, folder: Path, fingerprint: str, description: Mapping[str, Any]) -> BaseMemberCache: ...

    @abc.abstractmethod
    def _dataset_info(self, dataset_folder: Path) -> dict | None: ...

    @abc.abstractmethod
    def _save_dataset_info(self, dataset_folder: Path, info: dict) -> None: ...

    def skipped(self, dataset_folder: Path) -> dict[str, str]:
        return dict((self._dataset_info(dataset_folder) or {}).get("skipped", {}))

    def notes(self, dataset_folder: Path) -> dict[str, str]:
        return dict((self._dataset_info(dataset_folder) or {}).get("notes", {}))

    def record_dataset(self, dataset_folder: Path, fingerprint: str, skipped: Mapping[str, str],
                       notes: Mapping[str, str] | None = None) -> None:
        with self._dataset_lock(dataset_folder):  # other writers add their skips too
            info = self._dataset_info(dataset_folder) or {"fingerprint": fingerprint, "skipped": {}}
            info["skipped"].update(skipped)
            info.setdefault("notes", {}).update(notes or {})
            self._save_dataset_info(dataset_folder, info)

    @contextmanager
    def _dataset_lock(self, dataset_folder: Path):
        yield


class PredictionCache(BasePredictionCache):
    """The cache on disk (the layout above)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_root()

    def _open_member(self, folder: Path, fingerprint: str, description: Mapping[str, Any]) -> MemberCache:
        return MemberCache(folder, fingerprint, description)

    def _dataset_info(self, dataset_folder: Path) -> dict | None:
        return read_json(dataset_folder / "dataset.json")

    def _save_dataset_info(self, dataset_folder: Path, info: dict) -> None:
        atomic_write_json(dataset_folder / "dataset.json", info)

    def _dataset_lock(self, dataset_folder: Path):
        return locked(dataset_folder / "dataset.json")


class MemoryPredictionCache(BasePredictionCache):
    """The same cache held in memory for the life of this object; nothing touches the disk.
    Its folders are only keys (under the pseudo-root ``<memory>``)."""

    def __init__(self):
        self.root = Path("<memory>")
        self._members: dict[Path, MemoryMemberCache] = {}
        self._datasets: dict[Path, dict] = {}

    def _open_member(self, folder: Path, fingerprint: str, description: Mapping[str, Any]) -> MemoryMemberCache:
        cached = self._members.get(folder)
        if cached is None or cached.fingerprint != fingerprint:
            cached = self._members[folder] = MemoryMemberCache(folder, fingerprint, description)
        return cached

    def _dataset_info(self, dataset_folder: Path) -> dict | None:
        return self._datasets.get(dataset_folder)

    def _save_dataset_info(self, dataset_folder: Path, info: dict) -> None:
        self._datasets[dataset_folder] = info
