"""Shared fixtures. Tests never touch the user's caches: TORCH_HOME and the prediction cache point
into a per-session temporary folder. The real data in ../shared/data is read in place."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("COMMITTEE_TASKS_SHARED_DATA", REPO.parent / "shared" / "data"))


def was_measured(row: dict) -> bool:
    """A report row timed for real: its median throughput is reported, or flagged as noise (a
    committee measured faster than a member it runs in full) with the measurement kept."""
    median = row["measurement"]["throughput"]["median"]
    return median > 0 and (row["throughput"] == median or bool(row.get("measurement_flag")))


@pytest.fixture(scope="session", autouse=True)
def isolated_caches(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    saved = {k: os.environ.get(k) for k in ("TORCH_HOME", "COMMITTEE_TASKS_CACHE")}
    os.environ["TORCH_HOME"] = str(home / "torch")
    os.environ["COMMITTEE_TASKS_CACHE"] = str(home / "predictions")
    import torch

    torch.hub.set_dir(str(home / "torch" / "hub"))
    yield home
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "cifar10-test.npz").is_file():
        pytest.skip(f"real data not found at {SHARED_DATA} (set COMMITTEE_TASKS_SHARED_DATA to its folder); "
                    "a fresh clone without ../shared/data skips the real-model checks")
    return SHARED_DATA


@pytest.fixture(scope="session")
def main_job(isolated_caches, tmp_path_factory):
    """README command 1's main job, run once per session in a fresh folder: (outputs, stdout)."""
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("the main job runs .venv/bin/python: run tools/setup_env.sh (README command 2 does)")
    out = tmp_path_factory.mktemp("main-job") / "digits"
    done = subprocess.run(["bash", str(REPO / "tools" / "main_job.sh"), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout


@pytest.fixture(scope="session")
def classification():
    from committee_tasks import get_task

    return get_task("classification")


@pytest.fixture(scope="session")
def digits_members(classification, isolated_caches):
    """The three embedded-default CNNs, trained once per session (seeded, ~15 s)."""
    return {n: classification.build_member(n) for n in ("digits_cnn_s", "digits_cnn_m", "digits_cnn_l")}


def read_strict_json(path: Path):
    """A result file read as strict JSON (RFC 8259): a bare NaN or Infinity token fails."""
    import json

    def refuse(token):
        raise ValueError(f"{path}: {token} is not JSON")

    return json.loads(Path(path).read_text(), parse_constant=refuse)
