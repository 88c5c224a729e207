"""Device placement choices that only take effect on CUDA, checked on CPU."""
from __future__ import annotations

import torch
from torch import nn

from committee_tasks.core.devices import memory_format_for, place_module, to_device


def test_memory_format_fits_the_convolutions():
    assert memory_format_for(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())) is torch.channels_last
    assert memory_format_for(nn.Sequential(nn.Conv3d(3, 4, 3), nn.Linear(4, 2))) is torch.channels_last_3d
    assert memory_format_for(nn.Sequential(nn.Conv3d(3, 4, 3), nn.Conv2d(4, 4, 1))) is None  # would fail either way
    assert memory_format_for(nn.Linear(4, 2)) is None
    for module, fmt in ((nn.Conv2d(3, 4, 3), torch.channels_last), (nn.Conv3d(3, 4, 3), torch.channels_last_3d)):
        assert module.to(memory_format=fmt).weight.is_contiguous(memory_format=fmt)  # what CUDA placement does


def test_place_module_on_cpu_gives_the_channels_last_layouts_and_the_same_outputs():
    """oneDNN's CPU convolutions run faster channels-last (benchmarks/channels_last.py); the
    outputs must stay those of the contiguous layout, to float32 rounding."""
    torch.manual_seed(0)
    for make, fmt, shape in ((lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3)),
                              torch.channels_last, (2, 3, 12, 12)),
                             (lambda: nn.Sequential(nn.Conv3d(3, 8, 3), nn.ReLU(), nn.Conv3d(8, 4, 3)),
                              torch.channels_last_3d, (2, 3, 6, 12, 12))):
        reference = make().eval()
        x = torch.randn(*shape)
        placed = place_module(make().eval(), torch.device("cpu"))
        placed.load_state_dict(reference.state_dict())
        assert placed[0].weight.is_contiguous(memory_format=fmt)
        with torch.no_grad():
            torch.testing.assert_close(placed(to_device(x, torch.device("cpu"))), reference(x))
    mixed = place_module(nn.Sequential(nn.Conv3d(3, 4, 3), nn.Conv2d(4, 4, 1)), torch.device("cpu"))
    assert mixed[0].weight.is_contiguous() and mixed[1].weight.is_contiguous()  # no layout fits both


def test_the_prepared_gpu_check_runs_on_the_cpu():
    """benchmarks/gpu_check.sh --device cpu: every step of the GPU check, on small inputs, and its 2-GPU
    torchrun step as 2 CPU processes (gloo)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--device", "cpu", "--small", "--samples", "64",
                           "--batch-size", "32", "--rounds", "1", "--workers", "0"], cwd=repo, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("classification: ResNet", "video: VideoResNet", "segmentation: FCN", "evaluation loop",
                 "realized / predicted", "data loading per batch of 32, step by step: read samples",
                 "  CPU: realized", "(later stage gathered into full batches; per batch ", "rows go on): copy to the device",
                 "resnet50 alone on the batch",
                 "tolerances: max |Δp| <= 0.02, argmax agreement >= 95%: met",
                 "2-rank torchrun on the CPU (gloo) (digits, 4 rows, 599 samples): report equal to one process: yes; "
                 "cached outputs bit for bit: yes"):
        assert line in done.stdout, line


def test_channels_last_benchmark_runs_and_compares_both_layouts():
    """benchmarks/channels_last.py on one small batch: both conditions timed, the layouts' outputs
    compared (timings are the benchmark's business, so a missed speed goal does not fail here)."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "channels_last.py"
    done = subprocess.run([sys.executable, str(script), "--models", "cifar_resnet56", "--rounds", "1",
                           "--scale", "0.125"], capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr[-3000:]
    out = done.stdout
    assert re.search(r"cifar_resnet56 \(16, 3, 32, 32\): max \|Δp\| \S+\n", out), out
    assert float(re.search(r"max \|Δp\| (\S+)", out).group(1)) <= 1e-4
    for condition in ("quiet", "one competing process"):
        assert re.search(rf"  {condition} +contiguous +[\d.]+ samples/s, channels-last +[\d.]+: [\d.]+x", out), out
    assert "goal: channels-last >= contiguous" in out


def test_amp_takes_the_clis_words_and_booleans_and_refuses_others():
    import pytest

    from committee_tasks.core.devices import use_amp
    from committee_tasks.core.errors import CommitteeError
    from committee_tasks.engine.executor import MemberRunner

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [use_amp(cpu, a) for a in ("auto", "on", "off", True, False)] == [False, True, False, True, False]
    assert use_amp(cuda, "auto") and not use_amp(cuda, "off")  # "off" was truthy: autocast on
    assert MemberRunner("cpu", amp="off").amp is False  # what load_committee and CommitteeExecutor build
    for bad in ("maybe", 1, None):
        with pytest.raises(CommitteeError, match="choose 'auto'"):
            use_amp(cpu, bad)
