#!/usr/bin/env python3
"""Contiguous against channels-last forward passes on the CPU, for the toolkit's kinds of members:
the layout `place_module` / `to_device` give convnets on every device (`core/devices.py`).

Each model (random weights, real input sizes) runs both ways on the same batch in interleaved
rounds (the toolkit's own `measure_interleaved`), quiet and beside one competing CPU-bound process
that this benchmark starts itself; it prints samples/s of each, their ratio (median over rounds,
with its interquartile range), and the largest difference of the two layouts' probabilities.

    .venv/bin/python benchmarks/channels_last.py [--rounds 3] [--models resnet18,x3d_m]

Goal: channels-last at least as fast as contiguous (ratio >= 1) for every model under both
conditions, with probabilities equal to float32 rounding (max |Δp| <= 1e-4). Exits 1 otherwise.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
import warnings

import committee_tasks  # noqa: F401  (first: the thread policy is set before torch loads)
import torch
import torchvision

from committee_tasks.core.devices import place_module, to_device
from committee_tasks.core.provenance import device_description
from committee_tasks.core.threads import apply_thread_policy
from committee_tasks.engine.timing import measure_interleaved
from committee_tasks.reporting.eval_table import format_rate
from committee_tasks_builtin.classification.cifar_resnet import CifarResNet
from competing import competing_process  # benchmarks/competing.py

MAX_PROB_DIFFERENCE = 1e-4


def _x3d_m() -> torch.nn.Module:
    from committee_tasks.core.compat import import_pytorchvideo

    import_pytorchvideo()
    from pytorchvideo.models.x3d import create_x3d

    return create_x3d(input_clip_length=16, input_crop_size=224, depth_factor=2.2)


def _deeplab() -> torch.nn.Module:
    model = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None)
    return _Logits(model)


class _Logits(torch.nn.Module):
    """torchvision's segmentation models return a dict; its "out" map is what a member scores."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


# name -> (builder, one batch's shape): small batches keep a round near a second on 2 cores
MODELS = {
    "cifar_resnet56": (lambda: CifarResNet(56), (128, 3, 32, 32)),
    "resnet18": (lambda: torchvision.models.resnet18(), (16, 3, 224, 224)),
    "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(), (32, 3, 224, 224)),
    "efficientnet_b0": (lambda: torchvision.models.efficientnet_b0(), (16, 3, 224, 224)),
    "deeplabv3_resnet50": (_deeplab, (1, 3, 256, 512)),
    "r2plus1d_18": (lambda: torchvision.models.video.r2plus1d_18(), (1, 3, 16, 112, 112)),
    "x3d_m": (_x3d_m, (1, 3, 16, 224, 224)),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {','.join(MODELS)}")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds per condition")
    p.add_argument("--scale", type=float, default=1.0, help="batch sizes times this (at least 1 sample)")
    args = p.parse_args(argv)
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    return args


def _forward(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return module(x).float().softmax(1)


def compare(name: str, rounds: int, scale: float) -> list[str]:
    """Lines for one model: both conditions' throughputs and ratio; failures are marked MISSED."""
    build, shape = MODELS[name]
    torch.manual_seed(0)
    contiguous = build().eval()
    placed = place_module(copy.deepcopy(contiguous), torch.device("cpu"))
    batch = torch.randn(max(1, round(shape[0] * scale)), *shape[1:])
    placed_batch = to_device(batch, torch.device("cpu"))
    if batch.dim() == 5:  # the video members' own input layout (tasks/video/members.py)
        placed_batch = placed_batch.contiguous(memory_format=torch.channels_last_3d)
    difference = (_forward(contiguous, batch) - _forward(placed, placed_batch)).abs().max().item()

    def run(module, x):
        def once():
            start = time.perf_counter()
            _forward(module, x)
            return len(x), time.perf_counter() - start
        return once

    lines = [f"{name} {tuple(batch.shape)}: max |Δp| {difference:.1e}"
             f"{'' if difference <= MAX_PROB_DIFFERENCE else ' (MISSED)'}"]
    for condition in ("quiet", "one competing process"):
        with competing_process(condition != "quiet"):
            measured = measure_interleaved({"contiguous": run(contiguous, batch),
                                            "channels-last": run(placed, placed_batch)},
                                           "contiguous", rounds)
        ratio = measured["channels-last"].speedup
        verdict = "" if ratio["median"] >= 1 else " (MISSED)"
        lines.append(f"  {condition:<22} contiguous {format_rate(measured['contiguous'].throughput['median']):>7} samples/s, "
                     f"channels-last {format_rate(measured['channels-last'].throughput['median']):>7}: "
                     f"{ratio['median']:.2f}x ({ratio['q1']:.2f}–{ratio['q3']:.2f}){verdict}")
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    threads = apply_thread_policy()
    warnings.filterwarnings("ignore", category=UserWarning)
    print(f"{device_description('cpu')['name']}; {threads} threads; torch {torch.__version__}; "
          f"{args.rounds} interleaved rounds, float32, random weights")
    missed = False
    for name in args.models.split(","):
        for line in compare(name, args.rounds, args.scale):
            print(line, flush=True)
            missed |= line.endswith("(MISSED)")
    print(f"goal: channels-last >= contiguous, max |Δp| <= {MAX_PROB_DIFFERENCE:g}: {'MISSED' if missed else 'met'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
