"""Throughput measured like a benchmark: interleaved rounds, paired speedups, spread, noise flags,
and the thread policy."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from committee_tasks import CommitteeError
from committee_tasks.engine.timing import Measured, implausible, measure_interleaved, relative_iqr, spread


def _fake_runs(rates: dict[str, list[float]], log: list[str]):
    """Rows whose k-th run reports rates[name][k] samples/s (100 samples), recording run order."""
    counters = {name: 0 for name in rates}

    def make(name):
        def run():
            log.append(name)
            rate = rates[name][counters[name]]
            counters[name] += 1
            return 100, 100 / rate
        return run
    return {name: make(name) for name in rates}


def test_rounds_interleave_rows_and_rotate_the_start():
    log: list[str] = []
    rates = {"ref": [100.0] * 4, "a": [200.0] * 4, "b": [50.0] * 4}
    measure_interleaved(_fake_runs(rates, log), "ref", rounds=4)
    assert [log[i:i + 3] for i in range(0, 12, 3)] == [["ref", "a", "b"], ["a", "b", "ref"], ["b", "ref", "a"],
                                                       ["ref", "a", "b"]]


def test_speedups_are_paired_per_round():
    """Load that halves everything in one round leaves that round's ratio alone: the paired
    median is exact, while a ratio of medians would not be."""
    rates = {"ref": [100.0, 50.0, 100.0, 40.0, 100.0], "c": [250.0, 125.0, 250.0, 100.0, 250.0]}
    measured = measure_interleaved(_fake_runs(rates, []), "ref", rounds=5)
    assert measured["c"].speedups == pytest.approx([2.5] * 5)
    assert measured["c"].speedup["median"] == pytest.approx(2.5) and not measured["c"].noisy
    assert measured["c"].throughput == {"median": 250.0, "q1": 125.0, "q3": 250.0, "min": 100.0, "max": 250.0,
                                        "rounds": 5}
    assert measured["ref"].speedups == pytest.approx([1.0] * 5)


def test_a_wide_spread_is_noisy():
    rates = {"ref": [100.0] * 5, "c": [200.0, 300.0, 150.0, 260.0, 180.0]}
    measured = measure_interleaved(_fake_runs(rates, []), "ref", rounds=5)
    assert relative_iqr(measured["c"].speedup) > 0.1 and measured["c"].noisy


def test_committees_faster_than_members_they_must_run_are_flagged():
    m = {name: Measured(name, [rate] * 3, [1.0] * 3) for name, rate in
         (("a", 1000.0), ("b", 400.0), ("ens", 500.0), ("cas", 1200.0), ("cas_ok", 900.0))}
    flag = implausible("ensemble", ["a", "b"], m["ens"], m)
    assert flag.startswith("measured faster than its member b (500 vs 400 samples/s)") and "timing noise" in flag
    assert implausible("ensemble", ["a", "b"], Measured("e", [300.0] * 3, [1.0] * 3), m) is None
    # a cascade runs its first member on every sample; later members only on some
    assert "its member a" in implausible("cascade", ["a", "b"], m["cas"], m)
    assert implausible("cascade", ["a", "b"], m["cas_ok"], m) is None
    # every sample exiting at the first stage: as fast as that member, within the measurement's noise
    assert implausible("cascade", ["a", "b"], Measured("c", [1015.0] * 3, [1.0] * 3), m) is None
    assert implausible("cascade", ["a", "b"], Measured("c", [900.0, 1100.0, 1150.0], [1.0] * 3), m) is None
    assert implausible("ensemble", ["a"], Measured("e", [1001.0] * 3, [1.0] * 3), m) is not None
    assert implausible("member", ["a"], m["a"], m) is None


def test_bad_measurement_requests():
    with pytest.raises(CommitteeError, match="--measure-rounds must be at least 1, got 0"):
        measure_interleaved({"a": lambda: (1, 1.0)}, "a", rounds=0)
    with pytest.raises(CommitteeError, match="the reference 'z' is not among the measured rows"):
        measure_interleaved({"a": lambda: (1, 1.0)}, "z")


def test_spread_of_one_round():
    assert spread([7.0]) == {"median": 7.0, "q1": 7.0, "q3": 7.0, "min": 7.0, "max": 7.0, "rounds": 1}


def _python(code: str, env: dict) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True).stdout.strip()


def test_thread_policy_sets_passive_waiting_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = ("import committee_tasks, os; from committee_tasks.core.threads import thread_settings; "
            "print(os.environ['OMP_WAIT_POLICY'], thread_settings()['omp_wait_policy'])")
    assert _python(code, env) == "PASSIVE PASSIVE"
    # torch loaded first: its OpenMP runtime never saw the setting, and provenance says so
    late = _python("import torch; " + code, env)
    assert late == "PASSIVE PASSIVE (set after torch was loaded: not in effect)"
    # the user's own choice wins
    assert _python(code, {**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE ACTIVE"


@pytest.mark.parametrize("affinity,machine,quota,ranks,want", [
    (2, 2, None, "1", 2),      # one process: every CPU it may use
    (2, 2, None, "2", 1),      # 2 unbound torchrun ranks on 2 cores: one each
    (128, 128, None, "8", 16),  # 8 unbound ranks: a 16-CPU share each
    (64, 128, None, "8", 16),   # ranks bound to a NUMA node's 64 CPUs, 4 ranks per node: still a 16-CPU share
    (16, 128, None, "8", 16),   # each rank bound to 16 CPUs of its own: those
    (128, 128, 32, "8", 4),     # a container's 32-CPU quota is shared by all of its ranks
    (3, 3, None, "4", 1),       # more ranks than CPUs: at least one
    (8, 8, None, "not a number", 8),
])
def test_torchrun_ranks_on_one_machine_split_its_cpus(monkeypatch, affinity, machine, quota, ranks, want):
    from committee_tasks.core import threads

    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(affinity)))
    monkeypatch.setattr(threads.os, "cpu_count", lambda: machine)
    monkeypatch.setattr(threads, "_cgroup_cpu_quota", lambda: quota)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", ranks)
    assert threads.available_cpus() == want
    assert threads.default_workers() == min(4, want)


def test_threads_follow_the_cpus_this_process_may_use():
    from committee_tasks.core.threads import apply_thread_policy, available_cpus

    import torch

    before = torch.get_num_threads()
    try:
        assert 1 <= available_cpus() <= (os.cpu_count() or 1)
        assert apply_thread_policy() == available_cpus() == torch.get_num_threads()
        assert apply_thread_policy(1) == 1 == torch.get_num_threads()
        with pytest.raises(CommitteeError, match="--threads must be at least 1, got 0"):
            apply_thread_policy(0)
    finally:
        torch.set_num_threads(before)
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        one = _python("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
                      "from committee_tasks.core.threads import apply_thread_policy; print(apply_thread_policy())",
                      dict(os.environ))
        assert one == "1"
