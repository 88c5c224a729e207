"""Lazy public names for the toolkit's packages (PEP 562).

A package's ``__init__`` lists its public names and the module that defines each; nothing is
imported until a name is used. So ``tools/eval.py --help`` imports neither torch nor scipy, and
a plugin importing one name from ``committee_tasks.core`` does not pull in the whole core.
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public names are ``exports``
    (name -> module relative to the package, e.g. ``".task"``)."""

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
