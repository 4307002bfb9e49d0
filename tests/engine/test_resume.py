"""Crash safety: mission-control is SIGKILLed mid-run, resumed, and nothing is lost."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from tests.conftest import GitRepo
from tests.helpers import agent_argv, mc_argv, run_leftovers

LINES = 40


def _plan(folder: Path, repo: Path, count: int, rate: float) -> Path:
    workstreams = []
    for i in range(count):
        deps = [f"W{i - 1}"] if i % 3 == 2 else []  # a few chains among independent ones
        workstreams.append(
            {
                "id": f"W{i}",
                "name": f"workstream {i}",
                "tool": "shell",
                "command": agent_argv(
                    "--lines", str(LINES), "--rate", str(rate), "--write", f"out/w{i}.txt=w{i}"
                ),
                "depends_on": deps,
            }
        )
    doc = {
        "version": 1,
        "name": "crash test",
        "defaults": {"repo": str(repo), "base_branch": "main", "timeout_minutes": 5},
        "phases": [
            {"id": "P1", "name": "one", "max_parallel_workstreams": 3, "workstreams": workstreams}
        ],
    }
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _status(state: Path) -> dict[str, object]:
    out = subprocess.run(
        mc_argv("status", "--json", state=state), capture_output=True, text=True, check=True
    ).stdout
    data: dict[str, object] = json.loads(out)
    return data


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_at_random_moments_then_resume_loses_nothing(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    rng = random.Random(int(os.environ.get("MC_CRASH_SEED", "20261128")))
    state = tmp_path / "state"
    plan = _plan(tmp_path, git_repo.path, count=10, rate=4.0)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = 0
    # `run --resume` continues the unfinished run, or starts one if the kill came first
    command = mc_argv("run", str(plan), "--resume", "--headless", state=state)
    finished = False
    for _ in range(200):
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True
        )
        if kills < 30:
            try:
                proc.wait(timeout=rng.uniform(0.3, 1.2))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
        else:
            proc.wait(timeout=120)
        stderr = proc.stderr.read() if proc.stderr else ""
        assert proc.returncode in (0, 1), stderr
        finished = True
        break
    assert finished and kills >= 30

    status = _status(state)
    run_id = str(status["run_id"])
    workstreams = status["workstreams"]
    assert isinstance(workstreams, list)
    states = {w["task_id"]: w["state"] for w in workstreams}
    assert set(states.values()) == {"succeeded"}, states
    for w in workstreams:
        i = w["ws_id"][1:]
        commits = git_repo.git("log", "--format=%H", w["branch"], "--", f"out/w{i}.txt").split()
        assert len(commits) == 1, (w["task_id"], commits)
        log = Path(w["log_path"]).read_text()
        numbered = [line for line in log.splitlines() if line.startswith("line ")]
        assert numbered == [f"line {n} of {LINES}" for n in range(1, LINES + 1)], w["task_id"]
    time.sleep(0.2)
    assert run_leftovers(run_id) == []


def test_second_owner_is_refused_and_a_dead_one_is_taken_over(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    plan = _plan(tmp_path, git_repo.path, count=1, rate=2.0)
    first = subprocess.Popen(
        mc_argv("run", str(plan), "--headless", state=state),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if (state / "state.db").exists() and _status(state).get("owner"):
                break
            time.sleep(0.1)
        second = subprocess.run(
            mc_argv("resume", "--headless", state=state), capture_output=True, text=True
        )
        assert second.returncode == 2
        assert f"driven by mission-control pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    status = _status(state)
    assert status["status"] == "running", status  # killed mid-run: the run is unfinished
    taken = subprocess.run(
        mc_argv("resume", str(status["run_id"]), "--headless", state=state),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert taken.returncode == 0, taken.stderr


async def test_adopted_agent_can_be_paused_and_killed_by_the_resumed_run(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    from mission_control.plan.loader import load_plan_or_raise
    from tests.engine.engine_helpers import Recorder
    from tests.helpers import wait_for_pids

    state = tmp_path / "state"
    pid_file = tmp_path / "pids.jsonl"
    doc = {
        "version": 1,
        "defaults": {"repo": str(git_repo.path), "base_branch": "main", "timeout_minutes": 5},
        "phases": [
            {
                "id": "P1",
                "name": "one",
                "max_parallel_workstreams": 1,
                "workstreams": [
                    {
                        "id": "A",
                        "name": "long",
                        "tool": "shell",
                        "command": agent_argv(
                            "--pid-file",
                            str(pid_file),
                            "--children",
                            "1",
                            "--lines",
                            "-1",
                            "--rate",
                            "20",
                        ),
                    }
                ],
            }
        ],
    }
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(yaml.safe_dump(doc))
    first = subprocess.Popen(
        mc_argv("run", str(plan_path), "--headless", state=state),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pids = wait_for_pids(pid_file, {"main": 1, "child": 1}, timeout=20)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert psutil.pid_exists(pids["main"][0])  # the agent outlived mission-control

    run_id = str(_status(state)["run_id"])
    from mission_control.engine.engine import Engine, RunOptions

    engine = Engine(
        load_plan_or_raise(plan_path),
        state_dir=state,
        options=RunOptions(run_id=run_id, linger=True, grace_seconds=0.5, sample_interval=0.2),
    )
    rec = Recorder(engine)
    import asyncio

    run = asyncio.create_task(engine.run())
    try:
        await _pause_and_kill_adopted(engine, rec, pids)
    finally:
        for pid in run_leftovers(run_id):  # a failed assertion must not leave the agent behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    await engine.cancel()
    await run
    assert run_leftovers(run_id) == []


async def _pause_and_kill_adopted(engine: Any, rec: Any, pids: dict[str, list[int]]) -> None:
    import asyncio

    from mission_control.engine.states import WsState

    await rec.state("P1::A", WsState.RUNNING)
    assert "adopted" in rec.details("P1::A")[-1]
    view = engine.snapshot().workstreams["P1::A"]
    assert view.log_path is not None and view.attempt == 1
    log = Path(view.log_path)

    await engine.pause("P1::A")
    await asyncio.sleep(0.3)
    size = log.stat().st_size
    await asyncio.sleep(1.0)
    assert log.stat().st_size == size
    agent = psutil.Process(pids["main"][0])
    assert agent.status() == psutil.STATUS_STOPPED
    await engine.resume("P1::A")
    await asyncio.sleep(0.5)
    assert log.stat().st_size > size  # the same log goes on

    await engine.kill("P1::A")
    await rec.state("P1::A", WsState.KILLED)
    for group in pids.values():
        for pid in group:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


SMUDGE_SECONDS = 15
"""How long the killed driver's checkout goes on after the kill: far past git's lock retries."""


@pytest.mark.timeout(240)
def test_resume_waits_for_the_killed_drivers_checkout_and_finishes_the_worktree(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    """SIGKILL inside worktree creation, while its `git reset --hard` runs on without it."""
    state = tmp_path / "state"
    slow, started = tmp_path / "slow", tmp_path / "smudge-started"
    # A smudge filter that is slow while `slow` exists: the checkout that fills the
    # worktree holds its index.lock that long.
    smudge = tmp_path / "smudge.sh"
    smudge.write_text(
        f'#!/bin/sh\nif [ -f "{slow}" ]; then touch "{started}"; sleep {SMUDGE_SECONDS}; fi\ncat\n'
    )
    smudge.chmod(0o755)
    git_repo.git("config", "filter.slow.smudge", str(smudge))
    git_repo.commit_file(".gitattributes", "slow.txt filter=slow\n")
    git_repo.commit_file("slow.txt", "checked out slowly\n")
    git_repo.git("push", "-q", "origin", "main")
    base_files = set(git_repo.git("ls-files").split())
    check = " && ".join(f"test -f {name}" for name in sorted(base_files))
    doc = {
        "version": 1,
        "name": "crash in creation",
        "defaults": {"repo": str(git_repo.path), "base_branch": "main", "timeout_minutes": 5},
        "phases": [
            {
                "id": "P1",
                "name": "one",
                "max_parallel_workstreams": 1,
                "workstreams": [
                    {
                        "id": "A",
                        "name": "sees the base",
                        "tool": "shell",
                        "command": [f"{check} && echo mine > a.txt"],
                        "shell": True,
                    }
                ],
            }
        ],
    }
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(doc, sort_keys=False))
    slow.touch()
    driver = subprocess.Popen(
        mc_argv("run", str(plan), "--headless", state=state),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the worktree's checkout never began"
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        slow.unlink()

    resumed = subprocess.run(
        mc_argv("resume", "--headless", state=state), capture_output=True, text=True, timeout=200
    )

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    workstreams = _status(state)["workstreams"]
    assert isinstance(workstreams, list)
    assert [w["state"] for w in workstreams] == ["succeeded"]
    changed = git_repo.git("diff", "--name-status", "main", "ws/P1/A", cwd=git_repo.origin)
    assert changed == "A\ta.txt"
    assert base_files <= set(git_repo.git("ls-tree", "-r", "--name-only", "ws/P1/A").split())
