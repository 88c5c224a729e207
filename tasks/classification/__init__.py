"""Image classification: torchvision ImageNet models, CIFAR-10 ResNets, the embedded digits zoo."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from committee_tasks.errors import CommitteeError, unknown_name
from committee_tasks.task import SampleDataset, Task
from committee_tasks.zoo import ZooEntry

from .datasets import DigitsDataset, load_cifar10, load_imagenet
from .zoo import classification_zoo


class ClassificationTask(Task):
    """Probabilities are the softmax of the logits; a committee averages them; the per-sample
    statistic is correctness, so top-1 = 100 * sum(correct) / sum(count)."""

    name = "classification"
    metric_name = "top-1"
    DATASETS = ("cifar10", "imagenet", "digits")

    def zoo(self) -> Mapping[str, ZooEntry]:
        return classification_zoo()

    def to_probs(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(outputs.float(), dim=1)

    def list_datasets(self) -> list[str]:
        return list(self.DATASETS)

    def build_dataset(self, name: str, root: str | Path | None, **options: Any) -> SampleDataset:
        if name not in self.DATASETS:
            raise unknown_name("dataset", name, self.DATASETS)
        if name == "digits":
            return DigitsDataset("test")
        if root is None:
            raise CommitteeError(f"dataset {name!r} needs --data-root DIR")
        if name == "cifar10":
            return load_cifar10(root)
        return load_imagenet(root, **{k: v for k, v in options.items() if v is not None})

    def sample_statistics(self, combined: np.ndarray, targets: np.ndarray) -> np.ndarray:
        correct = (combined.argmax(axis=1) == targets).astype(np.float64)
        return np.stack([correct, np.ones_like(correct)], axis=1)

    score_range = 100.0

    def sample_scores(self, statistics: np.ndarray) -> np.ndarray:
        return 100.0 * statistics[:, 0] / statistics[:, 1]  # top-1 is their mean

    def metric(self, summed_statistics: np.ndarray) -> float | np.ndarray:
        summed = np.asarray(summed_statistics, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            top1 = 100.0 * summed[..., 0] / summed[..., 1]
        return float(top1) if top1.ndim == 0 else top1
