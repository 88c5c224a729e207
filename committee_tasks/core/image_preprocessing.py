"""An image member's preprocessing written down as data (a zoo file's ``preprocessing`` field).

``(pixels / scale - mean) / std`` on the image resized and centre-cropped, in the channel order
the model was trained with. Pixels are 0..255 as decoded; torchvision's convention is
``scale=255`` with mean/std on a 0..1 scale, OpenCV-trained models often use ``scale=1`` and
0..255 statistics. Its repr lists every parameter: it is part of the cache key.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Mapping

from committee_tasks.core.errors import CommitteeError

if TYPE_CHECKING:
    import torch

INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
CHANNEL_ORDERS = ("RGB", "BGR")


def _size(value: Any, what: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    sizes = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if not 1 <= len(sizes) <= 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise CommitteeError(f"{what} must be a positive integer or [height, width], got {value!r}")
    return sizes


@dataclass(frozen=True)
class ImagePreprocessing:
    """``resize``: the shorter side (one number) or [height, width]; ``crop``: the centre crop
    (one number or [height, width]); both optional. Applied to a PIL image, a (H, W, C) uint8
    array or a (C, H, W) uint8 tensor, all in RGB order as decoded; returns float32 (C, H, W)."""

    resize: tuple[int, ...] | None = None
    crop: tuple[int, ...] | None = None
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    scale: float = 255.0
    channels: str = "RGB"

    def __post_init__(self):
        object.__setattr__(self, "resize", _size(self.resize, "resize"))
        object.__setattr__(self, "crop", _size(self.crop, "crop"))
        if self.interpolation not in INTERPOLATIONS:
            raise CommitteeError(f"interpolation {self.interpolation!r} is not one of {list(INTERPOLATIONS)}")
        if self.channels not in CHANNEL_ORDERS:
            raise CommitteeError(f"channels {self.channels!r} is not one of {list(CHANNEL_ORDERS)}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if not isinstance(values, (list, tuple)) or not all(isinstance(v, (int, float)) for v in values):
                raise CommitteeError(f"{name} must be a list of numbers, one per channel, got {values!r}")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        if len(self.mean) != len(self.std) or any(s == 0 for s in self.std):
            raise CommitteeError(f"mean {self.mean} and std {self.std} need one value per channel, std non-zero")
        if not isinstance(self.scale, (int, float)) or self.scale <= 0:
            raise CommitteeError(f"scale must be a positive number (pixels are divided by it), got {self.scale!r}")
        object.__setattr__(self, "scale", float(self.scale))

    @classmethod
    def from_dict(cls, value: Any, where: str = "") -> ImagePreprocessing:
        known = [f.name for f in fields(cls)]
        if not isinstance(value, Mapping):
            raise CommitteeError(f"{where}preprocessing must be an object with fields {known}, got {value!r}")
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise CommitteeError(f"{where}unknown preprocessing field(s) {unknown}; valid: {known}")
        try:
            return cls(**value)
        except CommitteeError as err:
            raise CommitteeError(f"{where}preprocessing: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def input_size(self) -> tuple[int, ...] | None:
        """(channels, height, width) the model sees, when a crop fixes it."""
        if self.crop is None:
            return None
        h, w = self.crop if len(self.crop) == 2 else self.crop * 2
        return (len(self.mean), h, w)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """(..., C, H, W) pixels 0..255 in RGB order -> the model's input (float32)."""
        import torch

        x = pixels.float()
        if self.channels == "BGR":
            x = x.flip(-3)
        mean = torch.tensor(self.mean, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(-1, 1, 1)
        return (x / self.scale - mean) / std

    def __call__(self, image: Any) -> torch.Tensor:
        return self.normalise(self.pixels(image).contiguous())  # elementwise ops on a strided view run slower

    def pixels(self, image: Any) -> torch.Tensor:
        """The image resized and cropped: (C, H, W) pixels as decoded (uint8 for 8-bit images)."""
        import numpy as np
        import torch
        from PIL import Image
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        _check_layout(image)
        if not isinstance(image, (Image.Image, torch.Tensor)):  # an (H, W, C) array
            if self.resize is None:  # a (C, H, W) view: stacking the batch copies it once (to_image's
                image = torch.from_numpy(np.atleast_3d(np.asarray(image))).permute(2, 0, 1)  # copy: 80 of 100 us)
            else:  # resampled: from the contiguous image, as before
                image = F.to_image(image)
        # a PIL image is resized and cropped as PIL, as torchvision's and timm's eval transforms do
        if self.resize is not None:
            image = F.resize(image, list(self.resize), interpolation=InterpolationMode(self.interpolation),
                             antialias=True)
        if self.crop is not None:
            image = F.center_crop(image, list(self.crop))
        return image.as_subclass(torch.Tensor) if isinstance(image, torch.Tensor) else F.to_image(image).as_subclass(
            torch.Tensor)


_CHANNELS = (1, 3, 4)


def _check_layout(image: Any) -> None:
    """Refuse an array in (C, H, W) or a tensor in (H, W, C): images are (H, W, C) as numpy and
    PIL hold them, (C, H, W) as torchvision takes tensors, and the other order failed inside the
    resize with a message about tensor sizes."""
    import torch

    shape = tuple(getattr(image, "shape", ()))
    if len(shape) != 3:
        return
    if isinstance(image, torch.Tensor):
        if shape[-1] in _CHANNELS and shape[0] not in _CHANNELS:
            raise CommitteeError(f"an image tensor of shape {shape} is channels last: tensors are (C, H, W), as "
                                 "torchvision takes them; pass image.permute(2, 0, 1)")
    elif shape[0] in _CHANNELS and shape[-1] not in _CHANNELS:
        raise CommitteeError(f"an image array of shape {shape} is channels first: arrays are (H, W, C), as numpy "
                             "and PIL hold images; pass image.transpose(1, 2, 0)")
