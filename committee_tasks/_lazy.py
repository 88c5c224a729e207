"""Lazy public names for the toolkit's packages (PEP 562).

A package's ``__init__`` lists, per module, the public names it defines; nothing is imported
until a name is used. So ``tools/eval.py --help`` imports neither torch nor scipy, and a plugin
importing one name from ``committee_tasks.core`` does not pull in the whole core.
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable


def lazy_exports(package: str, modules: dict[str, str]
                 ) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` of ``package``, whose public names are given
    per module (relative to the package, e.g. ``".task"``, or absolute) as space-separated words."""
    where = {name: module for module, names in modules.items() for name in names.split()}

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return sorted(where), __getattr__, __dir__
