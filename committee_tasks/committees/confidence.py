"""Confidence of a (combined) prediction, one float per sample; higher is more confident.

Functions take probabilities of shape (N, C, ...) and reduce over the class axis 1; for outputs
with extra axes (per-pixel maps) the per-position confidence is averaged, so the same functions
serve every task. There is one implementation, on tensors: the cache-based committees, the live
executor and the search all call it, so they agree to the last bit at a threshold.
"""
from __future__ import annotations

import re
from typing import Callable

import numpy as np
import torch

from committee_tasks.core.errors import unknown_name


def _reduce(per_position: torch.Tensor) -> torch.Tensor:
    return per_position.flatten(1).mean(1) if per_position.dim() > 1 else per_position


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


def frac_above_t(level: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Share of positions (pixels) whose largest class probability is at least ``level``."""
    def frac_above(probs: torch.Tensor) -> torch.Tensor:
        return _reduce((probs.amax(dim=1) >= level).float())
    frac_above.__name__ = f"frac_above_{level:g}_t"
    return frac_above


TORCH_CONFIDENCES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "max_prob": max_prob_t,
    "margin": margin_t,
    "neg_entropy": neg_entropy_t,
}
CONFIDENCES = TORCH_CONFIDENCES  # the fixed names; "frac_above_<level>" (e.g. frac_above_0.9) as well
FRAC_ABOVE = re.compile(r"^frac_above_(0(?:\.\d+)?|1(?:\.0+)?)$")


def confidence_names() -> str:
    return ", ".join([*TORCH_CONFIDENCES, "frac_above_<level> (e.g. frac_above_0.9)"])


def _lookup(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if name in TORCH_CONFIDENCES:
        return TORCH_CONFIDENCES[name]
    match = FRAC_ABOVE.match(name)
    if match:
        return frac_above_t(float(match[1]))
    raise unknown_name("confidence", name, [*TORCH_CONFIDENCES, "frac_above_0.9"],
                       fix="frac_above_<level> takes a level in [0, 1], e.g. frac_above_0.9.")


def _on_numpy(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[np.ndarray], np.ndarray]:
    def confidence(probs: np.ndarray) -> np.ndarray:
        return fn(torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))).numpy()

    confidence.__name__ = fn.__name__.removesuffix("_t")
    confidence.__doc__ = fn.__doc__
    return confidence


max_prob, margin, neg_entropy = (_on_numpy(f) for f in (max_prob_t, margin_t, neg_entropy_t))


def get_confidence(name_or_fn: str | Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """A confidence on numpy arrays: a registered name, or a callable used as it is."""
    if callable(name_or_fn):
        return name_or_fn
    return _on_numpy(_lookup(name_or_fn))


def get_torch_confidence(name_or_fn) -> Callable[[torch.Tensor], torch.Tensor]:
    """The same on tensors; a custom numpy callable runs through numpy."""
    if callable(name_or_fn):
        return lambda p: torch.from_numpy(np.asarray(name_or_fn(p.numpy()), dtype=np.float32))
    return _lookup(name_or_fn)
