"""Nothing runs when everything is cached: members described without being built, weight hashes
remembered, and the in-memory prediction cache."""
from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from committee_tasks import CommitteeError, LoopOptions, PredictionCache, evaluate_pool
from committee_tasks.core import zoo as zoo_module
from committee_tasks.core.member_spec import MemberSpec
from committee_tasks.core.members import Member
from committee_tasks.core.task import Task
from committee_tasks.core.weight_hashes import index_path
from committee_tasks.engine.cache import MemoryPredictionCache
from committee_tasks_builtin.classification import ClassificationTask
from committee_tasks_builtin.classification.datasets import DigitsDataset
from committee_tasks_builtin.classification.digits_record import WEIGHTS_DIR, load_record

OPTIONS = LoopOptions(batch_size=32, num_workers=0, shard_size=64, progress=False)
NAMES = ("digits_cnn_s", "digits_cnn_m")


class CopiedWeightsTask(ClassificationTask):
    """The digits zoo with entries ``copy_<name>`` whose weights are copies in a folder of the test's."""

    def __init__(self, folder: Path):
        self.folder = folder

    def zoo(self):
        zoo = dict(super().zoo())
        for name in NAMES:
            entry = zoo[name]
            path = self.folder / entry.weights.file_name
            zoo[f"copy_{name}"] = replace(entry, name=f"copy_{name}", weights=replace(entry.weights, path=path))
        return zoo


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh cache home (prediction cache and weight-hash memo) and copies of the shipped weights."""
    monkeypatch.setenv("COMMITTEE_TASKS_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "weights"
    weights.mkdir()
    for record in load_record().values():
        shutil.copy(WEIGHTS_DIR / record["file"], weights / record["file"])
    return tmp_path


@pytest.fixture
def hashes(monkeypatch):
    """Counts the files actually read to hash them."""
    calls: list[Path] = []
    original = zoo_module.hash_file
    monkeypatch.setattr(zoo_module, "hash_file", lambda path: calls.append(Path(path)) or original(path))
    return calls


def refuse_builds(monkeypatch, names=None):
    """Building a refused member (all when ``names`` is None) fails the test."""
    original = Task.build_member

    def build_member(self, name, weights_dir=None):
        if names is None or name in names:
            raise AssertionError(f"{name} was built")
        return original(self, name, weights_dir)

    monkeypatch.setattr(Task, "build_member", build_member)


def test_spec_fingerprint_is_the_built_members(home):
    task = CopiedWeightsTask(home / "weights")
    for name in ("digits_cnn_s", "copy_digits_cnn_m"):
        spec = task.describe_member(name)
        assert isinstance(spec, MemberSpec) and not spec.is_built
        member = spec.build()
        assert spec.is_built and spec.build() is member
        assert (spec.fingerprint, spec.weights_sha256, spec.transform_key, spec.num_classes) == (
            member.fingerprint, member.weights_sha256, member.transform_key, member.num_classes)


def test_cached_pool_builds_nothing_and_needs_no_weight_file(home, monkeypatch, caplog):
    task = CopiedWeightsTask(home / "weights")
    names = [f"copy_{n}" for n in NAMES]
    cache = PredictionCache(home / "predictions")
    build = Task.build_member
    small = task.describe_member(names[0])
    first, _ = evaluate_pool(task, [small], DigitsDataset(), cache, limit=64, options=OPTIONS)
    assert small.is_built

    # a second member joins: only it is built
    refuse_builds(monkeypatch, {names[0]})
    specs = [task.describe_member(n) for n in names]
    with caplog.at_level("INFO", logger="committee_tasks.engine.loop"):
        both, _ = evaluate_pool(task, specs, DigitsDataset(), cache, limit=64, options=OPTIONS)
    assert [s.is_built for s in specs] == [False, True]
    assert f"building 1 of 2 members (the rest are cached): {names[1]}" in caplog.text
    np.testing.assert_array_equal(both.outputs[names[0]], first.outputs[names[0]])

    # everything cached: no member built, and the weight files may be gone
    refuse_builds(monkeypatch)
    for file in (home / "weights").iterdir():
        file.unlink()
    specs = [task.describe_member(n) for n in names]
    again, _ = evaluate_pool(task, specs, DigitsDataset(), cache, limit=64, options=OPTIONS)
    assert not any(s.is_built for s in specs)
    for name in names:
        np.testing.assert_array_equal(again.outputs[name], both.outputs[name])
    assert again.fingerprints == both.fingerprints
    # a missing sample needs the member, whose missing file is then named
    with pytest.raises(CommitteeError, match="not found"):
        evaluate_pool(task, [replace(specs[0], builder=lambda: build(task, names[0]))],
                      DigitsDataset(), cache, limit=80, options=OPTIONS)


def test_weight_hashes_are_remembered_until_the_file_changes(home, hashes):
    task = CopiedWeightsTask(home / "weights")
    record = load_record()["digits_cnn_s"]
    path = home / "weights" / record["file"]
    first = task.describe_member("copy_digits_cnn_s")
    assert hashes == [path.resolve()]
    assert first.weights_sha256 == record["sha256"]
    # described and built again (also by another task object): no file is read again
    task.describe_member("copy_digits_cnn_s").build()
    CopiedWeightsTask(home / "weights").describe_member("copy_digits_cnn_s")
    assert len(hashes) == 1
    assert json.loads(index_path().read_text())["files"][str(path.resolve())]["sha256"] == record["sha256"]

    # same size, other content, later mtime: hashed again, and refused as not the recorded weights
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    stat = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert path.stat().st_size == stat.st_size
    with pytest.raises(CommitteeError, match=f"expected {record['sha256']}"):
        task.describe_member("copy_digits_cnn_s")
    assert len(hashes) == 2


@pytest.mark.parametrize("garbage", ["{not json", "[1, 2]", '{"format": 1, "files": 3}'])
def test_a_corrupt_hash_index_is_ignored_and_rewritten(home, hashes, garbage, caplog):
    index_path().parent.mkdir(parents=True, exist_ok=True)
    index_path().write_text(garbage)
    path = home / "weights" / load_record()["digits_cnn_s"]["file"]
    with caplog.at_level("WARNING"):
        digest = zoo_module.sha256_of(path)
    assert caplog.text.count("ignoring the") == 1  # said once, not again when re-read to be rewritten
    assert digest == load_record()["digits_cnn_s"]["sha256"] and len(hashes) == 1
    assert json.loads(index_path().read_text())["files"][str(path.resolve())]["sha256"] == digest
    assert zoo_module.sha256_of(path) == digest and len(hashes) == 1


def test_a_task_whose_build_disagrees_with_its_description_is_caught(home):
    class Renamed(ClassificationTask):
        def build_member(self, name, weights_dir=None) -> Member:
            member = super().build_member(name, weights_dir)
            member.num_classes = 11  # another key than describe_member computed
            return member

    with pytest.raises(CommitteeError, match="describe_member and build_member disagree"):
        Renamed().describe_member("digits_cnn_s").build()


def test_memory_cache_gives_the_disk_caches_predictions_and_writes_nothing(digits_members, tmp_path, monkeypatch):
    monkeypatch.setenv("COMMITTEE_TASKS_CACHE", str(tmp_path / "cache"))
    task = ClassificationTask()
    members = [copy.copy(m) for m in digits_members.values()]
    disk, disk_speed = evaluate_pool(task, members, DigitsDataset(), PredictionCache(tmp_path / "disk"),
                                     limit=100, options=OPTIONS)
    written = sorted(tmp_path.rglob("*"))
    memory = MemoryPredictionCache()
    mem, mem_speed = evaluate_pool(task, members, DigitsDataset(), memory, limit=100, options=OPTIONS)
    assert sorted(tmp_path.rglob("*")) == written
    assert set(mem_speed) == set(disk_speed) and all(v > 0 for v in mem_speed.values())
    np.testing.assert_array_equal(mem.ids, disk.ids)
    np.testing.assert_array_equal(mem.targets, disk.targets)
    for name in disk.outputs:
        np.testing.assert_array_equal(mem.outputs[name], disk.outputs[name])
        np.testing.assert_array_equal(mem.macs[name], disk.macs[name])
    assert mem.fingerprints == disk.fingerprints
    # the memory cache is a cache: a second pass runs nothing
    for m in members:
        monkeypatch.setattr(m, "predict", lambda x: pytest.fail("a cached member ran"))
    again, _ = evaluate_pool(task, members, DigitsDataset(), memory, limit=100, options=OPTIONS)
    np.testing.assert_array_equal(again.outputs[members[0].name], disk.outputs[members[0].name])


def test_video_members_are_described_with_their_view_exit_key(tmp_path, monkeypatch):
    pytest.importorskip("pytorchvideo", reason="the video extra is not installed")
    from committee_tasks_builtin.video import VideoTask
    from tests.video_fixtures import make_zoo

    monkeypatch.setenv("COMMITTEE_TASKS_CACHE", str(tmp_path / "cache"))
    zoo, weights = make_zoo(tmp_path)
    task = VideoTask()
    task.add_zoo_file(zoo)
    keys = set()
    for name in ("tiny_x3d_a", "tiny_x3d_a+exit0.8"):
        spec = task.describe_member(name, weights)
        assert spec.fingerprint == task.build_member(name, weights).fingerprint
        keys.add(spec.fingerprint)
    assert len(keys) == 2


def test_statistics_caching_pool_from_specs_and_memory_cache(tmp_path):
    """The subset-statistics path (outputs not cached): memory and disk agree, and a warm cache
    builds none of the described members."""
    from committee_tasks.core.member_spec import member_fingerprint
    from tests.test_statistics_cache import Maps, PixelAccuracy, members

    def specs(built):
        out = []
        for member in members():
            def build(m=member):
                built.append(m.name)
                return m
            out.append(MemberSpec(member.name, member.num_classes, member.weights_sha256, member.transform_key,
                                  member_fingerprint(member.weights_sha256, member.transform_key, member.num_classes),
                                  None, build))
        return out

    task, dataset, options = PixelAccuracy(), Maps(), LoopOptions(batch_size=4, num_workers=0, progress=False)
    built: list[str] = []
    disk, _ = evaluate_pool(task, specs(built), dataset, PredictionCache(tmp_path / "disk"), options=options)
    assert built == ["m0", "m1", "m2"]  # a subset's statistics need every member
    memory = MemoryPredictionCache()
    mem, _ = evaluate_pool(task, specs(built), dataset, memory, options=options)
    assert set(mem.subsets) == set(disk.subsets) and len(mem.subsets) == 6
    for key, record in disk.subsets.items():
        np.testing.assert_array_equal(mem.subsets[key].statistics, record.statistics)
        np.testing.assert_array_equal(mem.subsets[key].confidence["max_prob"], record.confidence["max_prob"])
    built.clear()
    for cache in (memory, PredictionCache(tmp_path / "disk")):
        evaluate_pool(task, specs(built), dataset, cache, options=options)
    assert built == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk"]
