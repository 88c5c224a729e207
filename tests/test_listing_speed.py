"""`tools/eval.py --list-datasets` and `--list-models` print every built-in task's datasets and zoo
without importing a model library (torch, torchvision, pytorchvideo, mmseg, mmengine), in well
under a second; building a member or a dataset is where those come in."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

HEAVY = ("torch", "torchvision", "pytorchvideo", "mmseg", "mmengine", "mmcv")
SECONDS = 1.5  # the goal is 1 s; the margin is for a shared, loaded machine

# The CLI's main run in a fresh interpreter, as tools/eval.py runs it; reports what it printed,
# which heavy packages it imported and how long it took from the interpreter's start.
PROBE = f"""
import contextlib, io, json, sys
from committee_tasks.cli.eval import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
sys.__stdout__.write(json.dumps({{"code": code, "out": out.getvalue(), "heavy": heavy}}))
"""

needs_mmseg = pytest.mark.skipif(importlib.util.find_spec("mmseg") is None, reason="mmsegmentation not installed")

# The datasets listed (names; each line also says what it is) and lines the listings printed before
# the zoos stopped importing their libraries (same format, same figures), one per kind of entry:
# torchvision, CIFAR, digits, pytorchvideo, mmseg.
EXPECTED = {
    ("classification", "--list-datasets"): ["cifar10", "imagenet", "digits", "folder", "csv"],
    ("video", "--list-datasets"): ["kinetics400", "kinetics600", "kinetics700", "kinetics", "videos"],
    ("segmentation", "--list-datasets"): ["cityscapes", "ade20k", "folder"],
    ("classification", "--list-models"): [
        "resnet20                       cifar10      MACs=      – at 3x32x32 top-1=91.73",
        "resnet50                       imagenet     MACs=  4.09G at 3x224x224 top-1=80.858",
        "vit_b_16                       imagenet     MACs=  17.6G at 3x224x224 top-1=81.072",
        "digits_cnn_l                   digits       MACs=      – at 1x8x8 top-1=99.0",
    ],
    ("video", "--list-models"): [
        "x3d_m                          kinetics400  MACs=  4.73G per view at 3x16x224x224 views=10x3 top-1=75.94",
        "mvit_base_16x4                 kinetics400  MACs=  70.8G per view at 3x16x224x224 views=5x1 top-1=78.85",
    ],
    ("segmentation", "--list-models"): [
        "pspnet_r50-d8_4xb2-40k_cityscapes-512x1024 Cityscapes   MACs=      – mIoU=77.85",
        "segformer_mit-b0_8xb1-160k_cityscapes-1024x1024 Cityscapes   MACs=      – mIoU=76.54",
    ],
}
CASES = [pytest.param(task, flag, marks=needs_mmseg) if task == "segmentation" else (task, flag)
         for task, flag in EXPECTED]


def run_listing(*args: str) -> tuple[dict, float]:
    """What the probe reports, and the best wall time of two runs (the machine is shared)."""
    times = []
    for _ in range(2):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        times.append(time.perf_counter() - start)
        assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout), min(times)


@pytest.mark.parametrize("task, flag", CASES)
def test_listing_is_fast_and_imports_no_model_library(task, flag):
    report, seconds = run_listing("--task", task, flag)
    lines = report["out"].splitlines()
    assert report["code"] == 0
    assert report["heavy"] == [], f"{task} {flag} imported {report['heavy'][:5]}"
    expected = EXPECTED[(task, flag)]
    if flag == "--list-datasets":  # a line per dataset, its options indented below it
        assert [line.split()[0] for line in lines if not line.startswith(" ")] == expected
    else:
        assert [line for line in expected if line not in lines] == []
        assert lines == sorted(lines, key=lambda line: line.split()[0])  # sorted by name, one per model
    assert seconds < SECONDS, f"{task} {flag} took {seconds:.2f} s"


def test_a_pattern_lists_only_its_models():
    report, _ = run_listing("--list-models", "digits*")
    assert report["heavy"] == []
    assert [line.split()[0] for line in report["out"].splitlines()] == ["digits_cnn_l", "digits_cnn_m", "digits_cnn_s"]


def test_listing_the_zoo_in_process_imports_no_torch():
    """The plugin classes and their zoos: importable, listable and describable without torch."""
    code = ("import sys\nfrom committee_tasks.core.registry import get_task\n"
            "for name in ('classification', 'video'):\n"
            "    task = get_task(name)\n"
            "    assert task.list_models('*') and task.list_datasets()\n"
            "    entry = task.model_entry(task.list_models('*')[0])\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
