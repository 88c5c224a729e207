"""Zoo entries: each pretrained member is data (a frozen dataclass), like timm's ``PretrainedCfg``
and torchvision's ``Weights.meta``.

Weights are found, in order: in the user's ``--weights-dir``, at the path of a file shipped
with a package, in a library's own places (``WeightsSource.locations``: e.g. the Hugging Face
cache), in the torch.hub cache (``$TORCH_HOME/hub/checkpoints``), else fetched by the library's
own download (``WeightsSource.fetch``) or downloaded into the torch.hub cache from the published
URL, with its sha256 checked. Offline, the error names the file and the folders to put it in.
"""
from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.weight_hashes import remembered_sha256

if TYPE_CHECKING:  # torch is imported only to build, load or download: listing the zoo needs none
    import torch


RANDOM_INIT = "random-init"  # the "sha256" of an entry without weights


class WeightsUnavailableError(CommitteeError):
    """The weight file of a zoo entry is neither on disk nor downloadable."""


def each_with_weights(items, make) -> list:
    """``make(item)`` for every item; the models whose weights are missing are named all at once
    (offline, a pool of five models would otherwise take five attempts to learn its five files)."""
    results, missing = [], []
    for item in items:
        try:
            results.append(make(item))
        except WeightsUnavailableError as err:
            missing.append(str(err))
    if len(missing) == 1:
        raise WeightsUnavailableError(missing[0])
    if missing:
        raise WeightsUnavailableError(f"the weights of {len(missing)} models are missing:\n"
                                      + "\n".join(f"  - {m}" for m in missing))
    return results


@contextlib.contextmanager
def naming_the_model(name: str, source: str):
    """A `WeightsUnavailableError` inside the block names the model and where it comes from: the
    file name alone may not say which."""
    try:
        yield
    except WeightsUnavailableError as err:
        raise WeightsUnavailableError(f"model {name!r} ({source}): {err}") from None


@dataclass(frozen=True)
class WeightsSource:
    """Where a member's weights come from.

    ``sha256`` is the full hex digest when the publisher gives one, or the prefix that torch.hub
    file names carry (``resnet50-0676ba61.pth``), which is what torchvision publishes.
    ``path`` is where the file is expected: one a zoo file names, or, with ``shipped``, a file that
    ships with a package (the embedded default's checkpoints);
    ``trainer`` makes the file on first use (a plugin's own small models).
    ``locations(weights_dir)`` lists more places the file may already be (other names in the
    weights dir, a library's download cache), searched before the torch.hub cache; ``fetch()``
    downloads it the library's way when it is in none of them and returns its path (used instead
    of downloading ``url`` into the torch.hub cache). Both are `LazyCall`s in the built-in zoos.
    """

    file_name: str
    url: str | None = None
    sha256: str | None = None
    trainer: Callable[[Path], None] | None = None
    path: Path | None = None
    locations: Callable[[Path | None], Sequence[Path]] | None = None
    fetch: Callable[[], Path] | None = None
    shipped: bool = False


@dataclass(frozen=True)
class ZooEntry:
    """One pretrained member: how to build it, its weights, preprocessing and published figures.

    ``macs`` is multiply-adds per sample at ``input_size`` as published (None if not published);
    the toolkit always reports its own count next to it. ``metrics`` are published figures on
    ``dataset`` (e.g. ``{"top-1": 76.13}``).
    """

    name: str
    task: str
    builder: Callable[[], torch.nn.Module]
    weights: WeightsSource | None
    num_classes: int
    dataset: str
    input_size: tuple[int, ...]
    preprocessing: Callable[[], Any]
    macs: int | None = None
    params: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    state_dict_loader: Callable[[Path], Mapping[str, torch.Tensor]] | None = None
    source: str = ""
    notes: Mapping[str, Any] = field(default_factory=dict)  # task-specific published facts (e.g. views)
    # What else changes the member's outputs for the same weight file and preprocessing (the
    # state-dict key read from a checkpoint, a class map): part of the cache key when not empty.
    variant: Mapping[str, Any] = field(default_factory=dict)
    # How the outputs become class probabilities (an `OutputSpec`); None: the task's own rule.
    outputs: Any = None

    def published(self) -> dict[str, Any]:
        return {"macs": self.macs, "params": self.params, "metrics": dict(self.metrics),
                "dataset": self.dataset, "input_size": list(self.input_size), "source": self.source,
                **dict(self.notes)}


def filter_names(names, pattern: str = "*") -> list[str]:
    """Names matching a shell-style wildcard, sorted (timm's ``list_models`` convention)."""
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def hub_checkpoint_dir() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def hash_file(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file, read in full."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """The sha256 of a file, read only when the memo has not seen it at this size and mtime."""
    return remembered_sha256(path, hash_file)


def _check_hash(path: Path, source: WeightsSource) -> str:
    actual = sha256_of(path)
    if source.sha256 and not actual.startswith(source.sha256):
        raise WeightsUnavailableError(
            f"{path} has sha256 {actual}, expected {source.sha256}: the file is corrupt or another release; "
            + (f"delete it and download it again from {source.url}" if source.url else
               "if it is the right file, correct the sha256 written for it (or leave the sha256 out)")
        )
    return actual


def _candidates(source: WeightsSource, weights_dir: str | os.PathLike | None) -> list[Path]:
    """Where the file may be, in the order searched; the last is the torch.hub cache."""
    candidates = []
    if weights_dir is not None:
        candidates.append(Path(weights_dir) / source.file_name)
    if source.path is not None:
        candidates.append(Path(source.path))
    if source.locations is not None:
        candidates.extend(Path(p) for p in source.locations(None if weights_dir is None else Path(weights_dir)))
    candidates.append(hub_checkpoint_dir() / source.file_name)
    return candidates


def weights_digest(source: WeightsSource, weights_dir: str | os.PathLike | None = None) -> str:
    """The sha256 that `resolve_weights` would return, without loading anything and, when the
    entry records the full digest, without needing the file: a run whose outputs are all cached
    then works with the weight file deleted. A file on disk is still checked (through the memo)."""
    local = next((path for path in _candidates(source, weights_dir) if path.is_file()), None)
    if local is not None:
        return _check_hash(local, source)
    if source.sha256 is not None and re.fullmatch(r"[0-9a-fA-F]{64}", source.sha256):
        return source.sha256.lower()
    return resolve_weights(source, weights_dir)[1]  # only a prefix is published: fetch the file


def resolve_weights(source: WeightsSource, weights_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The local path of a weight file and its sha256, downloading or training it if needed."""
    candidates = _candidates(source, weights_dir)
    local = next((path for path in candidates if path.is_file()), None)
    if local is not None:
        return local, _check_hash(local, source)

    hub_path = candidates[-1]
    hub_path.parent.mkdir(parents=True, exist_ok=True)
    if source.trainer is not None:
        source.trainer(hub_path)  # writes atomically
        return hub_path, _check_hash(hub_path, source)
    if source.fetch is not None:
        return _fetched(source, candidates, weights_dir)
    if source.url is None:
        raise WeightsUnavailableError(
            f"weights file {source.file_name!r} not found in "
            + " or ".join(str(p.parent) for p in candidates)
            + "; put it in one of these folders (or pass --weights-dir DIR)"
            + (f". It ships with the package at {source.path}: is the checkout or install complete?"
               if source.shipped else "")
        )
    import torch

    tmp = hub_path.with_name(hub_path.name + f".partial-{os.getpid()}")
    try:
        torch.hub.download_url_to_file(source.url, str(tmp), hash_prefix=None, progress=True)
        digest = _check_hash(tmp, source)
        os.replace(tmp, hub_path)
        return hub_path, digest
    except WeightsUnavailableError:
        raise
    except Exception as err:  # offline, proxy, HTTP errors: say which file to put where
        raise WeightsUnavailableError(
            f"could not download {source.url} ({type(err).__name__}: {err}). Offline? Put the file "
            f"{source.file_name!r} in {hub_path.parent} (the torch.hub cache) or in a folder you "
            f"pass as --weights-dir (weights_dir= in the Python API){_weights_dir_searched(weights_dir, source)}"
        ) from err
    finally:
        tmp.unlink(missing_ok=True)


def _weights_dir_searched(weights_dir: str | os.PathLike | None, source: WeightsSource) -> str:
    """What the given weights dir held, for a message about a file not found: a mistyped folder
    was searched without a word."""
    if weights_dir is None:
        return ""
    folder = Path(weights_dir)
    if not folder.is_dir():
        return f". The weights dir given, {folder}, does not exist" + (" (it is a file)" if folder.exists() else "")
    return f". The weights dir given, {folder}, has no {source.file_name!r}"


def _fetched(source: WeightsSource, searched: list[Path], weights_dir: str | os.PathLike | None) -> tuple[Path, str]:
    """The file as ``source.fetch`` downloads it; a failure names every place searched, and
    without a weights dir, the places one would be searched."""
    try:
        path = Path(source.fetch())
    except WeightsUnavailableError:
        raise
    except Exception as err:  # offline, HTTP errors, a repository without the file
        in_a_dir = ""
        if weights_dir is None:
            forms = [p for p in _candidates(source, WEIGHTS_DIR_PLACEHOLDER) if WEIGHTS_DIR_PLACEHOLDER in p.parents]
            in_a_dir = f"; or pass --weights-dir DIR holding it as {' or '.join(str(p) for p in forms)}"
        raise WeightsUnavailableError(
            f"weights file {source.file_name!r} is not on disk and could not be downloaded "
            f"({type(err).__name__}: {str(err)[:900]}). Offline? Put it at one of: "
            + ", ".join(str(p) for p in searched) + (in_a_dir or " (or pass --weights-dir DIR holding it)")
        ) from err
    return path, _check_hash(path, source)


WEIGHTS_DIR_PLACEHOLDER = Path("DIR")  # where a message shows a weights dir's forms
