"""The classification zoo: every torchvision classification model (read from torchvision's own
weights API), the four pretrained CIFAR-10 ResNets, and the embedded default digits CNNs."""
from __future__ import annotations

import functools

import torch
import torchvision
from torchvision.transforms import v2

from committee_tasks.core.zoo import WeightsSource, ZooEntry

from .cifar_resnet import CifarResNet, load_akamaster_checkpoint
from .digits import DIGITS_MODELS, WEIGHTS_DIR, DigitsCNN, DigitsTransform, load_record

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


def cifar_transform():
    """The trainer's test transform: ToTensor then Normalize, no resize or crop."""
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(CIFAR_MEAN, CIFAR_STD)])


def _cifar_entries() -> dict[str, ZooEntry]:
    entries = {}
    for name, (file_name, sha256, top1, params) in CIFAR_RESNETS.items():
        depth = int(name.removeprefix("resnet"))
        entries[name] = ZooEntry(
            name=name, task=TASK, builder=functools.partial(CifarResNet, depth),
            weights=WeightsSource(file_name, CIFAR_URL.format(file_name), sha256),
            num_classes=10, dataset="cifar10", input_size=(3, 32, 32), preprocessing=cifar_transform,
            params=int(params), metrics={"top-1": top1}, state_dict_loader=load_akamaster_checkpoint,
            source="akamaster/pytorch_resnet_cifar10 (He et al. 2016, CIFAR variant)",
        )
    return entries


def _torchvision_entry(name: str, weights) -> ZooEntry:
    meta = weights.meta
    transform = weights.transforms()
    crop = transform.crop_size[0]
    metrics = meta["_metrics"].get("ImageNet-1K", {})
    file_name = weights.url.rsplit("/", 1)[-1]
    # torch.hub file names end in the first 8+ hex digits of the file's sha256
    stem = file_name.rsplit(".", 1)[0]
    prefix = stem.rsplit("-", 1)[-1] if "-" in stem else None
    # The architecture the weights need (torchvision sets these itself when it loads weights).
    arch = {"num_classes": len(meta["categories"])}
    if name.startswith("vit_"):
        arch["image_size"] = meta["min_size"][0]
    elif name.startswith("maxvit_"):
        arch["input_size"] = meta["min_size"]
    elif name.split(".")[0] in ("googlenet", "inception_v3"):
        # ported from TF: the weights expect the model to re-normalise its input (transform_input)
        arch.update(transform_input=True, aux_logits=True, init_weights=False)
    return ZooEntry(
        name=name, task=TASK,
        builder=functools.partial(torchvision.models.get_model, name.split(".")[0], weights=None, **arch),
        weights=WeightsSource(file_name, weights.url, prefix),
        num_classes=len(meta["categories"]), dataset="imagenet", input_size=(3, crop, crop),
        preprocessing=weights.transforms, macs=round(meta["_ops"] * 1e9), params=meta["num_params"],
        metrics={"top-1": metrics.get("acc@1"), "top-5": metrics.get("acc@5")},
        source=f"torchvision {weights}",
    )


def _torchvision_entries() -> dict[str, ZooEntry]:
    """``<model>`` uses torchvision's DEFAULT weights; ``<model>.<weights tag>`` any other."""
    entries = {}
    for model in torchvision.models.list_models(module=torchvision.models):
        enum = torchvision.models.get_model_weights(model)
        default = enum.DEFAULT
        entries[model] = _torchvision_entry(model, default)
        for weights in enum:
            if weights.meta.get("categories") is None:  # vgg16 IMAGENET1K_FEATURES: no classifier
                continue
            entries[f"{model}.{weights.name.lower()}"] = _torchvision_entry(f"{model}.{weights.name.lower()}", weights)
    return entries


def _digits_entries() -> dict[str, ZooEntry]:
    """The embedded default: checkpoints shipped in tasks/classification/weights (see digits.py)."""
    record = load_record()
    entries = {}
    for name, (widths, _) in DIGITS_MODELS.items():
        shipped = record.get(name, {})
        file_name = shipped.get("file", f"{name}.pt")
        entries[name] = ZooEntry(
            name=name, task=TASK, builder=functools.partial(DigitsCNN, widths),
            weights=WeightsSource(file_name, sha256=shipped.get("sha256"), path=WEIGHTS_DIR / file_name),
            num_classes=10, dataset="digits", input_size=(1, 8, 8), preprocessing=DigitsTransform,
            params=shipped.get("params"), metrics={"top-1": shipped["top-1"]} if "top-1" in shipped else {},
            source="committee-tasks embedded default (trained by tools/train_digits.py on sklearn digits)",
        )
    return entries


@functools.cache
def classification_zoo() -> dict[str, ZooEntry]:
    return {**_torchvision_entries(), **_cifar_entries(), **_digits_entries()}
