"""A video member: a clip model run on every view of a video, its softmax averaged over views.

`VideoClassifier` wraps a pytorchvideo model: it checks the input size (the heads pool with a
kernel fixed at build time, so a wrong size would run without complaint), normalises uint8
frames on the device, and packs SlowFast's two pathways. `VideoMember` runs it over a batch of
videos' views and aggregates; optionally it stops adding views to a video once the running mean
is confident (view-level early exit), so each video's cost is what it actually ran.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from committee_tasks.core.members import Member
from committee_tasks.core.units import format_macs

from .recipes import SamplingRecipe


class VideoClassifier(nn.Module):
    """uint8 clips (N, 3, T, crop, crop) -> the model's outputs, with the recipe's normalisation."""

    def __init__(self, model: nn.Module, recipe: SamplingRecipe):
        super().__init__()
        self.model = model
        self.expected = (3, recipe.frames, recipe.crop_size, recipe.crop_size)
        self.alpha = recipe.slowfast_alpha
        self.register_buffer("mean", torch.tensor(recipe.mean).view(1, 3, 1, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(recipe.std).view(1, 3, 1, 1, 1) * 255, persistent=False)
        # pytorchvideo heads built with nn.Softmax output probabilities in eval mode (X3D, R(2+1)D)
        self.outputs_probabilities = any(isinstance(m, nn.Softmax) for m in model.modules())

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if tuple(clips.shape[1:]) != self.expected:
            raise ValueError(f"this model takes clips of shape {self.expected} (channels, frames, crop, crop), "
                             f"got {tuple(clips.shape[1:])}: its head pools over a window fixed for that size")
        x = (clips.float() - self.mean) / self.std
        x = x.contiguous(memory_format=torch.channels_last_3d)  # as place_module lays out 3-D convnets' weights
        if self.alpha:  # SlowFast: the slow pathway sees every alpha-th frame (pytorchvideo's PackPathway)
            slow = torch.linspace(0, x.shape[2] - 1, x.shape[2] // self.alpha, device=x.device).long()
            x = [x.index_select(2, slow), x]  # a fresh list: pytorchvideo's MultiPathWay overwrites it
        return self.model(x)


def exit_fingerprint(base: str, view_exit: float | None, min_views: int = 1) -> str:
    """A member's cache key with its view-exit rule; plain multi-view members keep the core's key."""
    if view_exit is None:
        return base
    blob = f"{base} view_exit={view_exit!r} min_views={min_views}"
    return hashlib.sha256(blob.encode()).hexdigest()


class VideoMember(Member):
    """Aggregates a clip model over views; ``view_exit`` enables view-level early exit."""

    def __init__(self, *args, views: int, view_exit: float | None = None, min_views: int = 1,
                 view_chunk: int = 16, **kwargs):
        super().__init__(*args, **kwargs)
        self.views = views
        self.view_exit = view_exit
        self.min_views = min_views
        self.view_chunk = view_chunk  # views per forward pass: bounds activation memory
        self._macs_per_view: int | None = None

    @property
    def fingerprint(self) -> str:
        return exit_fingerprint(super().fingerprint, self.view_exit, self.min_views)

    def macs_per_view(self, videos: torch.Tensor | None = None) -> int:
        """MACs of one view (counted once; on a blank clip of the expected size if none given)."""
        if self._macs_per_view is None:
            clip = videos[:1, 0] if videos is not None else torch.zeros((1, *self.module.expected), dtype=torch.uint8)
            self._macs_per_view = int(self.macs_per_sample(clip)[0])
        return self._macs_per_view

    @torch.no_grad()
    def view_probs(self, clips: torch.Tensor) -> torch.Tensor:
        """Probabilities (float32) of each clip (N, 3, T, crop, crop), in chunks."""
        parts = [self.to_probs(self.module(chunk)).float() for chunk in clips.split(self.view_chunk)]
        return torch.cat(parts)

    @torch.no_grad()
    def predict_with_cost(self, videos: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """``videos``: (B, views, 3, T, crop, crop). Returns the mean of each video's view
        probabilities and each video's MACs (views run x MACs per view)."""
        if videos.dim() != 6 or videos.shape[1] != self.views:
            raise ValueError(f"member {self.name!r} expects (videos, {self.views} views, 3, T, crop, crop), "
                             f"got {tuple(videos.shape)}")
        per_view = self.macs_per_view(videos)
        batch = len(videos)
        if self.view_exit is None:
            probs = self.view_probs(videos.flatten(0, 1)).view(batch, self.views, -1).mean(dim=1)
            return probs, np.full(batch, self.views * per_view, dtype=np.int64)
        total = None
        used = torch.zeros(batch, dtype=torch.long, device=videos.device)
        active = torch.arange(batch, device=videos.device)
        for v in range(self.views):
            probs = self.view_probs(videos[active, v])
            if total is None:
                total = torch.zeros(batch, probs.shape[1], device=videos.device)
            total[active] += probs
            used[active] += 1
            confidence = (total[active] / used[active, None]).max(dim=1).values
            done = (confidence >= self.view_exit) & (used[active] >= self.min_views)
            active = active[~done]
            if not len(active):
                break
        macs = used.cpu().numpy().astype(np.int64) * per_view
        return total / used[:, None].float(), macs

    def cost_note(self) -> str | None:
        per_view = self.macs_per_view()
        exit_rule = (f"; stops adding views once the running mean's max probability >= {self.view_exit:g}"
                     if self.view_exit is not None else "")
        return (f"{self.views} views x {format_macs(per_view)} MACs per view = "
                f"{format_macs(self.views * per_view)} per video at most{exit_rule}")
