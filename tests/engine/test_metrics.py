"""The metrics sampler against real agents: CPU, memory, process counts, log activity, cost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from mission_control.engine.events import ProcessSample
from mission_control.engine.metrics import LogActivity, MetricsSampler
from mission_control.engine.supervisor import AttemptProcess, TerminateResult, spawn_attempt
from tests import helpers
from tests.helpers import agent_argv, read_pids

DEADLINE = 60.0
"""Seconds a condition may take to come true: generous, a loaded machine is slow, not wrong."""


def wait_for(predicate: Callable[[], bool], timeout: float = DEADLINE) -> bool:
    return helpers.wait_for(predicate, timeout)


def wait_for_pids(
    pid_file: Path, counts: dict[str, int], timeout: float = DEADLINE
) -> dict[str, list[int]]:
    return helpers.wait_for_pids(pid_file, counts, timeout)


@pytest.fixture
def attempts() -> Iterator[list[AttemptProcess]]:
    started: list[AttemptProcess] = []
    yield started
    for proc in started:
        proc.terminate_blocking(0.0)


def spawn(tmp: Path, started: list[AttemptProcess], name: str, *flags: str) -> AttemptProcess:
    folder = tmp / name
    folder.mkdir()
    proc = spawn_attempt(
        agent_argv(*flags),
        cwd=folder,
        env={},
        log_path=folder / "attempt.log",
        stdin_path=None,
        exit_file=folder / "attempt.exit",
    )
    started.append(proc)
    return proc


def cpu_time(procs: list[psutil.Process]) -> float:
    """CPU seconds (user + system) the processes have used, as the kernel counts them."""
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


@dataclass(frozen=True)
class _Reading:
    at: float
    busy: float
    idle: float

    @classmethod
    def take(cls, busy: list[psutil.Process], idle: list[psutil.Process]) -> _Reading:
        return cls(time.monotonic(), cpu_time(busy), cpu_time(idle))


_TICK = 0.02
"""CPU seconds: the kernel counts CPU time in clock ticks, psutil rounds to 0.1 %."""


def _percent_bounds(
    before: _Reading, after_first: _Reading, before_second: _Reading, after: _Reading, tree: str
) -> tuple[float, float]:
    """The least and most percent of one CPU the tree can have used between two samples.

    The first sample happened between ``before`` and ``after_first``, the second between
    ``before_second`` and ``after``: the CPU used and the time passed lie in between.
    """
    cpu_low = getattr(before_second, tree) - getattr(after_first, tree) - _TICK
    cpu_high = getattr(after, tree) - getattr(before, tree) + _TICK
    wall_low = before_second.at - after_first.at
    wall_high = after.at - before.at
    return max(0.0, 100 * cpu_low / wall_high) - 0.1, 100 * cpu_high / wall_low + 0.1


def test_busy_agent_reports_cpu_rss_and_its_children(
    tmp_path: Path, attempts: list[AttemptProcess]
) -> None:
    pids = tmp_path / "busy" / "pids"
    busy = spawn(tmp_path, attempts, "busy", "--pid-file", str(pids), "--children", "1",
                 "--busy", "-1")  # fmt: skip
    idle = spawn(tmp_path, attempts, "idle", "--lines", "3", "--forever")
    sampler = MetricsSampler(1.0, lambda s, a: None)
    sampler.watch("PH::BUSY", busy, tmp_path / "busy" / "attempt.log")
    sampler.watch("PH::IDLE", idle, tmp_path / "idle" / "attempt.log")
    roles = wait_for_pids(pids, {"main": 1, "child": 1})
    assert wait_for(lambda: (tmp_path / "idle" / "attempt.log").stat().st_size > 0)
    busy_tree = [psutil.Process(p) for p in [busy.pid, *roles["main"], *roles["child"]]]
    idle_root = psutil.Process(idle.pid)
    idle_tree = [idle_root, *idle_root.children()]
    assert len(idle_tree) == 2, "the shell and the agent"

    # How busy is a matter of the machine's load; what must hold is that the figure is
    # the CPU seconds the tree used over the wall time between two samples (psutil's
    # percent of one CPU). Both are bracketed from outside, so no bound depends on load.
    before = _Reading.take(busy_tree, idle_tree)
    sampler.sample()  # cpu_percent measures from one call to the next
    after_first = _Reading.take(busy_tree, idle_tree)
    assert wait_for(lambda: cpu_time(busy_tree) > after_first.busy + 0.3, 120)
    before_second = _Reading.take(busy_tree, idle_tree)
    samples, activity = sampler.sample()
    after = _Reading.take(busy_tree, idle_tree)

    assert set(samples) == {"PH::BUSY", "PH::IDLE"}
    b = samples["PH::BUSY"]
    assert isinstance(b, ProcessSample)
    assert b.processes == 3, "the shell, the agent and its child"
    low, high = _percent_bounds(before, after_first, before_second, after, "busy")
    assert low <= b.cpu_percent <= high, (low, b, high)
    assert low > 0, "the busy tree used CPU between the samples"
    assert b.rss_bytes > 5 * 1024 * 1024
    i = samples["PH::IDLE"]
    low, high = _percent_bounds(before, after_first, before_second, after, "idle")
    assert low <= i.cpu_percent <= high, (low, i, high)
    assert i.processes == 2 and i.rss_bytes > 1024 * 1024

    log = tmp_path / "idle" / "attempt.log"
    st = log.stat()
    # The size is what the log watcher last said: it says so at most once a tick.
    assert wait_for(lambda: sampler.sample()[1]["PH::IDLE"].size == st.st_size)
    activity = sampler.sample()[1]
    assert activity["PH::IDLE"] == LogActivity(st.st_size, st.st_mtime)
    assert activity["PH::IDLE"].size == len("line 1 of 3\n") * 3

    sampler.unwatch("PH::IDLE")
    samples, activity = sampler.sample()
    assert set(samples) == set(activity) == {"PH::BUSY"}


def test_missing_log_and_ended_attempt(tmp_path: Path, attempts: list[AttemptProcess]) -> None:
    proc = spawn(tmp_path, attempts, "done", "--exit", "0")
    asyncio.run(proc.wait())
    sampler = MetricsSampler(1.0, lambda s, a: None)
    sampler.watch("PH::A", proc, tmp_path / "no-such.log")
    samples, activity = sampler.sample()
    assert samples["PH::A"] == ProcessSample(0.0, 0, 0)
    assert activity["PH::A"] == LogActivity(0, None)


def test_thread_delivers_one_batch_per_tick_until_stopped(
    tmp_path: Path, attempts: list[AttemptProcess]
) -> None:
    proc = spawn(tmp_path, attempts, "a", "--lines", "-1", "--rate", "20")
    batches: list[tuple[dict[str, ProcessSample], dict[str, LogActivity]]] = []
    threads: set[str] = set()
    got_three = threading.Event()

    def on_sample(s: dict[str, ProcessSample], a: dict[str, LogActivity]) -> None:
        batches.append((s, a))
        threads.add(threading.current_thread().name)
        sizes = [b[1]["PH::A"].size for b in batches]
        if len(batches) >= 3 and sizes[-1] > sizes[0]:
            got_three.set()

    log = tmp_path / "a" / "attempt.log"
    sampler = MetricsSampler(0.1, on_sample)
    sampler.watch("PH::A", proc, log)
    assert wait_for(lambda: log.stat().st_size > 0)
    sampler.start()
    try:
        assert got_three.wait(30)
    finally:
        sampler.stop()
    count = len(batches)
    time.sleep(0.3)
    assert len(batches) == count, "no tick after stop()"
    assert threads == {"mc-metrics"}
    sizes = [a["PH::A"].size for _, a in batches]
    assert sizes == sorted(sizes) and sizes[-1] > sizes[0], "the log keeps growing"
    assert all(s["PH::A"].processes == 2 for s, _ in batches)


def test_sampler_costs_little_with_eight_sleeping_agents(
    tmp_path: Path, attempts: list[AttemptProcess]
) -> None:
    sampler = MetricsSampler(1.0, lambda s, a: None)
    for n in range(8):
        proc = spawn(tmp_path, attempts, f"ws{n}", "--children", "1", "--forever")
        sampler.watch(f"PH::W{n}", proc, tmp_path / f"ws{n}" / "attempt.log")
    assert wait_for(lambda: all(s.processes == 3 for s in sampler.sample()[0].values()))
    # What a tick costs in CPU is measured in benchmarks/bench_idle_cpu.py beside its
    # baseline; here: one tick covers every agent's whole tree, and repeats stay exact.
    for _ in range(5):
        samples, activity = sampler.sample()
        assert len(samples) == len(activity) == 8
        assert all(s.processes == 3 and s.rss_bytes > 0 for s in samples.values())


def test_a_terminate_in_progress_does_not_hold_up_sampling(
    tmp_path: Path, attempts: list[AttemptProcess]
) -> None:
    pids = tmp_path / "stubborn" / "pids"
    proc = spawn(tmp_path, attempts, "stubborn", "--pid-file", str(pids), "--ignore-term",
                 "--forever")  # fmt: skip
    sampler = MetricsSampler(1.0, lambda s, a: None)
    sampler.watch("PH::S", proc, tmp_path / "stubborn" / "attempt.log")
    wait_for_pids(pids, {"main": 1})  # recorded once TERM is ignored
    results: list[TerminateResult] = []
    # A grace far longer than the test: the terminate is surely still waiting when sampled.
    stopper = threading.Thread(target=lambda: results.append(proc.terminate_blocking(600.0)))
    stopper.start()
    try:
        assert wait_for(proc._control.locked), "the terminate holds the attempt"
        samples, _ = sampler.sample()
        assert stopper.is_alive(), "sampled while the terminate still waits out its grace"
        assert samples["PH::S"].processes == 2
    finally:
        os.kill(read_pids(pids)["main"][0], signal.SIGKILL)  # ends the grace period early
        stopper.join(60)
    assert results and results[0].clean and results[0].killed == ()
    assert sampler.sample()[0]["PH::S"].processes == 0
