"""Check that espnet.py and cgnet.py reproduce the published CamVid test mIoU of their checkpoints.

Standalone (numpy + PIL + torch): loads each checkpoint strictly, runs the 233 CamVid test images
with the preprocessing each model was trained with, and prints mIoU over the 11 classes from one
confusion matrix summed over the test set (label 11 = void is ignored; ESPNet's void channel 11 is
dropped before the argmax). ESPNet's README figures (55.64 mIoU, 68.30 class-average accuracy) were
computed another way: 12-way argmax, and void pixels predicted as class c count as false positives
of c. The script prints that protocol too, to show the figures are reproduced exactly.

    python examples/camvid/check_published.py [--data ../shared/data] [--threads 2]   # about 6 min on 2 cores
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cgnet import cgnet
from espnet import espnet

CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
           "Pedestrian", "Bicyclist")
VOID = 11
# CamVid statistics on the 0-255 scale, in BGR order (see the shared data's README.md).
TRAIN_MEAN_BGR, TRAIN_STD_BGR = (110.33, 108.41, 105.03), (72.13, 72.69, 69.90)
TRAINVAL_MEAN_BGR = (105.66, 103.33, 99.63)
PUBLISHED = {"espnet": 55.64, "cgnet": 65.6}
CHECKPOINTS = {"espnet": "espnet_p2q8_camvid-7d354a25.pth", "cgnet": "cgnet_m3n21_camvid-3676a50e.pth"}


def espnet_input(rgb: np.ndarray) -> np.ndarray:
    """Upstream: cv2 BGR image, (x - mean) / std per channel, then ToTensor's /255."""
    bgr = rgb[:, :, ::-1].astype(np.float32)
    return (bgr - np.float32(TRAIN_MEAN_BGR)) / np.float32(TRAIN_STD_BGR) / 255.0


def cgnet_input(rgb: np.ndarray) -> np.ndarray:
    """Upstream: cv2 BGR image flipped to RGB, minus a mean computed in BGR order; no scaling."""
    return rgb.astype(np.float32) - np.float32(TRAINVAL_MEAN_BGR)


def load_models(model_dir: Path) -> dict:
    models = {"espnet": espnet(classes=12, p=2, q=8), "cgnet": cgnet(classes=11, M=3, N=21)}
    for name, model in models.items():
        state = torch.load(model_dir / CHECKPOINTS[name], map_location="cpu", weights_only=True)
        if name == "cgnet":
            state = state["model"]  # {'epoch': 800, 'model': state_dict}
        model.load_state_dict(state, strict=True)
        model.eval()
    return models


def predict(name: str, model: torch.nn.Module, rgb_batch: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Label maps per protocol: "clean" drops ESPNet's void channel 11 before the argmax (how the
    toolkit uses it); "upstream" is ESPNet's own 12-way argmax, which may predict void."""
    prepare = espnet_input if name == "espnet" else cgnet_input
    x = torch.from_numpy(np.stack([prepare(rgb) for rgb in rgb_batch]).transpose(0, 3, 1, 2).copy())
    logits = model(x)
    if name != "espnet":
        return {"clean": logits.argmax(1).numpy()}
    return {"clean": logits[:, :VOID].argmax(1).numpy(), "upstream": logits.argmax(1).numpy()}


def confusion(label: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """12 x 12 counts (rows: ground truth incl. void, columns: prediction incl. ESPNet's void)."""
    n = VOID + 1
    return np.bincount(n * label.ravel().astype(np.int64) + pred.ravel(), minlength=n * n).reshape(n, n)


def iou_per_class(conf: np.ndarray, void_counts_as_fp: bool = False) -> np.ndarray:
    """IoU of the 11 real classes. Void ground truth is ignored unless `void_counts_as_fp`: then a
    void pixel predicted as class c is a false positive of c (the convention behind ESPNet's 55.64)."""
    tp = np.diag(conf)[:VOID].astype(np.float64)
    gt_rows = conf if void_counts_as_fp else conf[:VOID]
    with np.errstate(invalid="ignore"):  # a class absent from a --limit subset gives nan
        return tp / (conf[:VOID].sum(1) + gt_rows[:, :VOID].sum(0) - tp)


def class_avg_accuracy(conf: np.ndarray) -> float:
    with np.errstate(invalid="ignore"):
        return float(np.nanmean(np.diag(conf)[:VOID] / conf[:VOID].sum(1)))


def evaluate(models: dict, images: list[Path], label_dir: Path, batch: int) -> tuple[dict, dict]:
    """Confusion matrices keyed (model, protocol), summed over the test set; seconds per model."""
    conf: dict = {}
    seconds = dict.fromkeys(models, 0.0)
    for start in range(0, len(images), batch):
        paths = images[start:start + batch]
        rgbs = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
        labels = [np.asarray(Image.open(label_dir / p.name)) for p in paths]
        for name, model in models.items():
            began = time.perf_counter()
            with torch.inference_mode():
                preds = predict(name, model, rgbs)
            seconds[name] += time.perf_counter() - began
            for protocol, maps in preds.items():
                total = conf.setdefault((name, protocol), np.zeros((VOID + 1, VOID + 1), np.int64))
                for label, pred in zip(labels, maps):
                    total += confusion(label, pred)
    return conf, seconds


def report(conf: dict, seconds: dict, n_images: int, threads: int, batch: int) -> None:
    ious = {name: iou_per_class(conf[name, "clean"]) for name in seconds}
    print(f"{'IoU %':<12}" + "".join(f"{name:>9}" for name in ious))
    for i, cls in enumerate(CLASSES):
        print(f"{cls:<12}" + "".join(f"{100 * ious[name][i]:9.2f}" for name in ious))
    for name, secs in seconds.items():
        print(f"{name}: mIoU {100 * np.nanmean(ious[name]):.2f} (11 classes, void ignored); {secs:.1f} s for "
              f"{n_images} images = {1000 * secs / n_images:.0f} ms/image ({threads} threads, batch {batch})")
    # CGNet's own evaluator (utils/metric.py get_iou) uses the protocol above.
    cg = 100 * np.nanmean(ious["cgnet"])
    print(f"cgnet vs paper: {cg:.2f} vs {PUBLISHED['cgnet']} (diff {cg - PUBLISHED['cgnet']:+.2f})")
    upstream = conf["espnet", "upstream"]
    esp = 100 * np.nanmean(iou_per_class(upstream, void_counts_as_fp=True))
    print(f"espnet vs README, upstream protocol (12-way argmax incl. void, void pixels count as false "
          f"positives): {esp:.2f} vs {PUBLISHED['espnet']} (diff {esp - PUBLISHED['espnet']:+.2f}); "
          f"class-avg accuracy {100 * class_avg_accuracy(upstream):.2f} vs 68.30")

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # the shared data folder beside the repository, as the README's commands use it (../shared/data)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--limit", type=int, default=0, help="only the first N test images (0 = all); a smoke test")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    models = load_models(args.data / "camvid-models")
    print("both checkpoints loaded with strict=True")
    images = sorted((args.data / "camvid" / "test").glob("*.png"))
    if args.limit:
        images = images[:args.limit]
    conf, seconds = evaluate(models, images, args.data / "camvid" / "testannot", args.batch)
    report(conf, seconds, len(images), args.threads, args.batch)


if __name__ == "__main__":
    main()
