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
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from committee_tasks.core.errors import CommitteeError

CACHE_ENV = "COMMITTEE_TASKS_CACHE"
FORMAT_VERSION = 1


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def default_cache_root() -> Path:
    if CACHE_ENV in os.environ:
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "committee_tasks" / "predictions"


def atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True).encode()))


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


class MemberCache:
    """The cached outputs of one member on one dataset."""

    def __init__(self, folder: Path, fingerprint: str, description: Mapping[str, Any]):
        self.folder = folder
        self.fingerprint = fingerprint
        manifest = read_json(folder / "manifest.json")
        if manifest is not None and manifest.get("fingerprint") != fingerprint:
            raise CommitteeError(f"{folder}/manifest.json belongs to another member; delete the folder")
        if manifest is None:
            manifest = {"format": FORMAT_VERSION, "fingerprint": fingerprint, **description,
                        "timing": {"samples": 0, "seconds": 0.0}}
            atomic_write_json(folder / "manifest.json", manifest)
        self.manifest = manifest
        self._shards = sorted(folder.glob("shard-*.npz"))

    def cached_ids(self) -> set[str]:
        ids: set[str] = set()
        for shard in self._shards:
            with np.load(shard) as data:
                ids.update(data["ids"].tolist())
        return ids

    def write_shard(self, arrays: Mapping[str, np.ndarray]) -> Path:
        index = int(self._shards[-1].stem.split("-")[1]) + 1 if self._shards else 0
        path = self.folder / f"shard-{index:06d}.npz"
        atomic_write(path, lambda f: np.savez(f, **arrays))
        self._shards.append(path)
        return path

    def add_timing(self, samples: int, seconds: float, device: str, batch_size: int) -> None:
        timing = self.manifest["timing"]
        timing["samples"] += samples
        timing["seconds"] += seconds
        timing.update(device=device, batch_size=batch_size)
        atomic_write_json(self.folder / "manifest.json", self.manifest)

    def throughput(self) -> float | None:
        t = self.manifest["timing"]
        return t["samples"] / t["seconds"] if t["seconds"] > 0 else None

    def load(self, ids: Iterable[str]) -> dict[str, np.ndarray]:
        """Arrays of the requested ids, in the requested order."""
        ids = list(ids)
        parts: dict[str, list[np.ndarray]] = {}
        for shard in self._shards:
            with np.load(shard) as data:
                for key in data.files:
                    parts.setdefault(key, []).append(data[key])
        if not parts:
            raise CommitteeError(f"{self.folder} holds no shards")
        arrays = {k: np.concatenate(v) for k, v in parts.items()}
        row = {sid: i for i, sid in enumerate(arrays["ids"].tolist())}
        missing = [sid for sid in ids if sid not in row]
        if missing:
            raise CommitteeError(f"{self.folder} lacks {len(missing)} requested samples, e.g. {missing[:3]}")
        order = np.fromiter((row[sid] for sid in ids), dtype=np.int64, count=len(ids))
        return {k: v[order] for k, v in arrays.items()}


class PredictionCache:
    """All cached outputs under one root, one folder per (task, dataset, member)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_root()

    def dataset_folder(self, task: str, dataset_name: str, dataset_fingerprint: str) -> Path:
        return self.root / task / f"{dataset_name}-{dataset_fingerprint[:16]}"

    def member(self, dataset_folder: Path, name: str, fingerprint: str,
               description: Mapping[str, Any]) -> MemberCache:
        return MemberCache(dataset_folder / f"{name}-{fingerprint[:16]}", fingerprint, description)

    def skipped(self, dataset_folder: Path) -> dict[str, str]:
        return read_json(dataset_folder / "dataset.json", {}).get("skipped", {})

    def notes(self, dataset_folder: Path) -> dict[str, str]:
        return read_json(dataset_folder / "dataset.json", {}).get("notes", {})

    def record_dataset(self, dataset_folder: Path, fingerprint: str, skipped: Mapping[str, str],
                       notes: Mapping[str, str] | None = None) -> None:
        info = read_json(dataset_folder / "dataset.json", {"fingerprint": fingerprint, "skipped": {}})
        info["skipped"].update(skipped)
        info.setdefault("notes", {}).update(notes or {})
        atomic_write_json(dataset_folder / "dataset.json", info)
