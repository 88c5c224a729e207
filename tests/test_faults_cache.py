"""Fault injection on the prediction cache: names that would escape the root, corrupt shards and
JSON files, impossible values, edited timing, expired skips, the output dtype as part of the key,
stray files, a full disk and an unwritable folder. Each case must end in a warning naming the file
(and the samples computed again) or one `CommitteeError` naming the file and the fix, never a
traceback, a bricked cache or a wrong number."""
from __future__ import annotations

import errno
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from committee_tasks import ArrayDataset, LoopOptions, Member, PredictionCache, evaluate_pool
from committee_tasks.core.errors import CommitteeError
from committee_tasks.engine import cache as cache_module
from committee_tasks.engine.loop import subset_indices

OPTIONS = dict(batch_size=8, num_workers=0, shard_size=16, progress=False)
N = 40  # samples: shards of 16, 16 and 8 per member


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch):
    """fsync makes writes durable, which these tests do not look at; without it they run faster."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 8x3 outputs: thread start-up costs more than the work
    yield
    torch.set_num_threads(threads)


def tiny_members() -> list[Member]:
    torch.manual_seed(0)
    return [Member.from_module(torch.nn.Linear(8, 3), name=name) for name in ("m0", "m1")]


class Flaky(ArrayDataset):
    """Samples whose index is in ``broken`` cannot be read (until the set is emptied)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.broken: set[int] = set()

    def __getitem__(self, index):
        if index in self.broken:
            raise PermissionError(f"Permission denied: sample {index}")
        return super().__getitem__(index)


def dataset() -> Flaky:
    rng = np.random.default_rng(0)
    return Flaky(rng.normal(size=(N, 8)).astype(np.float32), rng.integers(0, 3, N), name="tiny")


def count_calls(monkeypatch, members) -> dict[str, int]:
    calls = {m.name: 0 for m in members}
    for m in members:
        def predict(x, _orig=m.predict, _name=m.name):
            calls[_name] += len(x)
            return _orig(x)

        monkeypatch.setattr(m, "predict", predict)
    return calls


def run(task, root: Path, members=None, data=None, **options):
    members = members or tiny_members()
    return evaluate_pool(task, members, data or dataset(), PredictionCache(root),
                         options=LoopOptions(**{**OPTIONS, **options}))[0]


def shards_of(root: Path, member: str) -> list[Path]:
    return sorted(root.rglob(f"{member}-*/shard-*.npz"))


def rows(path: Path) -> int:
    with np.load(path) as data:
        return len(data["ids"])


def inside(root: Path, path: Path) -> bool:
    return os.path.commonpath([os.path.abspath(root), os.path.abspath(path)]) == os.path.abspath(root)


# 1. paths built from names are contained ---------------------------------------------------------

HOSTILE = ["../../../../X", "..", ".", ".hidden", "a/b", "a\\b", "a/../../b", "nul\x00byte", "tab\tand space",
           "", "x" * 400, "émoji🙂", "-dash"]


@pytest.mark.parametrize("name", HOSTILE + ["<absolute>"])
def test_names_stay_one_folder_inside_the_root(tmp_path, name):
    root = tmp_path / "root"
    name = str(tmp_path / "abs" / "X") if name == "<absolute>" else name
    cache = PredictionCache(root)
    folder = cache.dataset_folder(name, name, "f" * 64)
    member = cache.member(folder, name, "e" * 64, {"member": name})
    parts = member.folder.relative_to(root).parts  # <task>/<dataset>-<fp>/<member>-<fp>: one folder each
    assert len(parts) == 3 and all(len(p) < 256 and not p.startswith(".") for p in parts)
    member.write_shard({"ids": np.array(["0"]), "macs": np.array([1])})
    cache.record_dataset(folder, "f" * 64, {"0": "why"})
    assert {p.name for p in tmp_path.iterdir()} == {"root"}  # nothing written beside (or above) the root
    assert all(inside(root, p) for p in root.rglob("*"))


def test_valid_names_keep_their_folders(tmp_path):
    cache = PredictionCache(tmp_path)
    folder = cache.dataset_folder("classification", "cifar10-test", "a" * 64)
    assert folder == tmp_path / "classification" / f"cifar10-test-{'a' * 16}"
    assert cache.member(folder, "resnet20+x=1.b", "b" * 64, {}).folder == folder / f"resnet20+x=1.b-{'b' * 16}"


def test_a_folder_outside_the_root_is_refused(tmp_path):
    with pytest.raises(CommitteeError, match="outside the cache root"):
        PredictionCache(tmp_path / "root").member(tmp_path / "elsewhere", "m", "e" * 64, {})


def test_member_named_to_escape_stays_inside_end_to_end(classification, tmp_path):
    members = tiny_members()
    members[0].name = "../../../../X"
    members[1].name = str(tmp_path / "abs")
    preds = run(classification, tmp_path / "root", members)
    assert len(preds.ids) == N
    assert {p.name for p in tmp_path.iterdir()} == {"root"}


# 2. corrupt shards and JSON files are set aside and recomputed -----------------------------------

def truncate(p: Path):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def flip(p: Path):
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


def foreign(p: Path):
    np.savez(p, foo=np.arange(3))


def pickled(p: Path):
    import pickle
    p.write_bytes(pickle.dumps({"ids": ["0"]}))


def other_lengths(p: Path):
    with np.load(p) as data:
        arrays = dict(data)
    arrays["macs"] = arrays["macs"][:-1]
    np.savez(p, **arrays)


def edited_keeping_format(p: Path):
    """Plausible values changed, the old checksum kept (an edit, a bug elsewhere)."""
    with np.load(p) as data:
        arrays, comment = dict(data), data.zip.comment
    arrays["outputs"] = arrays["outputs"][:, ::-1].copy()  # still probabilities, but other ones
    import io
    import zipfile
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with zipfile.ZipFile(buffer, "a") as z:
        z.comment = comment
    p.write_bytes(buffer.getvalue())


CORRUPTIONS = {"truncated": truncate, "zero-byte": lambda p: p.write_bytes(b""), "bit-flipped": flip,
               "garbage": lambda p: p.write_bytes(os.urandom(500)), "foreign npz": foreign, "pickle": pickled,
               "other lengths": other_lengths, "checksum mismatch": edited_keeping_format,
               "directory": lambda p: (p.unlink(), p.mkdir())}


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_corrupt_shard_is_set_aside_and_recomputed(classification, tmp_path, monkeypatch, caplog, how):
    first = run(classification, tmp_path)
    shard = shards_of(tmp_path, "m0")[1]
    lost = rows(shard)
    CORRUPTIONS[how](shard)
    members = tiny_members()
    calls = count_calls(monkeypatch, members)
    with caplog.at_level(logging.WARNING):
        again = run(classification, tmp_path, members)
    assert calls == {"m0": lost, "m1": 0}
    assert str(shard) in caplog.text and "corrupt" in caplog.text
    assert [p.name.split(".")[0] for p in (shard.parent / "corrupt").iterdir()] == [shard.name.split(".")[0]]
    for name in first.outputs:
        np.testing.assert_array_equal(first.outputs[name], again.outputs[name])
    calls.update(m0=0)
    run(classification, tmp_path, members)  # healed: nothing more to compute, nothing to warn
    assert calls == {"m0": 0, "m1": 0}


def test_shards_without_checksum_are_still_read(classification, tmp_path, monkeypatch):
    first = run(classification, tmp_path)
    for shard in tmp_path.rglob("shard-*.npz"):  # rewritten as format 1 wrote them: no zip comment
        with np.load(shard) as data:
            arrays = dict(data)
        np.savez(shard, **arrays)
    members = tiny_members()
    calls = count_calls(monkeypatch, members)
    again = run(classification, tmp_path, members)
    assert calls == {"m0": 0, "m1": 0}
    np.testing.assert_array_equal(first.outputs["m0"], again.outputs["m0"])


JSON_FAULTS = {"garbage": b"\x00\xffnot json", "list": b"[1, 2, 3]", "string": b'"x"', "truncated": b'{"fingerp',
               "empty": b"", "no fingerprint": b"{}", "skipped not a map": b'{"fingerprint": "x", "skipped": [1]}'}


@pytest.mark.parametrize("which", ["manifest.json", "dataset.json"])
@pytest.mark.parametrize("fault", JSON_FAULTS)
def test_corrupt_json_is_set_aside(classification, tmp_path, monkeypatch, caplog, which, fault):
    run(classification, tmp_path)
    path = next(tmp_path.rglob(which))
    content = JSON_FAULTS[fault]
    if which == "manifest.json" and fault == "skipped not a map":
        content = content.replace(b'"x"', json.dumps(json.loads(path.read_text())["fingerprint"]).encode())
    path.write_bytes(content)
    members = tiny_members()
    calls = count_calls(monkeypatch, members)
    with caplog.at_level(logging.WARNING):
        preds = run(classification, tmp_path, members)
    assert len(preds.ids) == N and calls == {"m0": 0, "m1": 0}  # the shards are intact: nothing recomputed
    # whole files that are only incomplete are read (an empty dataset.json object is an empty
    # record; a manifest with its fingerprint but no timing has its timing ignored, with a
    # warning); the others are set aside, with a warning naming them
    if (which, fault) != ("dataset.json", "no fingerprint"):
        assert str(path) in caplog.text
    if (which, fault) not in {("dataset.json", "no fingerprint"), ("manifest.json", "skipped not a map")}:
        assert list((path.parent / "corrupt").iterdir())
    if which == "manifest.json":
        assert json.loads(path.read_text())["fingerprint"]  # written afresh


def test_manifest_of_another_member_is_an_error(classification, tmp_path):
    """A whole, verified manifest naming another fingerprint: the shards beside it may be another
    member's, so they are neither used nor moved; the error names the folder and the fix."""
    run(classification, tmp_path)
    path = next(tmp_path.rglob("m0-*/manifest.json"))
    path.write_text(json.dumps({"fingerprint": "0" * 64}))
    with pytest.raises(CommitteeError, match="belongs to another member; delete the folder"):
        run(classification, tmp_path)


def test_edited_json_fails_its_checksum(classification, tmp_path, caplog):
    data = dataset()
    data.broken = {3}
    run(classification, tmp_path, data=data)
    path = next(tmp_path.rglob("dataset.json"))
    info = json.loads(path.read_text())
    info["skipped"]["7"] = "edited in"
    path.write_text(json.dumps(info))
    with caplog.at_level(logging.WARNING):
        preds = run(classification, tmp_path, data=data)
    assert "checksum mismatch" in caplog.text and str(path) in caplog.text
    assert "7" in preds.ids.tolist()


def test_a_shard_copied_into_another_members_folder_is_set_aside(classification, tmp_path, caplog):
    """A shard of m1 copied into m0's folder (a careless rsync between nodes) was read as m0's
    outputs; each shard now records its member's fingerprint."""
    import shutil

    first = run(classification, tmp_path)
    foreign = shards_of(tmp_path, "m1")[0]
    target = shards_of(tmp_path, "m0")[0].parent / "shard-elsewhere-000000.npz"
    for shard in shards_of(tmp_path, "m0"):
        shard.unlink()
    shutil.copy(foreign, target)
    with caplog.at_level(logging.WARNING):
        again = run(classification, tmp_path)
    assert "written for another member" in caplog.text and str(target) in caplog.text
    np.testing.assert_array_equal(again.outputs["m0"], first.outputs["m0"])  # computed again, as m0's


# 3. impossible values are dropped and recomputed ---------------------------------------------------

def resave(shard: Path, change, keep_checksum: bool = False):
    with np.load(shard) as data:
        arrays = dict(data)
    change(arrays)
    if keep_checksum:  # as this toolkit writes a shard: the values are checked all the same
        cache_module.save_shard(shard, arrays)
    else:
        np.savez(shard, **arrays)


def set_row(value):
    def change(arrays):
        arrays["outputs"] = arrays["outputs"].copy()
        arrays["outputs"][3] = value
    return change


VALUES = {"nan": set_row(np.nan), "inf": set_row(np.inf), "negative": set_row(-0.5), "sums to 3": set_row(1.0),
          "one nan": lambda a: a["outputs"].__setitem__((3, 0), np.nan),
          "negative macs": lambda a: a["macs"].__setitem__(3, -1)}


CASES = [(v, False) for v in VALUES] + [(v, True) for v in ("nan", "inf", "one nan", "negative macs")]


@pytest.mark.parametrize("value,keep_checksum", CASES)
def test_impossible_values_are_dropped_and_recomputed(classification, tmp_path, monkeypatch, caplog, value,
                                                      keep_checksum):
    """A shard as format 1 wrote it, or (``keep_checksum``) as this toolkit writes one, whose
    values cannot be right. (A rewritten shard whose outputs are not probabilities is flagged so
    when written, and only checked for NaN, inf and negative MACs: see the sigmoid test.)"""
    first = run(classification, tmp_path)
    shard = shards_of(tmp_path, "m1")[0]
    resave(shard, VALUES[value], keep_checksum)
    members = tiny_members()
    calls = count_calls(monkeypatch, members)
    with caplog.at_level(logging.WARNING):
        again = run(classification, tmp_path, members)
    assert calls == {"m0": 0, "m1": 1}
    assert str(shard) in caplog.text
    for name in first.outputs:
        np.testing.assert_array_equal(first.outputs[name], again.outputs[name])
    assert np.isfinite(again.outputs["m1"]).all()
    calls.update(m1=0)
    caplog.clear()
    run(classification, tmp_path, members)  # healed: the shard was rewritten without the row
    assert calls == {"m0": 0, "m1": 0} and "corrupt" not in caplog.text


def test_outputs_that_never_were_probabilities_are_not_recomputed_forever(classification, tmp_path, monkeypatch):
    members = tiny_members()
    members[0].to_probs = torch.sigmoid  # a zoo entry declaring unnormalised "probabilities"
    run(classification, tmp_path, members)
    calls = count_calls(monkeypatch, members)
    run(classification, tmp_path, members)
    assert calls == {"m0": 0, "m1": 0}


# 4. invalid timing is not reported ---------------------------------------------------------------------

TIMINGS = {"negative seconds": {"samples": 10, "seconds": -1.0}, "zero seconds": {"samples": 10, "seconds": 0},
           "not numbers": {"samples": "many", "seconds": "fast"}, "nan": {"samples": 10, "seconds": float("nan")},
           "negative samples": {"samples": -5, "seconds": 1.0}, "not an object": [1, 2]}


@pytest.mark.parametrize("timing", TIMINGS)
def test_invalid_timing_is_ignored(classification, tmp_path, caplog, timing):
    run(classification, tmp_path)
    path = next(tmp_path.rglob("m0-*/manifest.json"))
    manifest = json.loads(path.read_text())
    del manifest["sha256"]  # as an earlier version wrote it: no checksum, so only validation stands guard
    manifest["timing"] = TIMINGS[timing]
    path.write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING):
        _, throughput = evaluate_pool(classification, tiny_members(), dataset(), PredictionCache(tmp_path),
                                      options=LoopOptions(**OPTIONS))
    assert throughput["m0"] is None and throughput["m1"] is not None
    assert "timing" in caplog.text and str(path) in caplog.text


def test_edited_timing_fails_the_checksum(classification, tmp_path, caplog):
    run(classification, tmp_path)
    path = next(tmp_path.rglob("m0-*/manifest.json"))
    manifest = json.loads(path.read_text())
    manifest["timing"].update(samples=164_907_473, seconds=1.0)
    path.write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING):
        _, throughput = evaluate_pool(classification, tiny_members(), dataset(), PredictionCache(tmp_path),
                                      options=LoopOptions(**OPTIONS))
    assert throughput["m0"] is None and "checksum mismatch" in caplog.text


# 5. skips are retried --------------------------------------------------------------------------------

def test_skipped_samples_are_retried(classification, tmp_path, monkeypatch):
    data = dataset()
    data.broken = {5, 6}
    first = run(classification, tmp_path, data=data)
    assert set(first.skipped) == {"5", "6"}
    members = tiny_members()
    calls = count_calls(monkeypatch, members)
    still = run(classification, tmp_path, members, data)  # still unreadable: no member runs
    assert set(still.skipped) == {"5", "6"} and calls == {"m0": 0, "m1": 0}
    data.broken = {6}  # sample 5 was fixed
    fixed = run(classification, tmp_path, members, data)
    assert calls == {"m0": 1, "m1": 1}
    assert set(fixed.skipped) == {"6"} and "5" in fixed.ids.tolist()
    assert set(json.loads(next(tmp_path.rglob("dataset.json")).read_text())["skipped"]) == {"6"}
    data.broken = set()
    more = run(classification, tmp_path, members, data, shard_size=4)
    assert not more.skipped and calls == {"m0": 2, "m1": 2}


def test_skips_are_retried_with_other_work(classification, tmp_path, monkeypatch):
    data = dataset()
    data.broken = {int(subset_indices(N, 20)[3])}  # a sample of the first, smaller run
    first, _ = evaluate_pool(classification, tiny_members(), data, PredictionCache(tmp_path), limit=20,
                             options=LoopOptions(**OPTIONS))
    assert len(first.skipped) == 1
    data.broken = set()
    preds = run(classification, tmp_path, data=data)  # the 20 new samples and the one skipped before
    assert not preds.skipped and len(preds.ids) == N


# 6. the output dtype is part of the key ----------------------------------------------------------------

def test_float32_outputs_have_their_own_folder(classification, tmp_path, monkeypatch):
    members = tiny_members()
    calls = count_calls(monkeypatch, members)
    half = run(classification, tmp_path, members)
    assert half.outputs["m0"].dtype == np.float16
    assert {p.parent.name for p in shards_of(tmp_path, "m0")} == {f"m0-{members[0].fingerprint[:16]}"}
    full = run(classification, tmp_path, members, output_dtype="float32")
    assert full.outputs["m0"].dtype == np.float32 and calls == {"m0": 2 * N, "m1": 2 * N}
    assert len({p.parent for p in shards_of(tmp_path, "m0")}) == 2
    again = run(classification, tmp_path, members)
    assert again.outputs["m0"].dtype == np.float16 and calls == {"m0": 2 * N, "m1": 2 * N}


# 7. stray files and one member's failing flush -----------------------------------------------------------

def test_stray_files_do_not_lose_outputs(classification, tmp_path, monkeypatch, caplog):
    members = tiny_members()
    original = members[1].predict

    def predict_and_litter(x):  # a stray file appears while the run goes on
        folder = next(tmp_path.rglob("m0-*"))
        (folder / "shard-foo.npz").write_text("not a shard")
        (folder / "notes.txt").write_text("mine")
        return original(x)

    monkeypatch.setattr(members[1], "predict", predict_and_litter)
    with caplog.at_level(logging.WARNING):
        preds = run(classification, tmp_path, members)
    assert len(preds.ids) == N
    assert "shard-foo.npz" in caplog.text
    assert sum(rows(s) for s in shards_of(tmp_path, "m0")) == N
    assert sum(rows(s) for s in shards_of(tmp_path, "m1")) == N


def test_a_failing_flush_does_not_keep_the_others_from_theirs(classification, tmp_path, monkeypatch):
    real = cache_module.MemberCache.write_shard

    def write_shard(self, arrays):
        if "/m0-" in str(self.folder):
            raise cache_module.write_error(self.folder / "shard-x.npz", OSError(errno.ENOSPC, "No space left"))
        return real(self, arrays)

    monkeypatch.setattr(cache_module.MemberCache, "write_shard", write_shard)
    with pytest.raises(CommitteeError, match="free space"):
        run(classification, tmp_path, shard_size=1000)  # everything waits for the final flush
    assert sum(rows(s) for s in shards_of(tmp_path, "m1")) == N


# 8. a full disk or an unwritable folder is a clear error; finished shards are kept ------------------------

def test_disk_full_is_an_error_that_keeps_finished_shards(classification, tmp_path, monkeypatch):
    real, writes = cache_module.atomic_write, []

    def atomic_write(path, write):
        if path.name.startswith("shard-"):
            writes.append(path)
            if len(writes) > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, write)

    monkeypatch.setattr(cache_module, "atomic_write", atomic_write)
    with pytest.raises(CommitteeError) as caught:
        run(classification, tmp_path)
    message = str(caught.value)
    assert "No space left on device" in message and "free space on" in message and "--cache-dir" in message
    assert ".npz" in message and str(tmp_path) in message
    kept = sorted(tmp_path.rglob("shard-*.npz"))
    assert len(kept) == 3 and not list(tmp_path.rglob("*.tmp"))
    monkeypatch.setattr(cache_module, "atomic_write", real)
    members = tiny_members()
    calls = count_calls(monkeypatch, members)
    run(classification, tmp_path, members)  # resumes from the kept shards
    assert sum(calls.values()) == 2 * N - sum(rows(s) for s in kept)


def test_manifest_write_failure_is_an_error(classification, tmp_path, monkeypatch):
    def atomic_write_json(path, obj):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(cache_module, "atomic_write_json", atomic_write_json)
    with pytest.raises(CommitteeError, match=r"manifest.json: Read-only file system; make .* writable"):
        run(classification, tmp_path)


READ_ONLY_RUN = """
import sys, numpy as np, torch
sys.path.insert(0, {tests!r})
from test_faults_cache import OPTIONS, dataset, tiny_members
from committee_tasks import LoopOptions, PredictionCache, evaluate_pool
from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.registry import get_task
members = tiny_members()[:{count}]
try:
    preds = evaluate_pool(get_task("classification"), members, dataset(), PredictionCache({root!r}),
                          options=LoopOptions(**OPTIONS))[0]
    print("read", len(preds.ids), float(preds.outputs["m0"].astype(np.float64).sum()))
except CommitteeError as err:
    print("refused:", err)
"""


def run_unprivileged(code: str) -> str:
    """``code`` in a process that permissions bind: as root (CI's containers), one without the
    capability to override them (``setpriv``), so a read-only folder is read-only to it too."""
    import shutil
    import subprocess
    import sys

    command = [sys.executable, "-c", code]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: nothing here can make a folder read-only to this process")
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def read_only(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(path.stat().st_mode & ~0o222)


def test_unwritable_cache_folder_is_an_error(tmp_path):
    folder = tmp_path / "unwritable"
    folder.mkdir()
    read_only(folder)
    tests = str(Path(__file__).resolve().parent)
    out = run_unprivileged(READ_ONLY_RUN.format(tests=tests, count=2, root=str(folder / "cache")))
    assert out.startswith("refused: cannot write the prediction cache in") and "--cache-dir memory" in out, out
    assert not (folder / "cache").exists()


def test_a_finished_cache_is_read_on_a_read_only_filesystem(classification, tmp_path):
    """A team's finished cache on a read-only share: read without locks or writes; a member it
    lacks is refused before anything runs, naming the folder."""
    expected = run(classification, tmp_path / "cache")
    read_only(tmp_path / "cache")
    before = sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "cache").rglob("*"))
    tests = str(Path(__file__).resolve().parent)
    out = run_unprivileged(READ_ONLY_RUN.format(tests=tests, count=2, root=str(tmp_path / "cache")))
    assert out == f"read {N} {float(expected.outputs['m0'].astype(np.float64).sum())}", out
    torch.manual_seed(1)
    other = run_unprivileged(READ_ONLY_RUN.format(tests=tests, count=2, root=str(tmp_path / "cache")).replace(
        "tiny_members()[:2]", "[*tiny_members(), __import__('committee_tasks').Member.from_module("
        "torch.nn.Linear(8, 3), name='m2')]"))
    assert other.startswith("refused: cannot write the prediction cache") and "/m2-" in other and "yet" in other, other
    assert sorted((p, p.stat().st_mtime_ns) for p in (tmp_path / "cache").rglob("*")) == before  # nothing written
