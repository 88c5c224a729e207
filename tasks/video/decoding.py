"""Decode each video once, only the frames some member samples, and cut every member's views.

decord decodes (it seeks to key frames and reads only what ``get_batch`` asks for); PyAV is the
fallback when decord cannot open or decode a file (`OpenVideo`). ``torchvision.io.read_video`` no longer exists in
torchvision 0.29, and pytorchvideo's ``EncodedVideo(decoder="decord")`` fails on videos without
an audio track unless ``decode_audio=False``, so we call decord directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from committee_tasks.core.compat import import_decord

from .recipes import SamplingRecipe, view_order


@dataclass(frozen=True)
class VideoFile:
    """A video on disk, decoded lazily in the DataLoader worker that needs it."""

    path: Path


class VideoDecodeError(RuntimeError):
    """A video that cannot be opened or decoded (missing, corrupt, truncated, no frames)."""


class OpenVideo:
    """An opened video: frame count, frame rate, and frames by index (uint8, T x H x W x 3).

    decord first; where it cannot open or decode a file that FFmpeg reads (decord 0.6.0 fails on
    some frame sizes, e.g. a 72x128 portrait H.264 clip), PyAV decodes the whole video instead, and
    ``note`` says so. A file neither can read is a `VideoDecodeError` giving both reasons."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.note: str | None = None
        self._frames: np.ndarray | None = None  # PyAV's: every frame, decoded at once
        if not self.path.is_file():
            raise VideoDecodeError(f"{self.path}: no such file")
        decord = import_decord()  # here: workers open videos, the main process need not

        try:
            self._reader = decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=1)
            self.num_frames = len(self._reader)
            self.fps = float(self._reader.get_avg_fps())
        except Exception as err:  # decord raises DECORDError (a RuntimeError) on corrupt files
            self._with_pyav(f"cannot open ({_first_line(err)})")
        if self.num_frames < 1:
            raise VideoDecodeError(f"{self.path}: no video frames")
        if not self.fps > 0:
            raise VideoDecodeError(f"{self.path}: no frame rate in the container")

    def frames(self, indices: np.ndarray) -> torch.Tensor:
        if self._frames is None:
            try:
                return torch.from_numpy(self._reader.get_batch(indices.tolist()).asnumpy())
            except Exception as err:  # truncated files fail here, past the readable part
                self._with_pyav(f"cannot decode frames {indices.min()}-{indices.max()} of {self.num_frames} "
                                f"({_first_line(err)})")
        if indices.max() >= len(self._frames):
            raise VideoDecodeError(f"{self.path}: frames {indices.min()}-{indices.max()} asked, {len(self._frames)} "
                                   "decoded")
        return torch.from_numpy(self._frames[indices])

    def _with_pyav(self, decord_failure: str) -> None:
        """Decode every frame with PyAV, or raise saying why neither decoder could."""
        try:
            import av

            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        except Exception as err:
            raise VideoDecodeError(f"{self.path}: decord {decord_failure}; PyAV: {_first_line(err)}") from err
        if not frames:
            raise VideoDecodeError(f"{self.path}: decord {decord_failure}; PyAV: no video frames")
        self._frames = np.stack(frames)
        self.num_frames, self.fps = len(frames), float(rate or 0)
        self.note = f"decoded with PyAV (decord {decord_failure})"


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


@dataclass(frozen=True)
class VideoViews:
    """A member's preprocessing: its recipe's views of a video, stacked in `view_order`, as
    uint8 (views, 3, T, crop, crop). Normalisation runs on the device, inside the member, so
    batches cross to it in uint8 (4x less than float32)."""

    recipe: SamplingRecipe
    # in the repr, so in the cache key: a short video's frames were rounded, not truncated, before
    short_videos: str = "truncated"

    def frame_indices(self, video: OpenVideo) -> np.ndarray:
        return self.recipe.frame_indices(video.num_frames, video.fps)

    def views(self, clips: torch.Tensor) -> torch.Tensor:
        """From the decoded frames of every clip, (clips, T, H, W, 3), the stacked views."""
        per_clip = [self.recipe.spatial_views(clip) for clip in clips]
        return torch.stack([per_clip[c][s] for c, s in view_order(self.recipe.clips, self.recipe.crops)])

    def __call__(self, video: VideoFile) -> torch.Tensor:
        return decode_views(video, {"views": self})[0]["views"]


def decode_views(video: VideoFile, transforms: Mapping[str, VideoViews]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Every member's views of one video, decoding the union of the frames they need once; and
    notes on how the video was handled (a video shorter than a clip: frames repeated)."""
    opened = OpenVideo(video.path)
    plans = {key: t.frame_indices(opened) for key, t in transforms.items()}
    union = np.unique(np.concatenate([p.ravel() for p in plans.values()]))
    frames = opened.frames(union)
    inputs = {}
    for key, t in transforms.items():
        positions = np.searchsorted(union, plans[key])
        inputs[key] = t.views(frames[torch.from_numpy(positions)])
    notes = [opened.note] if opened.note else []
    short = [t.recipe for t in transforms.values() if t.recipe.is_short(opened.num_frames, opened.fps)]
    if short:
        need = max(r.clip_length(opened.fps) for r in short)
        notes.append(f"shorter than a clip ({opened.num_frames} frames, a clip spans {need:.0f}): "
                     "frames repeated (pytorchvideo's uniform subsampling)")
    return inputs, notes
