"""Tiny real videos (H.264 mp4 written with PyAV, no audio track) and tiny X3D members saved in
the pytorchvideo checkpoint format, described in a --zoo file: everything the video tests need,
written into a temporary folder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

CLASSES = ["archery", "bowling", "juggling balls"]

# Two tiny X3D members with different recipes (frames, rate, crop) and views.
TINY_MEMBERS = {
    "tiny_x3d_a": dict(kwargs=dict(input_clip_length=4, input_crop_size=32, width_factor=0.5, depth_factor=0.5,
                                   bottleneck_factor=1.0, head_dim_out=32),
                       recipe=dict(frames=4, sampling_rate=3, short_side=32, crop_size=32, clips=3, crops=3),
                       seed=1),
    "tiny_x3d_b": dict(kwargs=dict(input_clip_length=6, input_crop_size=48, width_factor=1.0, depth_factor=0.5,
                                   bottleneck_factor=1.5, head_dim_out=48),
                       recipe=dict(frames=6, sampling_rate=2, short_side=48, crop_size=48, clips=2, crops=3),
                       seed=2),
}


def write_video(path: Path, frames: int, height: int = 40, width: int = 56, fps: int = 10, seed: int = 0,
                tint: int = 0) -> None:
    """An mp4 of moving coloured noise (class ``tint`` shifts the colours), no audio track."""
    import av

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        base = rng.integers(0, 256, size=(height, width, 3))
        for t in range(frames):
            img = np.roll(base, shift=2 * t, axis=1)
            img[..., tint % 3] = np.clip(img[..., tint % 3] + 80, 0, 255)
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_dataset(root: Path, per_class: int = 2, frames: int = 30) -> Path:
    """``root/val/<class>/*.mp4`` plus ``root/classes.txt``; returns root."""
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            write_video(root / "val" / name / f"{name.replace(' ', '_')}_{i}.mp4", frames, seed=10 * c + i, tint=c)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return root


def build_tiny(name: str) -> torch.nn.Module:
    from committee_tasks.core.compat import import_pytorchvideo

    import_pytorchvideo()
    from pytorchvideo.models.x3d import create_x3d

    spec = TINY_MEMBERS[name]
    torch.manual_seed(spec["seed"])
    model = create_x3d(model_num_class=len(CLASSES), dropout_rate=0.0, **spec["kwargs"])
    # non-trivial BN statistics, so random members disagree and are confident on some videos
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 2.0)
    return model.eval()


def make_zoo(folder: Path) -> tuple[Path, Path]:
    """Weights (``{"model_state": ...}`` .pyth files) and the --zoo JSON describing them."""
    weights = folder / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    models = []
    for name, spec in TINY_MEMBERS.items():
        torch.save({"model_state": build_tiny(name).state_dict()}, weights / f"{name}.pyth")
        models.append({"name": name, "builder": "create_x3d",
                       "kwargs": {"model_num_class": len(CLASSES), "dropout_rate": 0.0, **spec["kwargs"]},
                       "weights": f"{name}.pyth", "num_classes": len(CLASSES), "recipe": spec["recipe"],
                       "dataset": "tiny-kinetics"})
    zoo = folder / "tiny_zoo.json"
    zoo.write_text(json.dumps({"models": models}, indent=1))
    return zoo, weights
