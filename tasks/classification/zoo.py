"""The classification zoo: every torchvision classification model (read from torchvision's own
weights API: see torchvision_index.py), every pretrained timm classifier as ``timm/<arch>.<tag>``
(read from timm's pretrained configs: see timm_index.py), the four pretrained CIFAR-10 ResNets,
and the embedded default digits CNNs. Listing it imports no torch: builders, preprocessing and
checkpoint loaders are `LazyCall`s that import the model code when called."""
from __future__ import annotations

import functools

from committee_tasks.core.lazy_call import lazy_call
from committee_tasks.core.zoo import WeightsSource, ZooEntry

from .digits_record import DIGITS_MODELS, WEIGHTS_DIR, load_record
from .timm_index import timm_entries
from .torchvision_index import torchvision_entries

TASK = "classification"

# akamaster/pytorch_resnet_cifar10 (BSD-2): published test top-1 (README), params, full sha256.
CIFAR_RESNETS = {
    "resnet20": ("resnet20-12fca82f.th", "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8", 91.73, 0.27e6),
    "resnet32": ("resnet32-d509ac18.th", "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850", 92.63, 0.46e6),
    "resnet44": ("resnet44-014dd654.th", "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4", 93.10, 0.66e6),
    "resnet56": ("resnet56-4bfd9763.th", "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", 93.39, 0.85e6),
}
CIFAR_URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/{}"
CIFAR_MEAN, CIFAR_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # what its trainer.py uses
CIFAR_MODULE, DIGITS_MODULE = f"{__package__}.cifar_resnet", f"{__package__}.digits"  # imported when built


def cifar_transform():
    """The trainer's test transform: ToTensor then Normalize, no resize or crop."""
    import torch
    from torchvision.transforms import v2

    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(CIFAR_MEAN, CIFAR_STD)])


def _cifar_entries() -> dict[str, ZooEntry]:
    entries = {}
    for name, (file_name, sha256, top1, params) in CIFAR_RESNETS.items():
        depth = int(name.removeprefix("resnet"))
        entries[name] = ZooEntry(
            name=name, task=TASK, builder=lazy_call(f"{CIFAR_MODULE}:CifarResNet", depth),
            weights=WeightsSource(file_name, CIFAR_URL.format(file_name), sha256),
            num_classes=10, dataset="cifar10", input_size=(3, 32, 32), preprocessing=cifar_transform,
            params=int(params), metrics={"top-1": top1},
            state_dict_loader=lazy_call(f"{CIFAR_MODULE}:load_akamaster_checkpoint"),
            source="akamaster/pytorch_resnet_cifar10 (He et al. 2016, CIFAR variant)",
        )
    return entries


def _digits_entries() -> dict[str, ZooEntry]:
    """The embedded default: checkpoints shipped in tasks/classification/weights (see digits.py)."""
    record = load_record()
    entries = {}
    for name, (widths, _) in DIGITS_MODELS.items():
        shipped = record.get(name, {})
        file_name = shipped.get("file", f"{name}.pt")
        entries[name] = ZooEntry(
            name=name, task=TASK, builder=lazy_call(f"{DIGITS_MODULE}:DigitsCNN", widths),
            weights=WeightsSource(file_name, sha256=shipped.get("sha256"), path=WEIGHTS_DIR / file_name,
                                  shipped=True),
            num_classes=10, dataset="digits", input_size=(1, 8, 8),
            preprocessing=lazy_call(f"{DIGITS_MODULE}:DigitsTransform"),
            params=shipped.get("params"), metrics={"top-1": shipped["top-1"]} if "top-1" in shipped else {},
            source="committee-tasks embedded default (trained by tools/train_digits.py on sklearn digits)",
        )
    return entries


@functools.cache
def classification_zoo() -> dict[str, ZooEntry]:
    return {**torchvision_entries(), **timm_entries(), **_cifar_entries(), **_digits_entries()}
