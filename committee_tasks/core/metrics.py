"""Metrics shared by several tasks, as additive per-sample statistics."""
from __future__ import annotations

import numpy as np


class Top1Statistics:
    """Top-1 accuracy in % from summed per-sample statistics (correct, count).

    A mixin for `Task` subclasses whose combined output is (N, classes) probabilities and whose
    targets are class indices: image and video classification, and plugins like them.
    """

    metric_name = "top-1"
    score_range = 100.0

    def sample_statistics(self, combined: np.ndarray, targets: np.ndarray) -> np.ndarray:
        correct = (combined.argmax(axis=1) == targets).astype(np.float64)
        return np.stack([correct, np.ones_like(correct)], axis=1)

    def sample_scores(self, statistics: np.ndarray) -> np.ndarray:
        return 100.0 * statistics[:, 0] / statistics[:, 1]  # top-1 is their mean

    def metric(self, summed_statistics: np.ndarray) -> float | np.ndarray:
        summed = np.asarray(summed_statistics, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            top1 = 100.0 * summed[..., 0] / summed[..., 1]
        return float(top1) if top1.ndim == 0 else top1
