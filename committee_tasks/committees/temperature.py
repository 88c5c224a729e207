"""Per-member temperature scaling (Guo et al. 2017), fitted on the calibration split.

softmax(log p / T) with the T that minimises the negative log-likelihood of the calibration
targets; T > 1 softens an over-confident member. Needs class-index targets and (N, C) outputs.
"""
from __future__ import annotations

import numpy as np
import torch

from committee_tasks.core.errors import CommitteeError


def check_temperature(value, where: str) -> float:
    """``value`` as a temperature: a finite number > 0 (0 gave NaN probabilities, a negative one
    inverted them, both without a word)."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    temperature = float(value) if number else float("nan")
    if not (np.isfinite(temperature) and temperature > 0):
        raise CommitteeError(f"{where}: temperature {value!r} is not a finite number > 0 (T > 1 softens a member's "
                             "probabilities, T < 1 sharpens them; 1 leaves them as they are)")
    return temperature


def tempered(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(log p / T) over the class axis 1."""
    if temperature == 1.0:
        return probs
    check_temperature(temperature, "tempered")
    return torch.softmax(probs.clamp_min(1e-12).log() / temperature, dim=1)


def tempered_numpy(probs: np.ndarray, temperature: float) -> np.ndarray:
    return tempered(torch.from_numpy(np.ascontiguousarray(probs)).float(), temperature).numpy()


def fit_temperature(probs: np.ndarray, targets: np.ndarray) -> float:
    targets = np.asarray(targets)
    if (probs.ndim != 2 or targets.ndim != 1 or len(probs) != len(targets)
            or not np.issubdtype(targets.dtype, np.integer)):
        raise CommitteeError("temperature scaling needs (N, C) class probabilities and class-index targets; "
                             f"got outputs {probs.shape} and targets {targets.shape} {targets.dtype}")
    log_p = torch.from_numpy(np.asarray(probs, dtype=np.float32)).clamp_min(1e-12).log()
    t = torch.from_numpy(targets.astype(np.int64))  # cross_entropy takes int64 (not int32) class indices

    def nll(log_temperature: float) -> float:
        return float(torch.nn.functional.cross_entropy(log_p / np.exp(log_temperature), t))

    from scipy.optimize import minimize_scalar  # here: cards check temperatures without loading scipy

    best = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(best.x))
