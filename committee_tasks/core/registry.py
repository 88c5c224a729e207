"""Task registry: task plugins register through the ``committee_tasks.tasks`` entry-point group.

The built-in tasks register through that same group (see ``setup.cfg``), so a third-party package
that declares::

    [options.entry_points]
    committee_tasks.tasks =
        my_task = my_package:MyTask

is found exactly as the built-ins are. ``register_task`` adds a task in-process (tests, notebooks).
"""
from __future__ import annotations

import fnmatch
from importlib import metadata
from typing import TYPE_CHECKING

from committee_tasks.core.errors import CommitteeError, unknown_name

if TYPE_CHECKING:
    from committee_tasks.core.task import Task

ENTRY_POINT_GROUP = "committee_tasks.tasks"

# name -> (where it came from, loader returning the Task class)
_registry: dict[str, tuple[str, object]] = {}
_entry_points_loaded = False


def _same_class(loader, other) -> bool:
    try:
        return loader() is other()
    except Exception:  # a loader that fails to import is not the same class
        return False


def _add(name: str, origin: str, loader) -> None:
    if name in _registry and _registry[name][0] != origin:
        if _same_class(_registry[name][1], loader):  # one class, through its entry point and in-process
            return
        raise CommitteeError(
            f"task {name!r} is registered twice: by {_registry[name][0]} and by {origin}; "
            "uninstall one of the two packages or rename one task"
        )
    _registry[name] = (origin, loader)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {ep.value!r}" + (f" of {ep.dist.name}" if ep.dist else "")
        _add(ep.name, origin, ep.load)


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator registering a task in-process under ``cls.name``."""
    _load_entry_points()
    _add(cls.name, f"{cls.__module__}.{cls.__qualname__}", lambda: cls)
    return cls


def list_tasks(pattern: str = "*") -> list[str]:
    """Registered task names, filtered with a shell-style wildcard."""
    _load_entry_points()
    return sorted(n for n in _registry if fnmatch.fnmatch(n, pattern))


def get_task(name: str) -> Task:
    """An instance of the task registered as ``name``."""
    _load_entry_points()
    if name not in _registry:
        raise unknown_name(
            "task", name, _registry,
            fix="List them with `tools/eval.py --list-tasks`; a plugin task appears once its "
            f"package is installed and declares the {ENTRY_POINT_GROUP!r} entry point.",
        )
    origin, loader = _registry[name]
    try:
        return loader()()
    except Exception as err:
        raise CommitteeError(f"task {name!r} ({origin}) failed to load: {type(err).__name__}: {err}") from err
