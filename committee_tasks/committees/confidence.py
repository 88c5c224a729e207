"""Confidence of a (combined) prediction, one float per sample; higher is more confident.

Functions take probabilities of shape (N, C, ...) and reduce over the class axis 1; for outputs
with extra axes (per-pixel maps) the per-position confidence is averaged, so the same functions
serve every task. There is one implementation, on tensors: the cache-based committees, the live
executor and the search all call it, so they agree to the last bit at a threshold. A user's own
confidence enters the same way, through `register_confidence`.
"""
from __future__ import annotations

import numbers
import re
from typing import Callable

import numpy as np
import torch

from committee_tasks.core.errors import CommitteeError, unknown_name


def _reduce(per_position: torch.Tensor) -> torch.Tensor:
    """A sample's mean over positions (pixels), one sample at a time: a batched mean's summation
    order depends on the batch, so a sample's value would change in its last bit with the samples
    it was batched with (a resumed run, another rank's share)."""
    if per_position.dim() == 1:
        return per_position
    return torch.stack([row.mean() for row in per_position.flatten(1)]) if len(per_position) else \
        per_position.flatten(1).mean(1)


def max_prob_t(probs: torch.Tensor) -> torch.Tensor:
    """Largest class probability (the paper's default)."""
    return _reduce(probs.amax(dim=1))


def margin_t(probs: torch.Tensor) -> torch.Tensor:
    """Top-1 minus top-2 probability."""
    top2 = probs.topk(2, dim=1).values
    return _reduce(top2[:, 0] - top2[:, 1])


def neg_entropy_t(probs: torch.Tensor) -> torch.Tensor:
    """Negative Shannon entropy in nats (0 for a one-hot prediction)."""
    p = probs.clamp(1e-12, 1.0)
    return _reduce((p * p.log()).sum(dim=1))


class frac_above_t:
    """Share of positions (pixels) whose largest class probability is at least ``level``."""

    def __init__(self, level: float):
        self.level = level
        self.__name__ = f"frac_above_{level:g}_t"

    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        return _reduce((probs.amax(dim=1) >= self.level).float())


# name -> (where it was registered, the function on tensors); "frac_above_<level>" is a family
_REGISTRY: dict[str, tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = {}
DEFAULT_CONFIDENCE = "max_prob"  # the paper's: a cascade's confidence unless it names another
FRAC_ABOVE = re.compile(r"^frac_above_(0(?:\.\d+)?|1(?:\.0+)?)$")
_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")  # no commas or spaces: command lines list names with commas


def register_confidence(name: str, fn: Callable[[torch.Tensor], torch.Tensor] | None = None):
    """Add a confidence function under ``name``: it takes probabilities (N, C, ...) as a tensor
    and returns (N,) float32, higher meaning more confident. Cascades, the executor, the search
    and the greedy builder then accept ``name`` wherever a confidence is asked for; a task that
    caches statistics instead of outputs computes it in the loop once ``name`` is listed in its
    ``cached_confidences``. Returns ``fn``; without ``fn``, a decorator."""
    if fn is None:
        return lambda f: register_confidence(name, f)
    if not isinstance(name, str) or not _NAME.match(name) or FRAC_ABOVE.match(name):
        raise CommitteeError(f"cannot register the confidence name {name!r}: use letters, digits, '_', '.' or "
                             "'-' (no commas or spaces), and not the built-in family frac_above_<level>")
    if not callable(fn):
        raise CommitteeError(f"confidence {name!r} must be a function of a probability tensor, got {fn!r}")
    origin = _origin(fn)
    if name in _REGISTRY and _REGISTRY[name][0] != origin:
        raise CommitteeError(f"confidence {name!r} is registered twice: by {_REGISTRY[name][0]} and by {origin}; "
                             "rename one of them")
    _REGISTRY[name] = (origin, _Float32PerSample(name, fn))
    return fn


class _Float32PerSample:
    """``fn`` returning float32 (N,): every caller then compares the same values with a threshold.
    A class, not a closure, so that what holds it pickles."""

    def __init__(self, name: str, fn: Callable):
        self.fn, self.__name__, self.__doc__ = fn, name, fn.__doc__

    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        out = torch.as_tensor(self.fn(probs)).to(torch.float32)
        if out.shape != probs.shape[:1]:
            raise CommitteeError(f"confidence {self.__name__!r} returned shape {tuple(out.shape)} for probabilities "
                                 f"of shape {tuple(probs.shape)}; it must return one value per sample")
        return out


def _origin(fn) -> str:
    code = getattr(fn, "__code__", None)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}{where}"


for _name, _fn in (("max_prob", max_prob_t), ("margin", margin_t), ("neg_entropy", neg_entropy_t)):
    register_confidence(_name, _fn)


# Built-in confidences that depend only on a prediction's largest class probabilities, as
# functions of them ((N, r), largest first; the same float32 arithmetic as the tensor versions):
# the search forms a subset's mean only on candidate classes for these (committees.subset_columns).
_TOP_VALUE_FORMS: dict[str, tuple[int, Callable[[np.ndarray], np.ndarray]]] = {
    "max_prob": (1, lambda top: top[:, 0]),
    "margin": (2, lambda top: top[:, 0] - top[:, 1]),
}


def top_value_form(name_or_fn) -> tuple[int, Callable[[np.ndarray], np.ndarray]] | None:
    """``(r, f)`` when the confidence of (N, C) probabilities is ``f`` of their ``r`` largest values
    per sample; None when it needs more (a callable, neg_entropy, per-position families)."""
    return _TOP_VALUE_FORMS.get(name_or_fn) if isinstance(name_or_fn, str) else None


# The values each built-in confidence takes, so a threshold outside them (which would let every
# sample exit, or none) is refused where the user gives it; a registered one need only be finite.
_RANGES = {"max_prob": (0.0, 1.0), "margin": (0.0, 1.0), "neg_entropy": (-np.inf, 0.0)}


def confidence_range(name: str) -> tuple[float, float]:
    """(lowest, highest) value of confidence ``name``; (-inf, inf) when unknown (a registered one)."""
    if isinstance(name, str) and FRAC_ABOVE.match(name):
        return 0.0, 1.0
    return _RANGES.get(name, (-np.inf, np.inf)) if isinstance(name, str) else (-np.inf, np.inf)


def check_thresholds(thresholds, confidence, where: str = "--thresholds", infinite: bool = False) -> list[float]:
    """``thresholds`` as floats when each is a finite number in the confidence's range, else a
    `CommitteeError` naming ``where`` they came from and the range. ``infinite``: +inf and -inf
    are taken too (a stage no sample exits at, as the search may find; one every sample exits at)."""
    low, high = confidence_range(confidence)
    shown = "any finite number" if np.isinf(low) and np.isinf(high) else \
        f"in [{low:g}, {high:g}]" if np.isfinite(low) else f"<= {high:g}"
    values = []
    for t in thresholds if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds]:
        if infinite and isinstance(t, numbers.Real) and not isinstance(t, bool) and np.isinf(t):
            values.append(float(t))
            continue
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not np.isfinite(t) or not low <= t <= high:
            name = confidence if isinstance(confidence, str) else "a custom confidence"
            raise CommitteeError(f"{where}: threshold {t!r} is refused: thresholds of {name} must be {shown} (a "
                                 "sample exits when its confidence reaches the threshold)")
        values.append(float(t))
    return values


def confidence_names() -> str:
    """Every registered name, and the frac_above_<level> family, for help texts and errors."""
    return ", ".join([*_REGISTRY, "frac_above_<level> (e.g. frac_above_0.9)"])


def _lookup(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name in _REGISTRY:
        return _REGISTRY[name][1]
    match = FRAC_ABOVE.match(name) if isinstance(name, str) else None
    if match:
        return frac_above_t(float(match[1]))
    raise unknown_name("confidence", str(name), [*_REGISTRY, "frac_above_0.9"],
                       fix="frac_above_<level> takes a level in [0, 1], e.g. frac_above_0.9; "
                           "add your own with committee_tasks.committees.register_confidence.")


class _OnNumpy:
    """A torch confidence on numpy arrays; a class, not a closure, so that committees holding one
    pickle (``torch.save`` of a loaded committee, spawned worker processes)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "confidence").removesuffix("_t")
        self.__doc__ = fn.__doc__

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        return self.fn(torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))).numpy()

    def __repr__(self) -> str:
        return f"<confidence {self.__name__}>"


max_prob, margin, neg_entropy = (_OnNumpy(f) for f in (max_prob_t, margin_t, neg_entropy_t))


def get_confidence(name_or_fn: str | Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """A confidence on numpy arrays: a registered name, or a callable used as it is."""
    if callable(name_or_fn):
        return name_or_fn
    return _OnNumpy(_lookup(name_or_fn))


def get_torch_confidence(name_or_fn) -> Callable[[torch.Tensor], torch.Tensor]:
    """The same on tensors; a custom numpy callable runs through numpy."""
    if callable(name_or_fn):
        return lambda p: torch.from_numpy(np.asarray(name_or_fn(p.numpy()), dtype=np.float32))
    return _lookup(name_or_fn)
