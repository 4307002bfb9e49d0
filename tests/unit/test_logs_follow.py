"""``logs --follow`` follows an attempt to its very end: the tool's output, then the check,
commit and push lines the finishing steps append after the tool has exited.

Real runs in child processes (a real repository with a bare ``origin``, the scripted agent,
a check that takes a while so finishing outlasts the tool), followed by a real
``python -m mission_control logs --follow`` the way a user would type it.
"""

from __future__ import annotations

import asyncio
import io
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mission_control.commands.logs import LogOutput, follow_log
from mission_control.store.logs import run_dir
from mission_control.store.runs import RunStore
from mission_control.store.watch import LogWatcher
from tests.conftest import GitRepo
from tests.engine.engine_helpers import make_engine, write_plan, ws
from tests.helpers import wait_for

NO_PR = {"enabled": False}
SLOW_CHECK = {"name": "slow", "run": "sleep 3; echo check-done", "shell": True}
FINISHING = ("check-done", "──── check ok: check 'slow' passed", "──── commit ok: ",
             "──── push ok: origin/ws/P1/A")  # fmt: skip


def _mc(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mission_control", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _run_status(state: Path) -> str:
    with RunStore(state) as store:
        runs = store.list_runs(1)
        return runs[0].status if runs else "none"


def test_follow_right_after_detach_waits_for_the_attempt_and_prints_finishing(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                1,
                [
                    ws("Z", "--sleep", "3"),  # A starts only after Z: seconds with no attempt
                    ws("A", "--lines", "3", "--write", "a.txt=a", deps=["Z"], checks=[SLOW_CHECK]),
                ],
            )
        ],
        pr=NO_PR,
    )
    state = tmp_path / "state"
    started = _mc("run", str(plan.path), "--detach", "--state-dir", str(state))
    assert started.returncode == 0, started.stdout + started.stderr

    followed = _mc("logs", "P1::A", "--follow", "--state-dir", str(state))
    try:
        assert followed.returncode == 0, followed.stdout + followed.stderr
        assert "line 3 of 3" in followed.stdout
        for line in FINISHING:
            assert line in followed.stdout, followed.stdout
    finally:
        assert wait_for(lambda: _run_status(state) == "succeeded", timeout=120)
    [run_folder] = (state / "runs").iterdir()
    assert stat.S_IMODE((run_folder / "driver.log").stat().st_mode) == 0o600


def test_follow_goes_on_after_the_tool_exits_until_finishing_is_over(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [ws("A", "--lines", "2", "--sleep", "2", "--write", "a.txt=a",
                       checks=[SLOW_CHECK])])],
        pr=NO_PR,
    )  # fmt: skip
    state = tmp_path / "state"
    driver = subprocess.Popen(
        [sys.executable, "-m", "mission_control", "run", str(plan.path), "--headless",
         "--state-dir", str(state)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def tool_running() -> bool:
            if not (state / "state.db").exists():
                return False
            with RunStore(state) as store:
                runs = store.list_runs(1)
                return bool(runs) and any(
                    a.ended_at is None for a in store.attempts(runs[0].run_id, "P1::A")
                )

        assert wait_for(tool_running, timeout=60, step=0.1)
        followed = _mc("logs", "P1::A", "-f", "--state-dir", str(state))
        assert followed.returncode == 0, followed.stdout + followed.stderr
        assert "line 2 of 2" in followed.stdout
        for line in FINISHING:
            assert line in followed.stdout, followed.stdout
    finally:
        driver.wait(timeout=120)
    assert driver.returncode == 0
    [run_id] = [r.run_id for r in RunStore(state).list_runs()]
    log = run_dir(state, run_id) / "P1" / "A" / "attempt-1.log"
    assert followed.stdout == log.read_text()  # every byte, nothing twice


async def _until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_follow_prints_new_bytes_when_the_log_watcher_says_the_log_grew(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    """Given a real watcher that looks at the file only when asked, a follower prints what
    the log held, then nothing of what the agent adds until the watcher is asked; at the
    attempt's end it prints the rest and returns: every byte, nothing twice."""
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [ws("A", "--lines", "-1", "--rate", "20")])],
        pr=NO_PR,
    )
    state = tmp_path / "state"
    engine = make_engine(plan, state)
    run = asyncio.create_task(engine.run())
    blind = LogWatcher(use_inotify=False, poll_interval=3600)
    out = io.BytesIO()
    returned: list[int] = []
    try:
        log = run_dir(state, engine.run_id) / "P1" / "A" / "attempt-1.log"
        await _until(lambda: log.exists() and log.stat().st_size > 0)

        def follow() -> None:
            with RunStore(state) as store:
                [attempt] = store.attempts(engine.run_id, "P1::A")
                output = LogOutput(out, plain=False)
                returned.append(follow_log(store, attempt, log, output, blind))

        follower = threading.Thread(target=follow, name="follower")
        follower.start()
        await _until(lambda: len(out.getvalue()) > 0)
        printed = len(out.getvalue())
        await _until(lambda: log.stat().st_size > printed + 200)
        await asyncio.sleep(1.5)  # three of the follower's looks at the ledger
        assert len(out.getvalue()) == printed, "it read the log without being told"
        blind.rescan()
        await _until(lambda: len(out.getvalue()) > printed + 200)
        await engine.cancel(kill=False)
        await run
        await _until(lambda: not follower.is_alive())
    finally:
        if not run.done():
            await engine.cancel(kill=True)
            await run
        blind.close()
    assert returned == [0]
    assert out.getvalue() == log.read_bytes()
