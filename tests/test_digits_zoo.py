"""The embedded default's checkpoints ship with the repository (same weights, same figures on every
machine), are checked like any zoo weight, and the script that trained them still trains models of
the recorded accuracy."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from committee_tasks import CommitteeError
from committee_tasks.core.zoo import hub_checkpoint_dir, sha256_of
from committee_tasks_builtin.classification.digits import top1_on_test_split
from committee_tasks_builtin.classification.digits_record import DIGITS_MODELS, WEIGHTS_DIR, load_record
from tests.conftest import REPO

TOLERANCE = 1.5  # top-1 points: training is not bit-reproducible across CPUs and thread counts


def test_shipped_checkpoints_match_their_record(classification):
    record = load_record()
    assert set(record) == set(DIGITS_MODELS)
    total = 0
    for name, r in record.items():
        path = WEIGHTS_DIR / r["file"]
        assert path.is_file() and sha256_of(path) == r["sha256"] and r["file"].startswith(f"{name}-{r['sha256'][:8]}")
        total += path.stat().st_size
        entry = classification.model_entry(name)
        assert entry.weights.path == path and entry.weights.sha256 == r["sha256"]
        assert entry.metrics["top-1"] == r["top-1"] and entry.params == r["params"]
        member = classification.build_member(name)
        assert member.weights_sha256 == r["sha256"]
        # the recorded top-1 is what these weights score on the test split (float32, CPU)
        assert top1_on_test_split(member.module) == pytest.approx(r["top-1"], abs=0.005)
    assert total < 1_000_000  # about half a megabyte in the repository
    assert not list(hub_checkpoint_dir().glob("digits_cnn_*"))  # nothing trained or copied on first use


def test_a_corrupt_copy_is_refused(classification, tmp_path):
    r = load_record()["digits_cnn_s"]
    bad = tmp_path / r["file"]
    shutil.copy(WEIGHTS_DIR / r["file"], bad)
    with open(bad, "r+b") as f:  # flip one byte of the weights
        f.seek(-10, 2)
        byte = f.read(1)
        f.seek(-10, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CommitteeError, match=f"has sha256 .* expected {r['sha256']}"):
        classification.build_member("digits_cnn_s", weights_dir=tmp_path)


def test_training_script_still_trains_models_of_the_recorded_accuracy(tmp_path):
    """tools/train_digits.py as shipped (2 threads here to save time; the weights used 1)."""
    done = subprocess.run([sys.executable, str(REPO / "tools" / "train_digits.py"), "--out", str(tmp_path),
                           "--threads", "2"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    trained, shipped = json.loads((tmp_path / "digits.json").read_text()), load_record()
    for name in DIGITS_MODELS:
        assert trained[name]["top-1"] == pytest.approx(shipped[name]["top-1"], abs=TOLERANCE), name
        assert trained[name]["params"] == shipped[name]["params"]
        state = torch.load(tmp_path / trained[name]["file"], weights_only=True)
        assert sha256_of(tmp_path / trained[name]["file"]) == trained[name]["sha256"] and state
        assert f"{name}" in done.stdout
    # the record says how they were made
    assert trained["digits_cnn_l"]["training"]["torch_threads"] == 2
    assert shipped["digits_cnn_l"]["training"]["torch_threads"] == 1
