"""Sampling recipes and the multi-view test protocol of video classifiers.

A recipe says which frames a member sees and at what size: ``frames`` frames ``sampling_rate``
apart at ``target_fps``, the shorter side scaled to ``short_side`` and a square ``crop_size``
crop. The test protocol takes ``clips`` temporal clips uniformly over the video times ``crops``
spatial crops (left/top, centre, right/bottom along the longer side) - PySlowFast's and the
pytorchvideo model zoo's "3 x 10 views".

Clip starts run from the video's start to the last possible start, both included, i / (N - 1) of
the way (a single clip centred): PySlowFast's ``get_start_end_idx`` with ``USE_OFFSET_SAMPLING`` and
pytorchvideo's ``ConstantClipsPerVideoSampler`` on its main branch. The pinned pytorchvideo 0.1.5
release and PySlowFast's default space them i / N of the way instead, stopping one step short
of the end (not verified here against published figures: no Kinetics data on this machine);
the frames of a clip are ``linspace(start, end)``
truncated to indices (PySlowFast's ``temporal_sampling``, pytorchvideo's ``UniformTemporalSubsample``);
the short side is scaled by ``pytorchvideo``'s ``ShortSideScale`` rule and crops are taken as
``uniform_crop`` does. A video shorter than a clip follows pytorchvideo's convention: the clip
covers the whole video and its frames are sampled uniformly over it, so frames repeat.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where frames are sampled and cropped: listing the zoo needs no torch
    import numpy as np
    import torch


@dataclass(frozen=True)
class SamplingRecipe:
    frames: int  # frames per clip the model sees (the fast pathway's, for SlowFast)
    sampling_rate: int  # stride between them, in frames at target_fps
    short_side: int  # shorter side scaled to this before cropping
    crop_size: int  # square crop fed to the model
    clips: int = 10  # temporal clips per video
    crops: int = 3  # spatial crops per clip (1: centre only, 3: both ends and centre)
    target_fps: float = 30.0
    mean: tuple[float, float, float] = (0.45, 0.45, 0.45)
    std: tuple[float, float, float] = (0.225, 0.225, 0.225)
    slowfast_alpha: int | None = None  # SlowFast: the slow pathway takes every alpha-th frame

    def __post_init__(self):
        if self.crops not in (1, 3):
            raise ValueError(f"spatial crops must be 1 (centre) or 3 (both ends and centre), got {self.crops}")
        if self.clips < 1 or self.frames < 1 or self.sampling_rate < 1:
            raise ValueError(f"clips, frames and sampling rate must be positive: {self}")
        if self.crop_size > self.short_side:
            raise ValueError(f"crop {self.crop_size} is larger than the short side {self.short_side}")

    @property
    def views(self) -> int:
        return self.clips * self.crops

    # ---- time --------------------------------------------------------------------------
    def clip_length(self, video_fps: float) -> float:
        """Source frames one clip spans (``frames * sampling_rate`` frames at ``target_fps``)."""
        return self.frames * self.sampling_rate / self.target_fps * video_fps

    def is_short(self, num_frames: int, video_fps: float) -> bool:
        return self.clip_length(video_fps) > num_frames

    def frame_indices(self, num_frames: int, video_fps: float) -> np.ndarray:
        """Source frame index of every frame of every clip, shape (clips, frames)."""
        import torch

        if num_frames < 1:
            raise ValueError("the video has no frames")
        clip_size = self.clip_length(video_fps)
        if clip_size >= num_frames:  # short video: each clip spans all of it, frames repeat
            # truncated, as pytorchvideo's uniform_temporal_subsample (and a long video's clip) index
            line = torch.linspace(0, num_frames - 1, self.frames).clamp(0, num_frames - 1).long()
            return line.expand(self.clips, -1).numpy().copy()
        delta = num_frames - clip_size
        rows = []
        for i in range(self.clips):
            start = delta * i / (self.clips - 1) if self.clips > 1 else delta / 2
            index = torch.linspace(start, start + clip_size - 1, self.frames)
            rows.append(index.clamp(0, num_frames - 1).long())
        return torch.stack(rows).numpy()

    # ---- space -------------------------------------------------------------------------
    def spatial_views(self, clip: torch.Tensor) -> list[torch.Tensor]:
        """Crops of one clip (T, H, W, 3) uint8, as (3, T, crop, crop) uint8 tensors."""
        import torch
        import torch.nn.functional as F

        frames = clip.permute(0, 3, 1, 2).float()  # T, 3, H, W
        height, width = frames.shape[-2:]
        if height <= width:
            size = (self.short_side, max(self.short_side, int(math.floor(width / height * self.short_side))))
        else:
            size = (max(self.short_side, int(math.floor(height / width * self.short_side))), self.short_side)
        if size != (height, width):
            frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
        frames = frames.round_().clamp_(0, 255).to(torch.uint8).permute(1, 0, 2, 3)  # 3, T, H, W
        positions = [1] if self.crops == 1 else [0, 1, 2]
        return [_uniform_crop(frames, self.crop_size, p) for p in positions]


def _uniform_crop(frames: torch.Tensor, size: int, position: int) -> torch.Tensor:
    """PySlowFast's uniform_crop: 0/2 are the two ends of the longer side, 1 the centre."""
    height, width = frames.shape[-2:]
    y = int(math.ceil((height - size) / 2))
    x = int(math.ceil((width - size) / 2))
    if height > width:
        y = {0: 0, 1: y, 2: height - size}[position]
    else:
        x = {0: 0, 1: x, 2: width - size}[position]
    return frames[..., y:y + size, x:x + size]


def view_order(clips: int, crops: int) -> list[tuple[int, int]]:
    """The order views are stacked in: (clip, crop) pairs, centre crops first, and clips in an
    order that covers the video early (middle first, then the clip farthest from those taken).
    With view-level early exit a member stops after a prefix of this order."""
    order = [(clips - 1) // 2]
    while len(order) < clips:
        rest = [c for c in range(clips) if c not in order]
        order.append(max(rest, key=lambda c: (min(abs(c - o) for o in order), -c)))
    crop_order = [0] if crops == 1 else [1, 0, 2]
    return [(clip, crop) for crop in crop_order for clip in order]
