"""Facts a zoo reads from an installed package (torchvision's weights API, pytorchvideo's hub
URLs), shipped as a JSON index so that listing the zoo imports no model library.

An index records the version of the package it was read from. With that version installed (or
the package missing: listing still works, building says what to install) the shipped facts are
used; with another version they are read from the package itself: slower, never stale.
``tools/write_zoo_indexes.py`` rewrites the shipped indexes; a test checks they are current.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from committee_tasks.core.files import atomic_write, read_json

log = logging.getLogger(__name__)

WRITER = "tools/write_zoo_indexes.py"


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution (from its metadata: nothing is imported), or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class PackageIndex:
    """The records ``read`` gets from ``distribution`` (importing it), shipped at ``path``.

    ``read`` returns a list of JSON-able dicts, one per model; `load` returns them as JSON gives
    them back (lists, not tuples), whether they come from the file or from the package."""

    path: Path
    distribution: str
    read: Callable[[], list[dict[str, Any]]]

    def load(self) -> list[dict[str, Any]]:
        shipped = read_json(self.path, default=None)
        installed = installed_version(self.distribution)
        if isinstance(shipped, dict) and "records" in shipped and installed in (None, shipped.get("version")):
            return shipped["records"]
        log.debug("%s: made for %s %s, %s is installed: reading the package itself", self.path,
                  self.distribution, (shipped or {}).get("version"), installed)
        return self.fresh()["records"]

    def fresh(self) -> dict[str, Any]:
        """The index as the installed package gives it now."""
        records = json.loads(json.dumps(self.read()))
        return {"distribution": self.distribution, "version": installed_version(self.distribution),
                "written_by": WRITER, "records": records}

    def write(self) -> dict[str, Any]:
        """Rewrite the shipped index from the installed package; returns it."""
        index = self.fresh()
        atomic_write(self.path, lambda f: f.write(dumps(index).encode()))
        return index

    def drift(self) -> str | None:
        """What differs between the shipped index and the installed package (None: nothing)."""
        shipped, fresh = read_json(self.path, default={}) or {}, self.fresh()
        if shipped == fresh:
            return None
        old = {json.dumps(r, sort_keys=True) for r in shipped.get("records", [])}
        new = {json.dumps(r, sort_keys=True) for r in fresh["records"]}
        return (f"{self.path} was written for {self.distribution} {shipped.get('version')}, "
                f"{fresh['version']} is installed; {len(new - old)} records new or changed, {len(old - new)} "
                f"gone (e.g. {sorted(new ^ old)[:1]}). Rewrite it with `.venv/bin/python {WRITER}`")


def dumps(index: dict[str, Any]) -> str:
    """JSON with one record per line: small diffs when the package changes."""
    head = {k: v for k, v in index.items() if k != "records"}
    lines = ",\n".join(json.dumps(r, sort_keys=True) for r in index["records"])
    return json.dumps(head, indent=1, sort_keys=True)[:-2] + ',\n "records": [\n' + lines + "\n ]\n}\n"
