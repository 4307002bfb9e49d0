"""The metrics sampler against real agents: CPU, memory, process counts, log activity, cost."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mission_control.engine.events import ProcessSample
from mission_control.engine.metrics import LogActivity, MetricsSampler
from mission_control.engine.supervisor import AttemptProcess, spawn_attempt
from tests.helpers import agent_argv, wait_for, wait_for_pids


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
    wait_for_pids(pids, {"main": 1, "child": 1})
    assert wait_for(lambda: (tmp_path / "idle" / "attempt.log").stat().st_size > 0)

    sampler.sample()  # cpu_percent measures from one call to the next
    time.sleep(0.6)
    samples, activity = sampler.sample()

    assert set(samples) == {"PH::BUSY", "PH::IDLE"}
    b = samples["PH::BUSY"]
    assert isinstance(b, ProcessSample)
    assert b.processes == 3, "the shell, the agent and its child"
    assert b.cpu_percent > samples["PH::IDLE"].cpu_percent, samples  # a share of a busy machine
    assert b.rss_bytes > 5 * 1024 * 1024
    i = samples["PH::IDLE"]
    assert i.processes == 2 and i.cpu_percent < 20 and i.rss_bytes > 1024 * 1024

    log = tmp_path / "idle" / "attempt.log"
    st = log.stat()
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
    stopper = threading.Thread(target=proc.terminate_blocking, args=(4.0,))
    stopper.start()
    try:
        time.sleep(0.3)  # inside the grace period: the agent ignores TERM
        samples, _ = sampler.sample()
        assert stopper.is_alive(), "sampled while the terminate still waits out its grace"
        assert samples["PH::S"].processes == 2
    finally:
        stopper.join()
    assert sampler.sample()[0]["PH::S"].processes == 0
