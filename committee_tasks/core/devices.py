"""Device placement, mixed precision and timing shared by the loop, the executor and benchmarks.

CUDA first: autocast (float16), channels-last for 4-D inputs, pinned host memory with non-blocking
copies, and CUDA events for timing. On CPU everything runs in float32 (exact reference numbers).
"""
from __future__ import annotations

import contextlib
import time

import torch

from committee_tasks.core.errors import CommitteeError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise CommitteeError(f"invalid device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CommitteeError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


AMP_MODES = {"auto": None, "on": True, "off": False, True: True, False: False}


def use_amp(device: torch.device, amp: str | bool = "auto") -> bool:
    """Whether members run under autocast: ``amp`` "auto" (on CUDA), "on"/True, "off"/False."""
    if not isinstance(amp, (str, bool)) or amp not in AMP_MODES:
        raise CommitteeError(f"amp {amp!r}: choose 'auto' (on CUDA), 'on' or 'off' (or True / False)")
    chosen = AMP_MODES[amp]
    return device.type == "cuda" if chosen is None else chosen


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def cudnn_autotuner(device: torch.device, on: bool = True):
    """cuDNN's autotuner (``torch.backends.cudnn.benchmark``) on, for CUDA, inside the block, then
    restored. A cascade's later stages see a different row count in each batch, for which cuDNN's
    heuristics chose slower kernels: resnet18 -> resnet152 realized 1.11x on an H100 and 1.13x on
    an H200 without the autotuner, 1.46x and 1.31x with it (benchmarks/gpu_check.py, both in one
    process). Each new shape is tuned once, so a warm-up should pass every shape. Left off where
    the user asked for deterministic cuDNN, which the autotuner would undo."""
    if device.type != "cuda" or not on or torch.backends.cudnn.deterministic:
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def memory_format_for(module: torch.nn.Module) -> torch.memory_format | None:
    """Channels-last for 2-D convnets, channels-last-3d for 3-D ones (video), None when the
    module mixes both (``Module.to(memory_format=...)`` converts every 4-D or 5-D parameter and
    fails on a rank it does not fit) or has no convolutions."""
    ranks = {p.dim() for m in module.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)
             for p in m.parameters(recurse=False) if p.dim() in (4, 5)}
    if ranks == {4}:
        return torch.channels_last
    if ranks == {5}:
        return torch.channels_last_3d
    return None


def place_module(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module on ``device`` in the layout its convolutions run fastest in: channels-last on
    CUDA (tensor cores) and on the CPU too (oneDNN's kernels): 1.1x-1.8x on this project's
    2-core CPU across CIFAR and torchvision classifiers, DeepLabV3, R(2+1)D and X3D, quiet and
    beside a busy process, with probabilities equal to float32 rounding
    (benchmarks/channels_last.py; README "Channels-last on the CPU")."""
    module = module.to(device)
    memory_format = memory_format_for(module)
    if memory_format is not None:
        module = module.to(memory_format=memory_format)
    return module


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if x.dim() == 4:  # the layout place_module gives 2-D convnets' weights
        x = x.contiguous(memory_format=torch.channels_last)
    return x


class Stopwatch:
    """Accumulates the time of timed sections: CUDA events on GPU, perf_counter on CPU.

    GPU events are resolved lazily in ``seconds`` so timing never adds a sync per section.
    """

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self._pairs: list = []
        self._cpu_seconds = 0.0

    @contextlib.contextmanager
    def section(self):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            yield
            end.record()
            self._pairs.append((start, end))
        else:
            t0 = time.perf_counter()
            yield
            self._cpu_seconds += time.perf_counter() - t0

    @property
    def seconds(self) -> float:
        if self.cuda and self._pairs:
            torch.cuda.synchronize()
            self._cpu_seconds += sum(s.elapsed_time(e) for s, e in self._pairs) / 1000.0
            self._pairs.clear()
        return self._cpu_seconds
