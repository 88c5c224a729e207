"""One evaluation shared between processes: --shard I/N, torchrun ranks, and writers of one cache
at once. Every way gives the single-process report exactly, and the cached outputs bit for bit."""
from __future__ import annotations

import copy
import json
import logging
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from committee_tasks import LoopOptions, PredictionCache, evaluate_pool
from committee_tasks.core.threads import available_cpus
from committee_tasks.core.errors import CommitteeError, ShareDone
from committee_tasks.engine.distributed import Share
from committee_tasks_builtin.classification.datasets import DigitsDataset

REPO = Path(__file__).resolve().parents[1]
OPTIONS = dict(batch_size=32, num_workers=0, shard_size=64, progress=False)
EVAL = ["--dataset", "digits", "--models", "digits_cnn_s,digits_cnn_m", "--cascade", "digits_cnn_s,digits_cnn_m",
        "--thresholds", "0.9", "--limit", "300", "--measure-samples", "0", "--no-progress", "--device", "cpu",
        "--workers", "0"]


def cached_outputs(root: Path) -> dict[str, dict[str, np.ndarray]]:
    """Every member's cached arrays, rows sorted by sample id."""
    found = {}
    for folder in sorted(p for p in root.rglob("manifest.json")):
        shards = [np.load(s) for s in sorted(folder.parent.glob("shard-*.npz"))]
        arrays = {k: np.concatenate([s[k] for s in shards]) for k in shards[0].files}
        order = np.argsort(arrays["ids"], kind="stable")
        found[folder.parent.name] = {k: v[order] for k, v in arrays.items()}
    return found


def same_cache(first: Path, second: Path) -> None:
    a, b = cached_outputs(first), cached_outputs(second)
    assert a.keys() == b.keys() and a
    for member in a:
        assert len(set(a[member]["ids"].tolist())) == len(a[member]["ids"])  # every sample exactly once
        for key in a[member]:
            np.testing.assert_array_equal(a[member][key], b[member][key], err_msg=f"{member} {key}")


def same_report(first: Path, second: Path) -> None:
    rows = [{r["name"]: r for r in json.loads(p.read_text())["rows"]} for p in (first, second)]
    assert rows[0].keys() == rows[1].keys()
    for name, row in rows[0].items():
        other = rows[1][name]
        for key in ("metric", "metric_ci", "delta_metric", "delta_ci", "macs_mean", "macs_worst", "speedup_macs"):
            assert row[key] == other[key], (name, key)


def run_eval(args, cache: Path, env=None, launcher=()) -> subprocess.CompletedProcess:
    env = {**os.environ, "COMMITTEE_TASKS_CACHE": str(cache), **(env or {})}
    return subprocess.run([*(launcher or [sys.executable]), str(REPO / "tools" / "eval.py"), *args],
                          capture_output=True, text=True,
                          env=env, timeout=600, cwd=REPO)


def members_of(digits_members):
    return [copy.copy(m) for m in digits_members.values()]


def test_shares_computed_one_after_another_give_the_single_process_pool(classification, digits_members, tmp_path):
    single, _ = evaluate_pool(classification, members_of(digits_members), DigitsDataset(),
                              PredictionCache(tmp_path / "single"), limit=300, options=LoopOptions(**OPTIONS))
    shared = PredictionCache(tmp_path / "shared")
    for index, size in ((0, 108), (1, 96)):  # blocks of one batch (32) of the 300 samples
        with pytest.raises(ShareDone, match=f"share {index}/3: computed {size} samples"):
            evaluate_pool(classification, members_of(digits_members), DigitsDataset(), shared, limit=300,
                          options=LoopOptions(**OPTIONS, share=Share(index, 3)))
    union, _ = evaluate_pool(classification, members_of(digits_members), DigitsDataset(), shared, limit=300,
                             options=LoopOptions(**OPTIONS, share=Share(2, 3)))  # the last share: goes on
    np.testing.assert_array_equal(union.ids, single.ids)
    for name in single.outputs:
        np.testing.assert_array_equal(union.outputs[name], single.outputs[name])
        np.testing.assert_array_equal(union.macs[name], single.macs[name])
    same_cache(tmp_path / "single", tmp_path / "shared")


def test_shares_of_other_batch_sizes_name_the_shares_that_hold_what_is_missing(classification, digits_members,
                                                                              tmp_path):
    """Shares split by batches: share 0/2 in batches of 128 and 1/2 in batches of 64 leave samples
    in no share that ran, and each said to run "the other shares", which computed nothing."""
    shared = PredictionCache(tmp_path / "shared")
    options = {**OPTIONS, "shard_size": 4096}

    def share(index, batch):
        evaluate_pool(classification, members_of(digits_members), DigitsDataset(), shared, limit=512,
                      options=LoopOptions(**{**options, "batch_size": batch}, share=Share(index, 2)))

    with pytest.raises(ShareDone, match=r"share 0/2: computed 256 samples; 256 .* in share\(s\) 1/2 of this split"):
        share(0, 128)
    with pytest.raises(ShareDone, match=r"share 1/2: computed 128 samples; 128 .* in share\(s\) 0/2 of this split "
                                        r"\(batches of 64\).*same --batch-size and --limit"):
        share(1, 64)
    share(0, 64)  # as it says: the union is complete, the pool goes on


def test_an_interrupted_share_computes_only_what_it_lacks(classification, digits_members, tmp_path, monkeypatch):
    cache = PredictionCache(tmp_path)
    members = members_of(digits_members)
    calls = {"n": 0}
    original = members[1].predict

    def failing(x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed mid-run: the shards flushed so far stay
        return original(x)

    monkeypatch.setattr(members[1], "predict", failing)
    with pytest.raises(KeyboardInterrupt):
        evaluate_pool(classification, members, DigitsDataset(), cache, limit=300,
                      options=LoopOptions(**OPTIONS, share=Share(0, 2)))
    done, share = len(cache_ids(tmp_path, "digits_cnn_m")), sum(Share(0, 2).holds(p, 32) for p in range(300))
    assert 0 < done < share == 160
    counted = {m.name: 0 for m in members_of(digits_members)}
    members = members_of(digits_members)
    for m in members:
        monkeypatch.setattr(m, "predict", lambda x, _o=m.predict, _n=m.name: counted.__setitem__(_n, counted[_n] + len(x))
                            or _o(x))
    with pytest.raises(ShareDone):
        evaluate_pool(classification, members, DigitsDataset(), cache, limit=300,
                      options=LoopOptions(**OPTIONS, share=Share(0, 2)))
    assert counted["digits_cnn_m"] == share - done  # only what the interrupted share lacked
    assert len(set(cache_ids(tmp_path, "digits_cnn_m"))) == len(cache_ids(tmp_path, "digits_cnn_m")) == share


def cache_ids(root: Path, member: str) -> list[str]:
    return [sid for s in root.rglob(f"{member}-*/shard-*.npz") for sid in np.load(s)["ids"].tolist()]


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """The single-process run every shared run is compared with: its folder (report, cache)."""
    folder = tmp_path_factory.mktemp("single")
    done = run_eval([*EVAL, "--json", str(folder / "single.json")], folder / "cache")
    assert done.returncode == 0, done.stderr
    return folder


def test_shard_option_on_the_command_line_then_the_union(single, tmp_path):
    first = run_eval([*EVAL, "--shard", "0/2", "--json", str(tmp_path / "shared.json")], tmp_path / "shared")
    assert first.returncode == 0, first.stderr
    assert "share 0/2: computed" in first.stdout and not (tmp_path / "shared.json").exists()
    second = run_eval([*EVAL, "--shard", "1/2", "--json", str(tmp_path / "shared.json")], tmp_path / "shared")
    assert second.returncode == 0, second.stderr
    same_report(single / "single.json", tmp_path / "shared.json")
    same_cache(single / "cache", tmp_path / "shared")
    bad = run_eval([*EVAL, "--shard", "2/2"], tmp_path / "bad")
    assert bad.returncode == 2 and "0 <= I < N, got 2/2" in bad.stderr


def test_torchrun_with_two_ranks_equals_one_process(single, tmp_path):
    launcher = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
    ranks = run_eval([*EVAL, "--json", str(tmp_path / "ranks.json")], tmp_path / "ranks", launcher=launcher,
                     env={"OMP_NUM_THREADS": "1"})
    assert ranks.returncode == 0, ranks.stdout + ranks.stderr
    assert "rank 1 of 2: computed" in ranks.stdout
    same_report(single / "single.json", tmp_path / "ranks.json")
    same_cache(single / "cache", tmp_path / "ranks")
    rows = json.loads((tmp_path / "ranks.json").read_text())["rows"]
    # rank 0 reports (and measures) alone after the barrier: on every CPU, not its rank's share
    threads = json.loads((tmp_path / "ranks.json").read_text())["provenance"]["threads"]
    assert threads["local_ranks"] == 1 and threads["torch"] == threads["cpus_available"] == available_cpus()
    assert threads["world_size"] == 2  # the job's size, which local_ranks no longer says
    per_rank = [r["throughput_eval_loop_by_writer"] for r in rows if r["kind"] == "member"]
    assert per_rank and all(len(w) == 2 and all(v > 0 for v in w.values()) for w in per_rank)  # each rank's own
    assert all(sorted(re.search(r"-(rank\dof2)-", w).group(1) for w in writers) == ["rank0of2", "rank1of2"]
               for writers in per_rank)  # named by rank, to tell whose figure is whose
    printed = re.findall(r"digits_cnn_\w: evaluation loop samples/s per writer: \S+-rank0of2-\S+ [\d.]+, "
                         r"\S+-rank1of2-\S+ [\d.]+ \(over all: [\d.]+\)", ranks.stdout)
    assert len(printed) == 2, ranks.stdout  # under the table too, for each member


def test_two_processes_writing_one_cache_at_once(single, tmp_path):
    """Both compute every sample at the same time: no shard is lost or half-read, the union is
    read once per sample (the first shard's copy, identical), and the report is the single one."""
    env = {**os.environ, "COMMITTEE_TASKS_CACHE": str(tmp_path / "both")}
    runs = [subprocess.Popen([sys.executable, str(REPO / "tools" / "eval.py"), *EVAL, "--json", str(tmp_path / f"run{i}.json")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
            for i in range(2)]
    for run in runs:
        out, err = run.communicate(timeout=600)
        assert run.returncode == 0, err
    for i in range(2):
        same_report(single / "single.json", tmp_path / f"run{i}.json")
    again = run_eval([*EVAL, "--json", str(tmp_path / "again.json")], tmp_path / "both")
    assert again.returncode == 0
    same_report(single / "single.json", tmp_path / "again.json")
    shards = list((tmp_path / "both").rglob("shard-*.npz"))
    assert len({s.name.rsplit("-", 1)[0] for s in shards}) >= 2  # two writers, names apart


def test_a_sample_two_writers_computed_is_read_from_the_first_shard(tmp_path, caplog):
    from committee_tasks.engine.cache import MemberCache

    cache = MemberCache(tmp_path / "m", "f" * 64, {"member": "m"})
    ids = np.array(["a", "b"])
    cache.write_shard({"ids": ids, "outputs": np.array([[1.0], [2.0]], np.float16)})
    other = MemberCache(tmp_path / "m", "f" * 64, {"member": "m"})  # a second writer of the same folder
    other.write_shard({"ids": ids[1:], "outputs": np.array([[5.0]], np.float16)})
    first_by_name = sorted((tmp_path / "m").glob("shard-*.npz"))[0]
    expected = dict(zip(np.load(first_by_name)["ids"].tolist(), np.load(first_by_name)["outputs"][:, 0].tolist()))
    with caplog.at_level(logging.WARNING):
        loaded = cache.load(["b", "a"])
    assert loaded["outputs"][0, 0] == expected["b"] and loaded["outputs"][1, 0] == 1.0
    assert "1 samples were computed by two writers" in caplog.text and "NOT identical" in caplog.text


def _add_timings(folder: str, rounds: int) -> None:
    from committee_tasks.engine.cache import MemberCache

    cache = MemberCache(Path(folder), "f" * 64, {"member": "m"})
    for _ in range(rounds):
        cache.add_timing(1, 0.5, "cpu", 8)


def test_manifest_updates_from_concurrent_writers_are_not_lost(tmp_path):
    workers = [multiprocessing.get_context("fork").Process(target=_add_timings, args=(str(tmp_path), 40))
               for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["timing"]["samples"] == 120 and manifest["timing"]["seconds"] == pytest.approx(60.0)
    by_writer = manifest["timing"]["by_writer"]  # each writer's own throughput (a rank's, a shard's)
    assert len(by_writer) == 3 and all(w["samples"] == 40 for w in by_writer.values())


def test_statistics_caching_tasks_share_the_same_way(tmp_path):
    """Subset statistics (segmentation's cache) computed in 2 shares equal one process's."""
    from tests.test_statistics_cache import Maps, PixelAccuracy, members as toy_members

    task, dataset = PixelAccuracy(), Maps()
    options = dict(batch_size=2, num_workers=0, progress=False)
    single, _ = evaluate_pool(task, toy_members(), dataset, PredictionCache(tmp_path / "single"),
                              options=LoopOptions(**options))
    shared = PredictionCache(tmp_path / "shared")
    with pytest.raises(ShareDone, match="share 0/2: computed 6 samples"):  # batches of 2: places 0-1, 4-5, 8-9
        evaluate_pool(task, toy_members(), dataset, shared, options=LoopOptions(**options, share=Share(0, 2)))
    union, _ = evaluate_pool(task, toy_members(), dataset, shared, options=LoopOptions(**options, share=Share(1, 2)))
    assert union.subsets.keys() == single.subsets.keys()
    for key, record in single.subsets.items():
        np.testing.assert_array_equal(union.subsets[key].statistics, record.statistics)
        for name, values in record.confidence.items():
            np.testing.assert_array_equal(union.subsets[key].confidence[name], values)
    same_cache(tmp_path / "single", tmp_path / "shared")


def test_search_under_torchrun_equals_one_process(tmp_path):
    """tools/search.py evaluates through the same loop: 2 ranks, rank 0 searches and reports."""
    args = ["--dataset", "digits", "--pool", "digits_cnn_s,digits_cnn_m,digits_cnn_l", "--no-progress", "--device",
            "cpu", "--workers", "0"]

    def search(out: str, cache: str, launcher=()):
        env = {**os.environ, "COMMITTEE_TASKS_CACHE": str(tmp_path / cache), "OMP_NUM_THREADS": "1"}
        return subprocess.run([*(launcher or [sys.executable]), str(REPO / "tools" / "search.py"), *args, "--json",
                               str(tmp_path / out)], capture_output=True, text=True, env=env, timeout=600, cwd=REPO)

    single = search("single.json", "single")
    assert single.returncode == 0, single.stderr
    ranks = search("ranks.json", "ranks", (sys.executable, "-m", "torch.distributed.run", "--standalone",
                                            "--nproc_per_node", "2"))
    assert ranks.returncode == 0, ranks.stdout + ranks.stderr
    assert "rank 1 of 2: computed" in ranks.stdout
    one, two = (json.loads((tmp_path / f).read_text()) for f in ("single.json", "ranks.json"))
    assert one["front"] == two["front"] and one["references"] == two["references"]
    same_cache(tmp_path / "single", tmp_path / "ranks")


def test_a_per_position_confidence_does_not_depend_on_the_batch():
    """A sample's mean over 65,536 positions, alone or batched with others, to the last bit
    (torch's batched mean sums in another order: resumed runs and shares would differ)."""
    import torch

    from committee_tasks.committees.confidence import max_prob_t

    torch.manual_seed(0)
    probs = torch.rand(8, 3, 256, 256)
    batched = max_prob_t(probs)
    assert all(max_prob_t(probs[i:i + 1])[0] == batched[i] for i in range(len(probs)))


def _rank_process(cache: Path, rank: int) -> int | None:
    """The pid of the torchrun worker of ``rank`` writing ``cache`` (read from /proc)."""
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            entries = set(environ.read_bytes().split(b"\0"))
        except OSError:  # gone, or another user's
            continue
        if f"COMMITTEE_TASKS_CACHE={cache}".encode() in entries and f"RANK={rank}".encode() in entries:
            return int(environ.parent.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process in /proc (Linux)")
def test_a_rank_killed_mid_run_then_a_rerun_computes_only_what_is_missing(tmp_path):
    """kill -9 of rank 1 while both ranks compute: torchrun stops rank 0 with SIGTERM, which
    writes what it computed (exit 143); rank 1 keeps the outputs it flushed (every 0.2 s). The
    rerun computes only the missing samples, and its report and cache equal one process's.

    Each rank is paused (SIGSTOP) at its first write until the other has written too: the ranks
    start up to seconds apart on 2 busy cores and a share takes about a second, so without the
    pause one rank sometimes finished its share before the other had begun."""
    import signal
    import time

    args = [*EVAL[:EVAL.index("--limit")], "--limit", "1797", *EVAL[EVAL.index("--limit") + 2:],
            "--batch-size", "1", "--flush-seconds", "0.2"]
    single = run_eval([*args, "--json", str(tmp_path / "single.json")], tmp_path / "single")
    assert single.returncode == 0, single.stderr
    cache = tmp_path / "ranks"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "COMMITTEE_TASKS_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen([*launcher, str(REPO / "tools" / "eval.py"), *args], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    deadline, paused, killed = time.monotonic() + 300, {}, None
    try:
        while killed is None and job.poll() is None and time.monotonic() < deadline:
            writers = {s.name.split("-")[-3] for s in cache.rglob("shard-*.npz")}
            for rank in {0, 1} - set(paused):
                if (pid := _rank_process(cache, rank)) and str(pid) in writers:
                    os.kill(pid, signal.SIGSTOP)  # it has written outputs and has more to compute
                    paused[rank] = pid
            if len(paused) == 2:
                os.kill(paused[1], signal.SIGKILL)
                killed = paused[1]
                os.kill(paused[0], signal.SIGCONT)  # torchrun's SIGTERM finds it computing
            time.sleep(0.02)
    finally:
        if killed is None:
            for pid in paused.values():  # never leave a stopped rank behind
                os.kill(pid, signal.SIGKILL)
    output = job.communicate(timeout=300)[0]
    assert killed, f"rank 1 finished before it could be killed:\n{output}"
    assert job.returncode != 0 and "terminated (SIGTERM)" in output, output  # rank 0 stopped, its work written
    kept = {m: ids for m in ("digits_cnn_s", "digits_cnn_m") if (ids := cache_ids(cache, m))}
    assert kept and all(0 < len(ids) < 1797 for ids in kept.values()), {m: len(i) for m, i in kept.items()}
    writers = {s.name.split("-")[-3] for s in cache.rglob("shard-*.npz")}
    assert str(killed) in writers and len(writers) == 2  # both ranks' outputs survived

    from committee_tasks.engine.loop import subset_indices

    every = DigitsDataset().ids
    ids = [every[i] for i in subset_indices(len(every), 1797)]  # --limit 1797: the samples asked for, in place order
    cached = [set(k) for k in kept.values()] if len(kept) == 2 else [set()]
    missing = [place for place, sid in enumerate(ids) if not all(sid in c for c in cached)]
    rerun = run_eval([*args, "--json", str(tmp_path / "ranks.json")], cache, launcher=launcher,
                     env={"OMP_NUM_THREADS": "1"})
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rank1 = sum(Share(1, 2).holds(place, 1) for place in missing)  # rank 1's share of what was missing
    assert 0 < rank1 < len(missing) < 1797
    assert f"rank 1 of 2: computed {rank1} samples" in rerun.stdout, rerun.stdout
    same_report(tmp_path / "single.json", tmp_path / "ranks.json")
    same_cache(tmp_path / "single", cache)  # every sample exactly once, bit for bit


def test_identical_copies_of_two_writers_are_warned_about_once(tmp_path, caplog):
    """Every later run warned again about the same identical copies, for ever; now once, then
    quietly, and again only when other copies appear."""
    from committee_tasks.engine.cache import MemberCache

    ids = np.array(["a", "b"])
    outputs = np.array([[1.0], [2.0]], np.float16)
    MemberCache(tmp_path / "m", "f" * 64, {"member": "m"}).write_shard({"ids": ids, "outputs": outputs})
    MemberCache(tmp_path / "m", "f" * 64, {"member": "m"}).write_shard({"ids": ids[1:], "outputs": outputs[1:]})
    warned = []
    for _ in range(3):  # three later runs
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            MemberCache(tmp_path / "m", "f" * 64, {"member": "m"}).load(["a", "b"])
        warned.append("computed by two writers" in caplog.text)
    assert warned == [True, False, False]
    MemberCache(tmp_path / "m", "f" * 64, {"member": "m"}).write_shard({"ids": ids[:1], "outputs": outputs[:1]})
    with caplog.at_level(logging.WARNING):
        MemberCache(tmp_path / "m", "f" * 64, {"member": "m"}).load(["a", "b"])
    assert "2 samples were computed by two writers" in caplog.text


def test_an_incomplete_torchrun_environment_and_a_missing_gpu_are_named(monkeypatch):
    """A job template exporting WORLD_SIZE, or a subprocess of a torchrun script, failed inside torch
    (KeyError 'RANK', MASTER_ADDR expected); --device cuda under torchrun on a CPU node failed
    in torch.cuda.set_device in every rank."""
    from committee_tasks.engine.distributed import Rank, rank_device, torchrun_rank

    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(CommitteeError, match="WORLD_SIZE=2 is set but RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT not"):
        torchrun_rank()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(CommitteeError, match="WORLD_SIZE='two' in the environment is not a whole number"):
        torchrun_rank()
    for name, value in (("WORLD_SIZE", "2"), ("RANK", "1"), ("LOCAL_RANK", "1"), ("MASTER_ADDR", "h"),
                        ("MASTER_PORT", "1")):
        monkeypatch.setenv(name, value)
    assert torchrun_rank() == Rank(1, 2, 1)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert torchrun_rank() is None
    if not torch.cuda.is_available():
        with pytest.raises(CommitteeError, match="device 'cuda' requested but CUDA is not available; use --device cpu"):
            rank_device(Rank(1, 2, 1), "cuda")
    assert rank_device(Rank(1, 2, 1), "cpu") == "cpu"
    # more ranks than GPUs on a machine: named, with both fixes (fewer ranks, or ranks sharing cuda:0)
    import committee_tasks.core.devices as devices

    monkeypatch.setattr(devices, "resolve_device", lambda device: torch.device(device))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert rank_device(Rank(0, 2, 0), "cuda") == "cuda:0"
    with pytest.raises(CommitteeError, match=r"local rank 1 on its machine, which has 1 CUDA device\(s\): --device "
                       r"cuda gives each rank its own GPU, so --nproc_per_node at most 1; or --device cuda:0"):
        rank_device(Rank(1, 2, 1), "cuda")
    assert rank_device(Rank(1, 2, 1), "cuda:0") == "cuda:0"  # both ranks share it (gloo's barrier allows that)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_rank_waiting_for_its_peers_still_ends_on_sigterm_and_ctrl_c(tmp_path, signum):
    """A process with torchrun's environment whose peers never come (a wrong launcher or
    --nproc_per_node) waits inside torch.distributed's C++ rendezvous, where Python's handlers
    never run: SIGTERM and Ctrl-C did nothing for up to the 7-day barrier timeout."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "COMMITTEE_TASKS_CACHE": str(tmp_path / "cache")}
    process = subprocess.Popen([sys.executable, str(REPO / "tools" / "eval.py"), *EVAL], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:  # rank 0 serves the rendezvous' store once it waits in it
            assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(1)
        process.send_signal(signum)
        assert process.wait(timeout=30) == -signum  # the default action: it ends at once
    finally:
        process.kill()
        process.wait()
