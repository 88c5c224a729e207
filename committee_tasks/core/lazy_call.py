"""A call written down now and made later: ``lazy_call("torchvision.models:get_model", "resnet50")``.

Zoo entries hold their builders, preprocessing and checkpoint loaders as callables. Written as
plain functions they would make listing the zoo import every model library (torch, torchvision,
pytorchvideo, mmseg: seconds); a `LazyCall` names its target as ``"module:attribute"`` and
imports the module only when called. It compares by value, pickles, and its repr is stable.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from committee_tasks.core.errors import CommitteeError


@dataclass(frozen=True)
class LazyCall:
    """``target(*args, *more, **kwargs, **more_kwargs)``, ``target`` being ``"module:attribute"``
    (dots in the attribute reach into it: ``"pkg.mod:Class.method"``)."""

    target: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        module, _, attribute = self.target.partition(":")
        if not module or not attribute:
            raise CommitteeError(f"lazy call target {self.target!r} is not 'module:attribute' "
                                 "(e.g. 'torchvision.models:get_model')")

    def resolve(self) -> Callable[..., Any]:
        """The target itself (imports its module)."""
        module, _, attribute = self.target.partition(":")
        value: Any = importlib.import_module(module)
        for part in attribute.split("."):
            value = getattr(value, part)
        return value

    def __call__(self, *more: Any, **more_kwargs: Any) -> Any:
        return self.resolve()(*self.args, *more, **dict(self.kwargs), **more_kwargs)


def lazy_call(target: str, *args: Any, **kwargs: Any) -> LazyCall:
    """``target(*args, **kwargs)`` made when the result is called, not now (keyword arguments
    are kept sorted: equal calls compare equal however their arguments were spelled)."""
    return LazyCall(target, args, tuple(sorted(kwargs.items())))
