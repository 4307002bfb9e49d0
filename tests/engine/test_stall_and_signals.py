"""Stalled agents are flagged and handled; Ctrl-C stops a headless run cleanly."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mission_control.engine import events as ev
from mission_control.engine.backend import BackendOptions
from mission_control.engine.local_backend import LocalBackend
from mission_control.engine.states import WsState
from mission_control.store.watch import LogWatcher
from tests.conftest import GitRepo
from tests.engine.engine_helpers import Recorder, make_engine, write_plan, ws
from tests.helpers import wait_for_pids


async def test_stall_is_flagged_and_cleared_by_new_output(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    # prints, goes quiet for 2.5 s (stall after 1.2 s), prints again, exits
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [ws("Q", "--lines", "1", "--sleep", "2.5", "--lines", "1")])],
        stall_minutes=0.02,
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is True
    flags = [e.stalled for e in rec.events if isinstance(e, ev.WorkstreamStalled)]
    assert flags[:1] == [True]


@pytest.mark.parametrize("hears", ["every write", "nothing"])
async def test_stall_detection_learns_of_output_from_the_log_watcher(
    git_repo: GitRepo, tmp_path: Path, hears: str
) -> None:
    """An agent printing five lines a second for 3 s is never stalled (after 1.2 s of
    silence) while the log watcher tells the engine of its output; seen through a real
    watcher that never looks at the file, the same agent is: the engine does not look
    at logs on its own."""
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [ws("W", "--lines", "15", "--rate", "5")])],
        stall_minutes=0.02,
    )
    engine = make_engine(plan, tmp_path / "state")
    blind = LogWatcher(use_inotify=False, poll_interval=3600)
    if hears == "nothing":
        engine.backend = LocalBackend(BackendOptions(sample_interval=0.2, log_watcher=blind))
    rec = Recorder(engine)
    try:
        assert await engine.run() is True
    finally:
        blind.close()
    flags = [e.stalled for e in rec.events if isinstance(e, ev.WorkstreamStalled)]
    if hears == "every write":
        assert flags == []
    else:
        assert flags[:1] == [True]


async def test_on_stall_kill_and_retry(git_repo: GitRepo, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                2,
                [
                    ws("K", "--sleep", "60", on_stall="kill"),
                    ws("R", "--fail-first", "--sleep", "0", retries=0),
                ],
            )
        ],
        stall_minutes=0.02,
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is False
    assert rec.states["P1::K"] is WsState.KILLED
    assert any(isinstance(e, ev.WorkstreamStalled) and e.stalled for e in rec.events)


async def test_on_stall_retry_starts_a_new_attempt(git_repo: GitRepo, tmp_path: Path) -> None:
    marker = tmp_path / "first-done"
    # attempt 1 hangs silently; attempt 2 (MC_ATTEMPT=2) exits at once
    script = (
        "import os, sys, time\n"
        "if os.environ['MC_ATTEMPT'] == '1':\n"
        "    time.sleep(60)\n"
        f"open({str(marker)!r}, 'w').close()\n"
    )
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                1,
                [
                    {
                        "id": "S",
                        "name": "stuck once",
                        "tool": "shell",
                        "command": [sys.executable, "-c", script],
                        "on_stall": "retry",
                        "retries": 1,
                    }
                ],
            )
        ],
        stall_minutes=0.02,
    )
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is True
    assert engine.snapshot().workstreams["P1::S"].attempt == 2
    assert marker.exists()
    assert rec.states["P1::S"] is WsState.SUCCEEDED


async def test_stall_retries_count_against_retries_and_back_off(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    # Silent every time: one retry (after the backoff), then it fails with the reason.
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [ws("S", "--sleep", "120", on_stall="retry", retries=1)])],
        stall_minutes=0.02,
    )
    engine = make_engine(plan, tmp_path / "state", retry_backoff_seconds=1.5)
    rec = Recorder(engine)
    try:
        ok = await asyncio.wait_for(engine.run(), 90)
    except TimeoutError:
        await engine.cancel(kill=True)
        raise AssertionError(f"still retrying: {rec.details('P1::S')}") from None
    assert ok is False
    assert rec.states["P1::S"] is WsState.FAILED
    assert engine.snapshot().workstreams["P1::S"].attempt == 2
    details = rec.details("P1::S")
    assert any("no output for 1s; retry 1/1 in 2s" in d for d in details), details
    assert details[-1] == "no output for 1s, 2 attempts (on_stall: retry, retries: 1)"
    ended = [e.at for e in rec.events if isinstance(e, ev.AttemptEnded)]
    started = [e.at for e in rec.events if isinstance(e, ev.AttemptStarted)]
    assert len(started) == 2 and len(ended) == 2
    assert started[1] - ended[0] >= 1.5  # the backoff was waited out


def test_ctrl_c_stops_gracefully_then_exits_130(git_repo: GitRepo, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.jsonl"
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [ws("L", "--pid-file", str(pid_file), "--children", "1", "--forever")])],
    )
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mission_control",
            "run",
            str(plan.path),
            "--headless",
            "--state-dir",
            str(state),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids = wait_for_pids(pid_file, {"main": 1, "child": 1}, timeout=20)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "stopping" in out
    assert "interrupted" in out
    assert "Traceback" not in err
    for group in pids.values():
        for pid in group:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
