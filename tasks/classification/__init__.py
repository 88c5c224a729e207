"""Image classification: torchvision ImageNet models, CIFAR-10 ResNets, the embedded digits zoo."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from committee_tasks.core.metrics import Top1Statistics
from committee_tasks.core.task import Task
from committee_tasks.core.zoo import ZooEntry

from .zoo import classification_zoo

if TYPE_CHECKING:  # torch and the datasets are imported when used: listing needs neither
    import torch

    from committee_tasks.core.samples import SampleDataset


class ClassificationTask(Top1Statistics, Task):
    """Probabilities are the softmax of the logits; a committee averages them; the per-sample
    statistic is correctness, so top-1 = 100 * sum(correct) / sum(count)."""

    name = "classification"
    DATASETS = ("cifar10", "imagenet", "digits")

    def zoo(self) -> Mapping[str, ZooEntry]:
        return classification_zoo()

    def to_probs(self, outputs: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.softmax(outputs.float(), dim=1)

    def build_dataset(self, name: str, root: str | Path | None, **options: Any) -> SampleDataset:
        if name == "digits":  # shipped with scikit-learn: no --data-root
            from .datasets import DigitsDataset

            return DigitsDataset("test")
        root = self.dataset_root(name, root)
        from .datasets import load_cifar10, load_imagenet

        if name == "cifar10":
            return load_cifar10(root)
        return load_imagenet(root, **{k: v for k, v in options.items() if v is not None})
