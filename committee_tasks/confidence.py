"""Confidence of a (combined) prediction, one float per sample; higher is more confident.

Functions take probabilities of shape (N, C, ...) and reduce over the class axis 1; for outputs
with extra axes (per-pixel maps) the per-position confidence is averaged, so the same functions
serve every task.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .errors import unknown_name


def _reduce(per_position: np.ndarray) -> np.ndarray:
    return per_position.reshape(len(per_position), -1).mean(axis=1) if per_position.ndim > 1 else per_position


def max_prob(probs: np.ndarray) -> np.ndarray:
    """Largest class probability (the paper's default)."""
    return _reduce(probs.max(axis=1))


def margin(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability."""
    top2 = np.partition(probs, probs.shape[1] - 2, axis=1)[:, -2:]
    return _reduce(top2[:, 1] - top2[:, 0])


def neg_entropy(probs: np.ndarray) -> np.ndarray:
    """Negative Shannon entropy in nats (0 for a one-hot prediction)."""
    p = np.clip(probs, 1e-12, 1.0)
    return _reduce((p * np.log(p)).sum(axis=1))


CONFIDENCES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "max_prob": max_prob,
    "margin": margin,
    "neg_entropy": neg_entropy,
}


def get_confidence(name_or_fn: str | Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    if callable(name_or_fn):
        return name_or_fn
    if name_or_fn not in CONFIDENCES:
        raise unknown_name("confidence", name_or_fn, CONFIDENCES)
    return CONFIDENCES[name_or_fn]
