"""Image classification: torchvision ImageNet models, CIFAR-10 ResNets, the embedded digits zoo."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from committee_tasks.core.errors import CommitteeError, unknown_name
from committee_tasks.core.metrics import Top1Statistics
from committee_tasks.core.task import SampleDataset, Task
from committee_tasks.core.zoo import ZooEntry

from .datasets import DigitsDataset, load_cifar10, load_imagenet
from .zoo import classification_zoo


class ClassificationTask(Top1Statistics, Task):
    """Probabilities are the softmax of the logits; a committee averages them; the per-sample
    statistic is correctness, so top-1 = 100 * sum(correct) / sum(count)."""

    name = "classification"
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
