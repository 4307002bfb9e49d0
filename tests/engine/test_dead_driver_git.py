"""Git processes and lock files a killed mission-control leaves in a worktree.

A stand-in driver (a real Python process running our ``run_git``) starts a
``git commit -a`` in a worktree whose pre-commit hook sleeps, so git holds the
worktree's ``index.lock`` for a while; the driver is then SIGKILLed, as a crash
would, and the git process goes on without it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from mission_control.engine.states import WsState
from mission_control.git.locks import settle_worktree
from mission_control.git.worktrees import prepare_worktree
from tests.engine.engine_helpers import Recorder, make_engine, write_plan, ws
from tests.helpers import wait_for

if TYPE_CHECKING:
    from conftest import GitSandbox

HOOK_SECONDS = 20
"""How long the slow commit holds the index: far longer than git's own lock retries."""

_DRIVER = """
import sys
from pathlib import Path
from mission_control.git.repo import run_git
run_git(["commit", "-a", "-q", "-m", "the driver's commit"], Path(sys.argv[1]))
"""


@pytest.fixture
def slow_commit(git_sandbox: GitSandbox, tmp_path: Path) -> Iterator[Path]:
    """A pre-commit hook that sleeps when ``SLOW_HOOK`` names a file; yields that file."""
    flag = tmp_path / "hook-started"
    hook = git_sandbox.repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(
        f'#!/bin/sh\n[ -n "$SLOW_HOOK" ] || exit 0\ntouch "$SLOW_HOOK"\nsleep {HOOK_SECONDS}\n'
    )
    hook.chmod(0o755)
    yield flag
    for proc in _hook_processes(flag):  # whatever a failing test left running
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _hook_processes(flag: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if proc.environ().get("SLOW_HOOK") == str(flag):
                found.append(proc)
    return found


def _start_driver(worktree: Path, flag: Path) -> subprocess.Popen[bytes]:
    """A driver whose git commit is under way (holding the index lock) when this returns."""
    driver = subprocess.Popen(
        [sys.executable, "-c", _DRIVER, str(worktree)],
        env={**os.environ, "SLOW_HOOK": str(flag)},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert wait_for(flag.exists, timeout=60), "the driver's commit never reached its hook"
    return driver


def _index_lock(sb: GitSandbox, worktree: Path) -> Path:
    return Path(sb.git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index.lock"))


async def test_the_git_of_a_killed_driver_is_waited_for_before_the_worktree_is_used(
    git_sandbox: GitSandbox, slow_commit: Path, tmp_path: Path
) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A", phase="P1"), [])
    sb.edit_line(prepared.path / "f.txt", 0, "changed by the first run")
    driver = _start_driver(prepared.path, slow_commit)
    assert _index_lock(sb, prepared.path).exists()
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    orphans = _hook_processes(slow_commit)
    assert orphans, "the driver's git died with it: nothing left to race"

    plan = write_plan(tmp_path, sb.repo, [("P1", 1, [ws("A", "--write", "a.txt=mine")])])
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is True, rec.details("P1::A")

    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in orphans)
    # The killed driver's commit went in whole; the new work is on top of it.
    log = sb.git(sb.repo, "log", "--format=%s", "main..ws/P1/A").splitlines()
    assert log == ["[P1::A] workstream A", "the driver's commit"]
    assert sb.git(sb.repo, "show", "ws/P1/A:a.txt") == "mine"
    assert not _index_lock(sb, prepared.path).exists()


def test_the_git_of_a_live_driver_is_left_alone(git_sandbox: GitSandbox, slow_commit: Path) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    sb.edit_line(prepared.path / "f.txt", 0, "changed")
    driver = _start_driver(prepared.path, slow_commit)
    try:
        assert settle_worktree(prepared.path, wait_seconds=HOOK_SECONDS * 3) == []
        # Returned at once: the commit is still under way, its lock in place.
        assert driver.poll() is None
        assert _index_lock(sb, prepared.path).exists()
    finally:
        driver.kill()
        driver.wait()


async def test_a_stale_index_lock_with_no_owner_is_removed(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A", phase="P1"), [])
    # A git killed with the driver leaves its lock and no process behind.
    _index_lock(sb, prepared.path).write_bytes(b"")

    plan = write_plan(tmp_path, sb.repo, [("P1", 1, [ws("A", "--write", "a.txt=mine")])])
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is True, rec.details("P1::A")
    assert rec.states["P1::A"] is WsState.SUCCEEDED
    assert sb.git(sb.repo, "show", "ws/P1/A:a.txt") == "mine"


async def test_a_lock_left_by_the_agents_own_killed_git_is_removed_before_the_commit(
    git_sandbox: GitSandbox, tmp_path: Path
) -> None:
    sb = git_sandbox
    # The agent's own git was killed mid-commit: its index lock stays, no process holds it.
    leave_lock = 'echo mine > a.txt && : > "$(git rev-parse --git-path index.lock)"'
    lock_leaver = ws("A", command=[leave_lock], shell=True)
    plan = write_plan(tmp_path, sb.repo, [("P1", 1, [lock_leaver])])
    engine = make_engine(plan, tmp_path / "state")
    rec = Recorder(engine)
    assert await engine.run() is True, rec.details("P1::A")
    assert sb.git(sb.repo, "show", "ws/P1/A:a.txt") == "mine"
