"""Image classification: torchvision ImageNet models, CIFAR-10 ResNets, the embedded digits zoo."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.metrics import Top1Statistics
from committee_tasks.core.task import Task
from committee_tasks.core.zoo import ZooEntry

from . import layouts
from .zoo import classification_zoo

if TYPE_CHECKING:  # torch and the datasets are imported when used: listing needs neither
    import torch

    from committee_tasks.core.samples import SampleDataset
    from committee_tasks.core.zoo_files import ZooFileModel


class ClassificationTask(Top1Statistics, Task):
    """Probabilities are the softmax of the logits; a committee averages them; the per-sample
    statistic is correctness, so top-1 = 100 * sum(correct) / sum(count)."""

    name = "classification"
    DATASETS = tuple(layouts.DATASETS)
    DATASET_DESCRIPTIONS = layouts.DESCRIPTIONS
    DATASET_OPTIONS = layouts.OPTIONS

    zoo_file_fields = {
        "preprocessing": "{resize, crop, interpolation, mean, std, scale, channels} (default: the base model's)",
        "input_size": "[channels, height, width] the model takes (default: from the crop)",
    }

    def zoo(self) -> Mapping[str, ZooEntry]:
        return classification_zoo()

    def entry_from_zoo_file(self, model: ZooFileModel) -> ZooEntry:
        """A zoo file's image classifier: its builder or base, weights, outputs and preprocessing."""
        from committee_tasks.core.image_preprocessing import ImagePreprocessing
        from committee_tasks.core.lazy_call import lazy_call

        base = self.base_entry(model)
        given = model.get("preprocessing")
        if given is None and base is None:
            raise model.error("preprocessing", "missing: give {resize, crop, mean, std, ...} (or a 'base' model)")
        spec = ImagePreprocessing.from_dict(given, model.where) if given is not None else None
        preprocessing = (lazy_call(f"{ImagePreprocessing.__module__}:ImagePreprocessing", **spec.to_dict())
                         if spec is not None else base.preprocessing)
        input_size = model.get("input_size") or (spec and spec.input_size) or (base.input_size if base else (3,))
        return model.entry(self.name, base, preprocessing, tuple(input_size))

    def decode(self, data: Any) -> Any:
        """A PIL image, or an image file's path, as the image-file datasets decode theirs
        (`to_rgb`): 8-bit RGB, a palette image through its palette, alpha dropped, 16-bit grey
        scaled; a float image is refused."""
        import os

        from PIL import Image

        from .datasets import read_rgb, to_rgb

        if isinstance(data, (str, os.PathLike)):
            try:
                return read_rgb(data)
            except (OSError, Image.DecompressionBombError) as err:  # missing, unreadable, not an image
                raise ValueError(f"cannot read the image {os.fspath(data)!r}: {err}") from err
        if isinstance(data, Image.Image):
            return to_rgb(data)
        return data

    def to_probs(self, outputs: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.softmax(outputs.float(), dim=1)

    def build_dataset(self, name: str, root: str | Path | None, **options: Any) -> SampleDataset:
        if name == "digits":  # shipped with scikit-learn: no --data-root
            from .datasets import DigitsDataset

            split = options.get("split") or "test"
            if split not in ("test", "train"):
                raise CommitteeError(f"digits has the splits test (the held-out 599 digits, the default) and train "
                                     f"(the 1,198 its CNNs were trained on), not {split!r}")
            return DigitsDataset(split)
        root = self.dataset_root(name, root)
        from .datasets import load_cifar10, load_imagenet
        from .generic_datasets import load_image_csv, load_image_folder

        if name == "folder":
            return load_image_folder(root, options.get("split"), options.get("classes"))
        if name == "csv":
            if options.get("split"):
                raise CommitteeError("dataset 'csv' takes no --split: its file option lists the images")
            return load_image_csv(root, options.get("file"), options.get("classes"))
        if name == "cifar10":
            return load_cifar10(root)
        return load_imagenet(root, **{k: v for k, v in options.items() if v is not None})
