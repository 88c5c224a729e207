"""An image member's preprocessing split in two: the host part, run on each sample where it is
decoded (resize, crop: uint8 pixels), and the device part, run on the whole batch after it is
copied to the device (to float, normalise).

Why: the host stacks every batch and the device copy reads it, so their cost is in bytes. A batch
of 256 ImageNet-sized inputs is 154 MB as float32 and 38 MB as uint8 pixels; on an H200 machine
the loop's data loading of float32 inputs, not the members, set its pace (README, "The GPU
check"). timm's ``PrefetchLoader`` and NVIDIA DALI normalise on the device for the same reason.

The device part runs the same torch functions on the batch that the whole transform runs on each
sample (elementwise, so a batch changes nothing), and the host part the same steps before them:
on the CPU the members see the same float32 inputs bit for bit (tested against the whole
transforms); on CUDA within 1 ulp (7e-7: CUDA divides by a scalar through its reciprocal), and
the cached float16 outputs of 2,048 images through two ResNets were identical either way on an
H200. Transforms split: `ImagePreprocessing` (zoo files, timm), torchvision's weights
presets (``weights.transforms()``) and a ``Compose`` (v1 or v2) whose steps after its conversion
to float are only a conversion and ``Normalize``. Any other transform is not split (None): it
runs whole on the host, as before. The cache key is the whole transform's, which this leaves
unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.image_preprocessing import ImagePreprocessing

Host = Callable[[Any], torch.Tensor]  # one decoded sample -> its pixels, (C, H, W), uint8 as decoded
Device = Callable[[torch.Tensor], torch.Tensor]  # a batch of pixels on the device -> the member's inputs


@dataclass(frozen=True)
class SplitPreprocessing:
    host: Host
    device: Device


DEVICE_PREPROCESSING = ("auto", "on", "off")


def device_splits(members: Sequence[Any], device: torch.device, setting: str) -> dict[str, SplitPreprocessing]:
    """The members' preprocessings that run in part on the device, by transform key: on CUDA
    ("auto"), where bytes copied cost the most; "on" everywhere (the CPU: what the tests compare)."""
    if setting not in DEVICE_PREPROCESSING:
        raise CommitteeError(f"device_preprocessing {setting!r}: choose one of {', '.join(DEVICE_PREPROCESSING)}")
    if setting == "off" or (setting == "auto" and device.type != "cuda"):
        return {}
    splits = {m.transform_key: split_for_device(m.transform) for m in members}
    return {key: split for key, split in splits.items() if split is not None}


def split_for_device(transform: Any) -> SplitPreprocessing | None:
    """``transform`` as a host part and a device part, or None where it cannot be split."""
    if isinstance(transform, ImagePreprocessing):
        return SplitPreprocessing(transform.pixels, transform.normalise)
    from torchvision.transforms import _presets

    if type(transform) is _presets.ImageClassification:  # a subclass may do more: not split
        return SplitPreprocessing(_PresetPixels(transform), _PresetNormalise(transform))
    steps = _compose_steps(transform)
    if steps is None:
        return None
    first = next((i for i, step in enumerate(steps) if _to_float(step)), None)
    if first is None or not all(_to_float(step) or _normalise(step) for step in steps[first:]):
        return None
    return SplitPreprocessing(_Steps(steps[:first]), _Steps(steps[first:]))


def _compose_steps(transform: Any) -> list | None:
    from torchvision.transforms import Compose as ComposeV1
    from torchvision.transforms.v2 import Compose as ComposeV2

    if type(transform) in (ComposeV1, ComposeV2):
        return list(transform.transforms)
    return None


def _to_float(step: Any) -> bool:
    """A conversion of integer pixels to float32 (scaled to 0..1), which works on a batch."""
    from torchvision.transforms import ConvertImageDtype
    from torchvision.transforms.v2 import ToDtype

    if type(step) is ConvertImageDtype:
        return step.dtype == torch.float32
    if type(step) is ToDtype:
        return step.dtype == torch.float32 and bool(step.scale)  # one dtype for every input
    return False


def _normalise(step: Any) -> bool:
    """Per-channel ``(x - mean) / std``, which works on a batch (channels on dimension -3)."""
    from torchvision.transforms import Normalize as NormalizeV1
    from torchvision.transforms.v2 import Normalize as NormalizeV2

    return type(step) in (NormalizeV1, NormalizeV2) and not step.inplace


class _Steps:
    """Some of a Compose's steps, in order."""

    def __init__(self, steps: Sequence[Any]):
        self.steps = list(steps)

    def __call__(self, x: Any) -> torch.Tensor:
        for step in self.steps:
            x = step(x)
        return x.as_subclass(torch.Tensor) if isinstance(x, torch.Tensor) else x  # tv_tensors stack as plain ones


class _PresetPixels:
    """The first steps of torchvision's ``ImageClassification.forward``: resize, centre crop, and
    a PIL image as a uint8 tensor."""

    def __init__(self, preset):
        self.preset = preset

    def __call__(self, image: Any) -> torch.Tensor:
        from torchvision.transforms import functional as F

        p = self.preset
        image = F.resize(image, p.resize_size, interpolation=p.interpolation, antialias=p.antialias)
        image = F.center_crop(image, p.crop_size)
        return image if isinstance(image, torch.Tensor) else F.pil_to_tensor(image)


class _PresetNormalise:
    """The last steps of torchvision's ``ImageClassification.forward``: float, then normalise."""

    def __init__(self, preset):
        self.preset = preset

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import functional as F

        return F.normalize(F.convert_image_dtype(batch, torch.float), mean=self.preset.mean, std=self.preset.std)
