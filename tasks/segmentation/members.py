"""An mmseg segmentor as a committee member: per-pixel class probabilities at the label resolution.

`Segmentor` takes the original image (uint8, BGR as mmseg loads it) and does on the device what
the member's own config does at test time: its test pipeline's ``Resize`` (keep-ratio rule of
``mmcv.rescale_size``), its data preprocessor (BGR->RGB, mean/std, test-time padding), its
``test_cfg`` inference (whole image or sliding window), then mmseg's post-processing (crop the
padding, resize the logits to the original size with the head's ``align_corners``). The softmax
of those logits is what committees average, per pixel, at the label resolution.

Members share one decoded image (the transform is the identity), so an image is read once for
the whole pool. Resizing runs in torch (bilinear, as cv2's INTER_LINEAR for the usual upscales).
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.image_preprocessing import ImagePreprocessing
from committee_tasks.core.macs import mac_counter
from committee_tasks.core.members import Member
from committee_tasks.core.outputs import OutputSpec


class OriginalImage:
    """The shared preprocessing: the decoded image as it is (each member resizes on the device)."""

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return image

    def __repr__(self) -> str:
        return "OriginalImage()"


class DeviceInput(OriginalImage):
    """A plain module's preprocessing: the decoded image as it is on the host (resized, normalised
    and padded to a multiple of ``size_divisor`` on the device by `PlainSegmentor`); its repr,
    part of the cache key, lists how."""

    def __init__(self, size_divisor: int | None = None, **spec):
        self.spec = ImagePreprocessing(**spec)
        self.size_divisor = size_divisor

    def __repr__(self) -> str:  # without a divisor, as before it existed: cache keys stay
        divisor = f", size_divisor={self.size_divisor}" if self.size_divisor else ""
        return f"DeviceInput({self.spec!r}{divisor})"


def pipeline_resize(cfg) -> tuple[tuple[int, int] | None, bool]:
    """(scale, keep_ratio) of the Resize step of the config's test pipeline (None: no resize)."""
    pipeline = cfg.get("test_pipeline") or cfg.get("test_dataloader", {}).get("dataset", {}).get("pipeline", [])
    for step in pipeline:
        if step.get("type") == "Resize":
            return tuple(step["scale"]), bool(step.get("keep_ratio", False))
    return None, False


class Segmentor(nn.Module):
    """uint8 BGR images (N, 3, H, W) -> class probabilities (N, C, H, W) at the same H, W."""

    def __init__(self, model: nn.Module, cfg):
        super().__init__()
        self.model = model.eval()
        self.scale, self.keep_ratio = pipeline_resize(cfg)
        pre = model.data_preprocessor
        self.bgr_to_rgb = bool(getattr(pre, "channel_conversion", False))
        self.register_buffer("mean", pre.mean.detach().clone().view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", pre.std.detach().clone().view(1, -1, 1, 1), persistent=False)
        test_cfg = getattr(pre, "test_cfg", None) or {}
        self.size_divisor = test_cfg.get("size_divisor")
        self.pad_size = test_cfg.get("size")
        self.pad_val = float(getattr(pre, "pad_val", 0))
        self.mode = model.test_cfg.get("mode", "whole")
        heads = model.decode_head if not isinstance(model.decode_head, nn.ModuleList) else model.decode_head[-1]
        self.align_corners = bool(heads.align_corners)
        self.num_classes = int(model.out_channels if hasattr(model, "out_channels") else heads.num_classes)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) after the test pipeline's Resize: ``mmcv.rescale_size`` for keep_ratio."""
        if self.scale is None:
            return height, width
        if not self.keep_ratio:
            return self.scale[1], self.scale[0]  # mmcv scales are (w, h)
        from mmcv.image import rescale_size

        new_w, new_h = rescale_size((width, height), self.scale)
        return new_h, new_w

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        x = images.float()
        size = self.input_size(height, width)
        if size != (height, width):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        if self.bgr_to_rgb:
            x = x.flip(1)
        x = (x - self.mean) / self.std
        x, padding = self._pad(x)
        meta = {"ori_shape": (height, width), "img_shape": size, "pad_shape": tuple(x.shape[-2:])}
        logits = self.model.inference(x, [dict(meta) for _ in range(len(x))])
        if any(padding):
            logits = logits[..., : logits.shape[-2] - padding[1], : logits.shape[-1] - padding[0]]
        logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=self.align_corners)
        return torch.softmax(logits.float(), dim=1)

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Test-time padding of the data preprocessor (right and bottom, as mmseg's stack_batch)."""
        h, w = x.shape[-2:]
        if self.pad_size is not None:
            target_h, target_w = self.pad_size[0], self.pad_size[1]
        elif self.size_divisor:
            d = self.size_divisor
            target_h, target_w = -(-h // d) * d, -(-w // d) * d
        else:
            return x, (0, 0)
        pad_w, pad_h = max(target_w - w, 0), max(target_h - h, 0)
        return F.pad(x, (0, pad_w, 0, pad_h), value=self.pad_val), (pad_w, pad_h)


class PlainSegmentor(nn.Module):
    """uint8 BGR images (N, 3, H, W) -> a plain module's class scores resized to H, W.

    The module sees the image resized and normalised as its zoo entry says; its outputs, at
    ``1/stride`` of its input, are resized to the label resolution before the class map."""

    def __init__(self, model: nn.Module, spec: ImagePreprocessing, outputs: OutputSpec,
                 size_divisor: int | None = None):
        super().__init__()
        self.model = model.eval()
        self.spec = spec
        self.outputs = outputs
        self.size_divisor = size_divisor

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        size = self.spec.resize
        if size is None:
            return height, width
        if len(size) == 2:
            return size[0], size[1]
        short = min(height, width)  # the shorter side to size[0], the ratio kept (torchvision's rule)
        return (size[0], int(size[0] * width / height)) if height == short else (int(size[0] * height / width), size[0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms.v2.functional import InterpolationMode, resize

        height, width = images.shape[-2:]
        x = images.float().flip(1)  # decoded as BGR (mmseg's loader): RGB, as the spec expects
        size = self.input_size(height, width)
        if size != (height, width):
            x = resize(x, list(size), interpolation=InterpolationMode(self.spec.interpolation), antialias=True)
        x = self.spec.normalise(x)
        padded = self._padded_size(size)
        if padded != size:  # right and bottom, with 0 after normalising (mmseg's SegDataPreProcessor)
            x = F.pad(x, (0, padded[1] - size[1], 0, padded[0] - size[0]))
        scores = self.model(x)
        self._check_stride(scores.shape[-2:], padded)
        corners = self.outputs.align_corners if self.outputs.upsample != "nearest" else None
        if padded != size:  # to the padded input's size, the padding cropped off (mmseg's post-processing)
            scores = F.interpolate(scores.float(), size=padded, mode=self.outputs.upsample, align_corners=corners)
            scores = scores[..., : size[0], : size[1]]
        return F.interpolate(scores.float(), size=(height, width), mode=self.outputs.upsample, align_corners=corners)

    def _padded_size(self, size: tuple[int, int]) -> tuple[int, int]:
        d = self.size_divisor
        return size if not d else (-(-size[0] // d) * d, -(-size[1] // d) * d)

    def _check_stride(self, got: tuple[int, int], size: tuple[int, int]) -> None:
        stride = self.outputs.stride or 1
        expected = [s / stride for s in size]
        if any(abs(g - e) >= 1 for g, e in zip(got, expected)):
            raise CommitteeError(f"{self.outputs.where}the model outputs {tuple(got)} for an input of {size}: not "
                                 f"1/{stride} of it; set outputs.stride to the model's output stride")

    def describe(self) -> str:
        resize = f"resized to {self.spec.resize}" if self.spec.resize else "at its size"
        resize += f", padded to a multiple of {self.size_divisor}" if self.size_divisor else ""
        return (f"whole image, {resize}; outputs at 1/{self.outputs.stride or 1} resized to the labels "
                f"({self.outputs.upsample}); MACs per image at the input actually run")


class SegmentationMember(Member):
    """MACs are counted during the real forward pass, once per input size: images differ in size
    (ADE20K) and a second pass per size would double the work."""

    def predict_with_cost(self, inputs: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        shape = tuple(inputs.shape[1:])
        known = shape in self._macs_by_shape
        counter = contextlib.nullcontext() if known else mac_counter()
        with torch.no_grad(), counter as counted:
            probs = self.to_probs(self.module(inputs)).float()
        if not known:
            self._macs_by_shape[shape] = counted.macs // len(inputs)
        return probs, np.full(len(inputs), self._macs_by_shape[shape], dtype=np.int64)

    def cost_note(self) -> str | None:
        s = self.module
        if isinstance(s, PlainSegmentor):
            return s.describe()
        how = f"sliding window {tuple(s.model.test_cfg.crop_size)} stride {tuple(s.model.test_cfg.stride)}" \
            if s.mode == "slide" else "whole image"
        resize = f"resized to scale {s.scale} (keep ratio: {s.keep_ratio})" if s.scale else "at its size"
        return f"{how}, {resize}; MACs per image count every window at the input actually run"
