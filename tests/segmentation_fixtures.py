"""A tiny Cityscapes-layout dataset (PNG images and train-id label maps) and two tiny SegFormer
configs with random weights saved as real mmseg checkpoints, described in a --zoo file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

CONFIG = """\
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                         bgr_to_rgb=True, pad_val=0, seg_pad_val=255)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(type='MixVisionTransformer', in_channels=3, embed_dims={dims}, num_stages=4,
                  num_layers=[1, 1, 1, 1], num_heads=[1, 2, 2, 4], patch_sizes=[7, 3, 3, 3], sr_ratios=[8, 4, 2, 1],
                  out_indices=(0, 1, 2, 3), mlp_ratio=2, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0,
                  drop_path_rate=0.0),
    decode_head=dict(type='SegformerHead', in_channels=[{dims}, {dims2}, {dims2}, {dims4}], in_index=[0, 1, 2, 3],
                     channels=16, dropout_ratio=0.1, num_classes=19, norm_cfg=norm_cfg, align_corners=False,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg={test_cfg})
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale={scale}, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
"""

TINY = {
    "tiny_segformer_a": dict(dims=8, scale=(96, 48), test_cfg="dict(mode='whole')", seed=1),
    "tiny_segformer_b": dict(dims=16, scale=(64, 32), test_cfg="dict(mode='slide', crop_size=(32, 32), stride=(24, 24))",
                             seed=2),
}
WIDTH, HEIGHT = 64, 32


def write_configs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, spec in TINY.items():
        d = spec["dims"]
        paths[name] = folder / f"{name}.py"
        paths[name].write_text(CONFIG.format(dims=d, dims2=2 * d, dims4=4 * d, scale=spec["scale"],
                                             test_cfg=spec["test_cfg"]))
    return paths


def build_tiny(config: Path, seed: int) -> torch.nn.Module:
    from committee_tasks.core.compat import import_mmseg

    import_mmseg()
    from mmseg.apis import init_model

    torch.manual_seed(seed)
    model = init_model(str(config), device="cpu")
    model.init_weights()
    for module in model.modules():  # confident, disagreeing random members
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.weight.data.uniform_(1.0, 3.0)
    with torch.no_grad():
        model.decode_head.conv_seg.weight.mul_(8.0)
    return model.eval()


def make_zoo(folder: Path) -> tuple[Path, Path]:
    configs = write_configs(folder / "configs")
    weights = folder / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    models = []
    for name, spec in TINY.items():
        model = build_tiny(configs[name], spec["seed"])
        meta = {"dataset_meta": {"classes": [f"class{i}" for i in range(19)]}, "mmseg_version": "1.2.2"}
        torch.save({"meta": meta, "state_dict": model.state_dict()}, weights / f"{name}.pth")
        models.append({"name": name, "config": f"configs/{name}.py", "weights": f"{name}.pth", "dataset": "cityscapes"})
    zoo = folder / "tiny_seg_zoo.json"
    zoo.write_text(json.dumps({"models": models}, indent=1))
    return zoo, weights


def write_image(root: Path, stem: str, seed: int, label: np.ndarray | None = None, size=(WIDTH, HEIGHT)) -> None:
    rng = np.random.default_rng(seed)
    w, h = size
    image_dir, label_dir = root / "leftImg8bit" / "val" / "frankfurt", root / "gtFine" / "val" / "frankfurt"
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    labels = np.zeros((h, w), np.uint8) if label is None else label
    if label is None:  # blocks of a few classes, some ignored pixels
        for y in range(0, h, 8):
            for x in range(0, w, 16):
                labels[y:y + 8, x:x + 16] = rng.integers(0, 6)
        labels[rng.random((h, w)) < 0.05] = 255
    image = (rng.random((h, w, 3)) * 60 + labels[..., None] * 30 % 200).astype(np.uint8)
    Image.fromarray(image).save(image_dir / f"{stem}_leftImg8bit.png")
    Image.fromarray(labels).save(label_dir / f"{stem}_gtFine_labelTrainIds.png")


def make_dataset(root: Path, count: int = 6) -> Path:
    for i in range(count):
        write_image(root, f"frankfurt_000000_{i:06d}", seed=i)
    return root
