"""Where a result came from: every result file carries it, so a figure can be traced and redone.

Schema version (what readers check), toolkit version and git commit, library versions, device,
threads, date, the command line (and config), and the fingerprints of the dataset and members.
"""
from __future__ import annotations

import datetime
import hashlib
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

from committee_tasks.core.errors import CommitteeError

# Version of the result files' layout (tools/eval.py and tools/search.py --json, tools/report.py's
# committees.json). Readers refuse other versions rather than misread them.
SCHEMA_VERSION = 2
LIBRARIES = ("torch", "torchvision", "numpy", "scipy", "pytorchvideo", "decord", "mmsegmentation", "mmengine",
             "mmcv-lite")
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout: committee_tasks/core/provenance.py


def toolkit_version() -> str:
    from committee_tasks import __version__

    return __version__


def git_commit(root: Path = _PACKAGE_ROOT) -> dict[str, Any] | None:
    """The checkout's commit, whether tracked files differ from it, and if so the sha256 of that
    difference (``git diff HEAD``), which tells two runs of one modified tree from runs of two;
    None outside a checkout."""
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        diff = subprocess.run(["git", "-C", str(root), "diff", "HEAD", "--binary"], capture_output=True,
                              timeout=10, check=True).stdout if dirty else b""
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "modified": bool(dirty)} | (
        {"diff_sha256": hashlib.sha256(diff).hexdigest()} if dirty else {})


def library_versions() -> dict[str, str | None]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: str | None = None) -> dict[str, Any]:
    import torch

    from committee_tasks.core.devices import resolve_device
    from committee_tasks.core.threads import thread_settings

    resolved = resolve_device(device or "auto")
    name = torch.cuda.get_device_name(resolved) if resolved.type == "cuda" else cpu_name()
    return {"device": str(resolved), "name": name, "threads": thread_settings()}


def provenance(device: str | None = None, config: Mapping[str, Any] | None = None,
               fingerprints: Mapping[str, Any] | None = None, argv: Sequence[str] | None = None,
               settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything needed to trace and redo a result (``fingerprints``: dataset and member hashes;
    ``settings``: those the figures depend on, resolved, e.g. `PoolRequest.settings`)."""
    argv = list(sys.argv if argv is None else argv)
    return {
        "schema_version": SCHEMA_VERSION,
        "toolkit": {"name": "committee-tasks", "version": toolkit_version(), "git": git_commit()},
        "python": platform.python_version(),
        "platform": platform.platform(),
        "libraries": library_versions(),
        **device_description(device),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join(argv),
        "config": dict(config) if config else None,
        "fingerprints": dict(fingerprints or {}),
        "settings": dict(settings) if settings else None,
    }


def check_schema(result: Any, source: str, producer: str = "tools/search.py --json") -> None:
    """Refuse a result file of another schema version with a message that says what to do."""
    version = result.get("schema_version") if isinstance(result, Mapping) else None
    if version == SCHEMA_VERSION:
        return
    if version is None:
        raise CommitteeError(f"{source}: no schema_version: written by an older committee-tasks (before schema "
                             f"{SCHEMA_VERSION}) or not a {producer} result; rerun {producer} with this version "
                             f"({toolkit_version()})")
    raise CommitteeError(f"{source}: schema version {version!r}, but this committee-tasks ({toolkit_version()}) "
                         f"reads schema version {SCHEMA_VERSION}; rerun {producer} with this version, or read "
                         "the file with the version that wrote it")


# Provenance columns of CSV files, repeated on every row so that the file stands on its own.
CSV_PROVENANCE = ["schema_version", "toolkit_version", "git_commit", "libraries", "device", "device_name", "threads",
                  "date", "command", "dataset_fingerprint", "member_fingerprints"]


def provenance_columns(prov: Mapping[str, Any], members: Sequence[str] = ()) -> dict[str, Any]:
    git = (prov.get("toolkit") or {}).get("git") or {}
    fingerprints = prov.get("fingerprints") or {}
    member_fps = fingerprints.get("members") or {}
    return {"schema_version": prov["schema_version"], "toolkit_version": prov["toolkit"]["version"],
            "git_commit": (git.get("commit", "") + ("+modified" if git.get("modified") else "")) or None,
            "libraries": ";".join(f"{k}={v}" for k, v in (prov.get("libraries") or {}).items() if v),
            "device": prov.get("device"), "device_name": prov.get("name"),
            "threads": ";".join(f"{k}={v}" for k, v in (prov.get("threads") or {}).items()),
            "date": prov.get("date"), "command": prov.get("command"),
            "dataset_fingerprint": (fingerprints.get("dataset") or {}).get("fingerprint"),
            "member_fingerprints": ";".join(f"{m}={member_fps[m]}" for m in members if m in member_fps)}


def short_line(prov: Mapping[str, Any]) -> str:
    """One line for the footer of a table: version, commit, libraries, device, date."""
    git = (prov.get("toolkit") or {}).get("git") or {}
    commit = f" commit {git['commit'][:12]}{' (modified)' if git.get('modified') else ''}" if git else ""
    libs = prov.get("libraries") or {}
    threads = (prov.get("threads") or {}).get("torch")
    return (f"committee-tasks {prov['toolkit']['version']}{commit}, schema {prov['schema_version']}; "
            f"torch {libs.get('torch')}, torchvision {libs.get('torchvision')}; {prov.get('name')} "
            f"({prov.get('device')}{f', {threads} torch threads' if threads else ''}); {prov.get('date')}")
