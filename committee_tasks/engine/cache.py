"""The prediction cache: every member's per-sample outputs and MACs, written once, reused forever.

Layout (documented in the README)::

    <root>/<task>/<dataset name>-<dataset fingerprint[:16]>/
        dataset.json                        # dataset fingerprint, skipped samples and why, notes
        <member>-<member fingerprint[:16]>/
            manifest.json                   # fingerprint parts, output dtype, measured timing
            shard-000000.npz ...            # ids, targets, outputs, macs of a chunk of samples

A member's fingerprint hashes its weights and preprocessing (and the output dtype, when not the
default float16) and the dataset's hashes its content, so a changed weight file, transform or
dataset lands in a new folder: stale results are never read. Every file is written to a temporary
name and renamed (atomic on POSIX), so an interrupted run leaves only whole shards, and the next
run computes only the sample ids no shard holds.

Names become folder names only through `core.names.path_component` (letters, digits and
``._+=-``, no leading dot): a task, dataset or member name like ``../../x`` or ``/abs`` cannot
reach outside the root.

The cache verifies and heals what it reads. Each shard carries the sha256 of its arrays in its zip
comment (shards of format 1 have none and are still read), manifest.json and dataset.json a
``sha256`` field. A file that does not verify or parse (truncated, zero bytes, flipped bits, a
foreign ``shard-*.npz``) is moved into ``corrupt/`` beside it with a warning naming it, and its
samples are computed again by the same run. Rows holding NaN, inf, negative values or probability
rows not summing to 1 are dropped the same way (the shard is rewritten without them), and invalid
timing is ignored with a warning. A full disk or an unwritable folder is a `CommitteeError` naming
the file; the shards already written are kept.

Several writers may share one cache (torchrun ranks, job-array tasks, two notebooks), on one
machine or on a shared filesystem: each names its shards with its own writer id
(``shard-<host>-<pid>-<random>-<n>.npz``), so no two pick the same name; the read-modify-writes
of manifest.json and dataset.json run under a file lock (``filelock``); readers list the shards
afresh each time and see only renamed, whole files. A sample two writers both computed is read
from the first shard in name order, deterministically, and a warning says whether the copies
were identical (once: the manifest remembers it, and later reads of the same identical copies say
it at log level info).

`MemoryPredictionCache` has the same interface and keeps everything in dictionaries: a run that
should leave nothing on disk (a quick look, a test) uses it instead.
"""
from __future__ import annotations

import abc
import errno
import hashlib
import io
import json
import logging
import math
import os
import secrets
import socket
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.files import atomic_write, atomic_write_json, default_cache_root
from committee_tasks.core.names import path_component
from committee_tasks.core.member_spec import check_stable_key
from committee_tasks.core.task import as_float32

FORMAT_VERSION = 1
SHARD_FORMAT = 2  # 2: the sha256 of the arrays in the zip comment; 1 (no comment) is still read
LOCK_TIMEOUT_S = 600  # a writer holds a lock for one small JSON rewrite; minutes mean a stuck one
PROBABILITY_TOLERANCE = 1e-2  # |row sum - 1| allowed: float16 rounding stays far below this
log = logging.getLogger(__name__)


def write_error(path: Path, err: OSError) -> CommitteeError:
    """A failed cache write as an error naming the file and the fix (the shards written are kept)."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = (f"free space on the disk holding {path.parent} (or choose another --cache-dir); the shards "
               "already written are kept and the next run resumes from them")
    else:
        fix = (f"make {path.parent} writable, or choose another --cache-dir (or $COMMITTEE_TASKS_CACHE, or "
               "--cache-dir memory to write nothing)")
    return CommitteeError(f"cannot write {path}: {err.strerror or err}; {fix}")


def _write(path: Path, write) -> None:
    try:
        atomic_write(path, write)
    except OSError as err:
        raise write_error(path, err) from err


def set_aside(path: Path, problem: str, then: str) -> None:
    """Move a corrupt cache file into ``corrupt/`` beside it (the shard listing does not look
    there; the file is kept for a post-mortem) and warn, naming it, the problem and ``then``."""
    dest = path.parent / "corrupt" / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    try:
        dest.parent.mkdir(exist_ok=True)
        os.replace(path, dest)
    except FileNotFoundError:
        return  # another reader set it aside first
    except OSError as err:
        log.warning("%s is corrupt (%s) and could not be moved aside (%s): ignored; %s", path, problem, err, then)
        return
    log.warning("%s is corrupt (%s): moved to %s; %s", path, problem, dest, then)


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """The sha256 of a shard's arrays: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        v = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{v.dtype.str}|{v.shape}|".encode())
        h.update(memoryview(v.reshape(-1)).cast("B") if v.size else b"")  # the bytes, not a copy of them
    return h.hexdigest()


def json_sha256(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _output_rows(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of (N, C, ...) outputs: finite, and probabilities (non-negative, summing to 1 over
    the classes, axis 1, at every position). float16 is checked as float32 (numpy's float16
    arithmetic is ~10x slower, and every cached row is checked on every read)."""
    n = len(outputs)
    x = as_float32(outputs) if outputs.dtype == np.float16 else outputs
    flat = x.reshape(n, -1)
    if not flat.size:
        return np.ones(n, dtype=bool), np.ones(n, dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        sums = x.sum(axis=1).reshape(n, -1)
        probabilities = (flat.min(axis=1) >= 0) & (np.abs(sums - 1) <= PROBABILITY_TOLERANCE).all(axis=1)
    return np.isfinite(flat).all(axis=1), probabilities


def bad_rows(arrays: Mapping[str, np.ndarray], probabilities: bool) -> np.ndarray:
    """Rows that cannot be right: NaN or inf in any float array, negative MACs, and where the
    shard holds ``probabilities`` (the outputs were probabilities when written) outputs that are not."""
    n = len(arrays["ids"])
    bad = np.zeros(n, dtype=bool)
    for key, v in arrays.items():
        if key == "outputs" and v.dtype.kind == "f" and v.ndim >= 2:
            finite, are_probabilities = _output_rows(v)
            bad |= ~finite | (~are_probabilities if probabilities else False)
        elif v.dtype.kind == "f":
            bad |= ~np.isfinite(v.reshape(n, -1)).all(axis=1)
        if key == "macs" and v.dtype.kind in "iuf":
            bad |= (v.reshape(n, -1) < 0).any(axis=1)
    return bad


def shard_problem(arrays: Mapping[str, np.ndarray], comment: bytes, member: str | None = None) -> str | None:
    """Why a shard read whole cannot be trusted (None: it can): a foreign layout, a checksum that
    does not match its arrays, or another member's fingerprint than ``member`` (a shard copied
    into the wrong folder, say by a careless rsync between nodes; shards written before the
    fingerprint was recorded carry none)."""
    ids = arrays.get("ids")
    if ids is None or ids.ndim != 1 or ids.dtype.kind != "U":
        return "no 1-d array of sample ids: not a shard this toolkit wrote"
    if any(v.ndim == 0 or len(v) != len(ids) for v in arrays.values()):
        return f"arrays of other lengths than its {len(ids)} ids"
    if comment:  # format 2
        try:
            meta = json.loads(comment)
            stored = meta["sha256"]
        except (ValueError, TypeError, KeyError):
            return "unreadable checksum"
        if stored != arrays_sha256(arrays):
            return "checksum mismatch: its contents changed after it was written"
        written_for = meta.get("member")
        if member is not None and written_for is not None and written_for != member:
            return (f"written for another member (fingerprint {str(written_for)[:16]}, this folder's is "
                    f"{member[:16]}): a shard copied into the wrong folder")
    return None


def save_shard(path: Path, arrays: Mapping[str, np.ndarray], member: str | None = None) -> None:
    """Write a shard atomically, the sha256 of its arrays (and the fingerprint of the ``member``
    or subset it belongs to) in its zip comment (np.load ignores it)."""
    outputs = arrays.get("outputs")
    # whether the outputs are probabilities, so a member whose outputs are not (a zoo entry
    # declaring unnormalised "probabilities") is not recomputed on every read
    probabilities = bool(outputs is not None and outputs.dtype.kind == "f" and outputs.ndim >= 2
                         and _output_rows(outputs)[1].all())
    meta = {"format": SHARD_FORMAT, "sha256": arrays_sha256(arrays), "probabilities": probabilities}
    comment = json.dumps(meta | ({"member": member} if member else {})).encode()

    def write(f):
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        with zipfile.ZipFile(buffer, "a") as z:
            z.comment = comment
        f.write(buffer.getbuffer())

    _write(path, write)


def timing_problem(t: Any) -> str | None:
    """Why a recorded timing is not one (None: it is): counts and seconds must be plain,
    non-negative, finite numbers, and samples need time."""
    if not isinstance(t, dict):
        return f"not an object: {t!r}"
    samples, seconds = t.get("samples"), t.get("seconds")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 0:
        return f"samples {samples!r} is not a count"
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds) or seconds < 0:
        return f"seconds {seconds!r} is not a duration"
    if samples > 0 and seconds <= 0:
        return f"{samples} samples in {seconds} s"
    return None


def read_checked_json(path: Path, problem_of) -> dict | None:
    """The JSON object in ``path`` (None if missing), its ``sha256`` field verified when present
    (files of earlier versions have none) and removed; ``problem_of(obj)`` says what else is wrong.
    A file that fails is set aside (None)."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        problem = f"unreadable: {err.strerror or err}"
    else:
        try:
            obj = json.loads(text)
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
            problem = f"not valid JSON: {err}"
        else:
            stored = obj.pop("sha256", None) if isinstance(obj, dict) else None
            if not isinstance(obj, dict):
                problem = f"not a JSON object but a {type(obj).__name__}"
            elif stored is not None and stored != json_sha256(obj):
                problem = "checksum mismatch: edited or damaged after it was written"
            else:
                problem = problem_of(obj)
                if problem is None:
                    return obj
    set_aside(path, problem, "it is written afresh")
    return None


def save_checked_json(path: Path, obj: Mapping[str, Any]) -> None:
    """Write ``obj`` atomically with its ``sha256`` field."""
    body = {k: v for k, v in obj.items() if k != "sha256"}
    try:
        atomic_write_json(path, {**body, "sha256": json_sha256(body)})
    except OSError as err:
        raise write_error(path, err) from err


def _manifest_problem(manifest: dict) -> str | None:
    return None if isinstance(manifest.get("fingerprint"), str) else "no member fingerprint"


def _dataset_problem(info: dict) -> str | None:
    for key in ("skipped", "notes"):
        value = info.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            return f"{key!r} is not a map of sample ids to reasons"
    return None


def clean_timing(manifest: dict, where: Path) -> dict:
    """``manifest`` with invalid timing (its total, or a writer's) dropped, with a warning: a
    hand-edited or damaged figure is never reported as a measured throughput."""
    timing = manifest.get("timing")
    problem = timing_problem(timing)
    if problem:
        log.warning("%s: ignoring its recorded timing (%s)", where, problem)
        manifest["timing"] = timing = {"samples": 0, "seconds": 0.0}
    by_writer = timing.get("by_writer", {})
    if not isinstance(by_writer, dict):
        log.warning("%s: ignoring its per-writer timing (not an object)", where)
        by_writer = timing["by_writer"] = {}
    for writer, t in list(by_writer.items()):
        problem = timing_problem(t)
        if problem:
            log.warning("%s: ignoring the timing of writer %s (%s)", where, writer, problem)
            del by_writer[writer]
    return manifest


@contextmanager
def locked(path: Path):
    """An exclusive lock beside ``path`` (``.<name>.lock``), held across processes and machines
    sharing the filesystem, for a read-modify-write of ``path``."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path.parent / f".{path.name}.lock"), timeout=LOCK_TIMEOUT_S)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise CommitteeError(f"could not lock {path} within {LOCK_TIMEOUT_S} s: another writer holds "
                             f"{lock.lock_file}; if no run uses this cache, delete that file") from None
    except OSError as err:  # an unwritable or full cache folder
        raise write_error(Path(lock.lock_file), err) from err
    try:
        yield
    finally:
        lock.release()


def writer_id() -> str:
    """A name no other writer of a cache has: host, torchrun rank (so that per-writer figures say
    whose they are), process and a random part."""
    host = "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:32] or "host"
    world, rank = os.environ.get("WORLD_SIZE", ""), os.environ.get("RANK", "")
    ranked = f"rank{rank}of{world}-" if world.isdigit() and int(world) > 1 and rank.isdigit() else ""
    return f"{host}-{ranked}{os.getpid()}-{secrets.token_hex(3)}"


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

    def record_cost_note(self, note: str) -> None:
        """The member's note on how its cost is made up, for runs that read it without building it."""
        if self.manifest.get("cost_note") != note:
            self._update_manifest(cost_note=note)

    def _update_manifest(self, **fields) -> None:
        """Set ``fields`` in the manifest as another writer may have left it (read again, under the lock)."""
        with self._manifest_lock():
            self.manifest = self._read_manifest() or self.manifest
            self.manifest.update(fields)
            self._save_manifest(self.manifest)

    writer = "memory"  # the name of this process's shards and timing (MemberCache: host-pid-random)

    def throughput(self) -> float | None:  # timing is validated where the manifest is read (clean_timing)
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
        seen = f"{len(again)} {'identical' if same else 'different'}"
        # said once as a warning; every later read of the same copies says it quietly (log level info)
        level = logging.INFO if self.manifest.get("duplicates_reported") == seen and same else logging.WARNING
        log.log(level, "%s: %d samples were computed by two writers; read from the first shard in name order "
                "(the copies are %s)", self.folder, len(again),
                "identical" if same else "NOT identical: the writers ran the member differently")
        if level == logging.WARNING:
            try:  # only a memo of what was said: a read-only cache says it again next time
                self._update_manifest(duplicates_reported=seen)
            except CommitteeError as err:
                log.debug("not recorded: %s", err)


class MemberCache(BaseMemberCache):
    """A member's outputs in npz shards next to its manifest.json."""

    def __init__(self, folder: Path, fingerprint: str, description: Mapping[str, Any]):
        self.writer, self._written, self._verified = writer_id(), 0, {}
        self.folder = folder
        manifest = self._read_manifest()
        if manifest is not None and manifest.get("fingerprint") == fingerprint:
            # written whole (renamed into place): read without a lock, so a finished cache on a
            # read-only filesystem can be read
            self.fingerprint, self.manifest = fingerprint, manifest
            return
        with locked(folder / "manifest.json"):  # two writers opening a new folder at once write it once
            super().__init__(folder, fingerprint, description)

    def _manifest_lock(self):
        return locked(self.folder / "manifest.json")

    def _read_manifest(self) -> dict | None:
        path = self.folder / "manifest.json"
        manifest = read_checked_json(path, _manifest_problem)
        return None if manifest is None else clean_timing(manifest, path)

    def _save_manifest(self, manifest: dict) -> None:
        save_checked_json(self.folder / "manifest.json", manifest)

    def shards(self) -> list[Path]:
        """Every whole shard, listed afresh (other writers add theirs), in name order."""
        return sorted(self.folder.glob("shard-*.npz"))  # not corrupt/: set aside

    def _chunks(self) -> Iterator[Mapping[str, np.ndarray]]:
        for shard in self.shards():
            arrays = self._read_shard(shard)
            if arrays is not None:
                yield arrays

    _verified: dict[Path, tuple[int, int]]  # shard -> (size, mtime) checked: load re-reads, not re-hashes

    def _read_shard(self, path: Path) -> dict[str, np.ndarray] | None:
        """A shard's arrays, verified; None for one set aside as corrupt (its samples are then
        missing, so computed again). Rows with impossible values are dropped and the shard
        rewritten without them."""
        try:
            stat = path.stat()
            with np.load(path) as data:  # allow_pickle=False: a shard holds no objects
                arrays = {k: data[k] for k in data.files}
                comment = data.zip.comment
        except FileNotFoundError:
            return None  # set aside by another reader since it was listed
        except Exception as err:  # whatever a truncated, flipped, foreign or unreadable file raises
            set_aside(path, f"unreadable: {type(err).__name__}: {err}", "its samples are computed again")
            return None
        if self._verified.get(path) == (stat.st_size, stat.st_mtime_ns):
            return arrays
        problem = shard_problem(arrays, comment, self.fingerprint)
        if problem:
            set_aside(path, problem, "its samples are computed again")
            return None
        # format 1 shards predate the flag; their outputs were probabilities by the task contract
        probabilities = json.loads(comment).get("probabilities", True) if comment else True
        bad = bad_rows(arrays, probabilities)
        if bad.any():
            set_aside(path, f"{int(bad.sum())} of its {len(bad)} rows hold NaN, inf, negative values or "
                            "probabilities not summing to 1",
                      "the shard is rewritten without them and they are computed again")
            arrays = {k: v[~bad] for k, v in arrays.items()}
            if not len(arrays["ids"]):
                return None
            save_shard(path, arrays, self.fingerprint)  # the good rows, whole and checksummed
            stat = path.stat()
        self._verified[path] = (stat.st_size, stat.st_mtime_ns)
        return arrays

    def write_shard(self, arrays: Mapping[str, np.ndarray]) -> Path:
        path = self.folder / f"shard-{self.writer}-{self._written:06d}.npz"
        save_shard(path, arrays, self.fingerprint)
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
        return self._inside(self.root / path_component(task)
                            / f"{path_component(dataset_name)}-{dataset_fingerprint[:16]}")

    def member(self, dataset_folder: Path, name: str, fingerprint: str,
               description: Mapping[str, Any]) -> BaseMemberCache:
        """The cache of one member (``description`` goes into a new manifest)."""
        folder = self._inside(dataset_folder / f"{path_component(name)}-{fingerprint[:16]}")
        return self._open_member(folder, fingerprint, description)

    def _inside(self, folder: Path) -> Path:
        """``folder``, checked to lie under the root: a second guard behind `path_component`.
        Checked on the path as written, not resolved: a symlink the user made inside the cache
        (a dataset folder on another disk) is theirs to make."""
        root, path = os.path.abspath(self.root), os.path.abspath(folder)
        if os.path.commonpath([root, path]) != root:
            raise CommitteeError(f"cache folder {folder} lies outside the cache root {self.root}: refused")
        return folder

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
                       notes: Mapping[str, str] | None = None, read_again: Iterable[str] = ()) -> None:
        """Add ``skipped`` samples (id -> why) and ``notes``; samples skipped before that this run
        ``read_again`` successfully are skipped no more."""
        with self._dataset_lock(dataset_folder):  # other writers add their skips too
            info = self._dataset_info(dataset_folder) or {"fingerprint": fingerprint, "skipped": {}}
            info.setdefault("skipped", {}).update(skipped)
            for sid in read_again:
                info["skipped"].pop(sid, None)
            info.setdefault("notes", {}).update(notes or {})
            self._save_dataset_info(dataset_folder, info)

    @contextmanager
    def _dataset_lock(self, dataset_folder: Path):
        yield

    def require_writable(self, why: str = "") -> None:
        """Refuse a cache that cannot be written, before any member runs (memory: always can)."""


class PredictionCache(BasePredictionCache):
    """The cache on disk (the layout above)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_root()

    def require_writable(self, why: str = "") -> None:
        """Refuse a cache root that cannot be made or written, before any member runs (not when
        its first outputs are written). Only where something is to be written (``why``): a
        finished cache is read on a read-only filesystem (a team's shared cache) without it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            writable = os.access(self.root, os.W_OK | os.X_OK)
            reason = "permission denied"
        except OSError as err:
            writable, reason = False, f"{type(err).__name__}: {err.strerror or err}"
        if not writable:
            lacking = f", and {why}" if why else ""
            raise CommitteeError(f"cannot write the prediction cache in {self.root} ({reason}){lacking}: pass --cache-dir "
                                 "DIR (a writable folder), set $COMMITTEE_TASKS_CACHE, or --cache-dir memory to write "
                                 "nothing")

    def _open_member(self, folder: Path, fingerprint: str, description: Mapping[str, Any]) -> MemberCache:
        check_stable_key(str(description.get("member")), str(description.get("preprocessing", "")),
                         "a prediction cache on disk")
        if not (folder / "manifest.json").exists():
            self.require_writable(f"it has no {folder.parent.name}/{folder.name} yet")  # before anything is written
        return MemberCache(folder, fingerprint, description)

    def _dataset_info(self, dataset_folder: Path) -> dict | None:
        return read_checked_json(dataset_folder / "dataset.json", _dataset_problem)

    def _save_dataset_info(self, dataset_folder: Path, info: dict) -> None:
        save_checked_json(dataset_folder / "dataset.json", info)

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
