"""The app driving a real run: scripted agents as real processes in real worktrees.

Every action goes through the keys a user presses; the checks look at the
engine's state, the processes and the log files, not only at the screen.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from textual.pilot import Pilot
from textual.widgets import RichLog

from mission_control.engine.states import WsState
from mission_control.tui.app import MissionControlApp, build_app
from mission_control.tui.screens.confirm_screen import ConfirmScreen
from mission_control.tui.screens.diff_screen import DiffScreen
from mission_control.tui.screens.quit_screen import QuitScreen
from tests.conftest import GitRepo
from tests.engine.engine_helpers import make_engine, write_plan
from tests.engine.engine_helpers import ws as agent_ws

pytestmark = pytest.mark.timeout(600)  # a loaded machine: the deadlines below are the guard


async def until(pilot: Pilot[Any], predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            app = pilot.app
            states = (
                {t: v.state.value for t, v in app.run_snapshot.workstreams.items()}
                if isinstance(app, MissionControlApp)
                else {}
            )
            raise AssertionError(f"timed out waiting; states: {states}")
        await pilot.pause(0.05)


def state(app: MissionControlApp, task_id: str) -> WsState:
    return app.run_snapshot.workstreams[task_id].state


async def select(pilot: Pilot[Any], app: MissionControlApp, task_id: str) -> None:
    app.table.focus()
    app.table.select(task_id)
    await until(pilot, lambda: app.selected_task == task_id)


@contextlib.contextmanager
def reaping(tmp_path: Path) -> Any:
    """Kill whatever attempt processes a test leaves behind, even if it failed early.

    Every attempt runs in its own session under a wrapper whose argv names its exit
    file in ``tmp_path``: that finds them all, whoever their parent is by now.
    """
    pids: set[int] = set()
    try:
        yield pids
    finally:
        marker = str(tmp_path)
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info.get("cmdline") or []
            if proc.pid in pids or any(marker in part for part in cmdline):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_pause_resume_kill_and_pane_follow_a_running_agent(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                2,
                [
                    agent_ws("A", "--lines", "-1", "--rate", "50", "--color"),
                    agent_ws("B", "--lines", "-1", "--rate", "50"),
                ],
            )
        ],
        push=False,
    )
    engine = make_engine(plan, tmp_path / "state", linger=True)
    app = build_app(engine, plan)
    with reaping(tmp_path) as pids:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(
                pilot,
                lambda: (
                    state(app, "P1::A") is WsState.RUNNING
                    and state(app, "P1::B") is WsState.RUNNING
                ),
            )
            view = app.run_snapshot.workstreams["P1::A"]
            assert view.pid is not None and view.log_path is not None
            pids.add(view.pid)
            pids.add(app.run_snapshot.workstreams["P1::B"].pid or 0)
            log = Path(view.log_path)

            # the pane follows the selected workstream's log as it grows
            await select(pilot, app, "P1::A")
            pane = app.active_pane
            assert pane is not None
            await until(pilot, lambda: pane.task_id == "P1::A" and pane.log_view.line_count > 20)
            assert pane.log_view.follow

            # pause: the state changes and the process really stops
            await pilot.press("p")
            await until(pilot, lambda: state(app, "P1::A") is WsState.PAUSED)
            assert psutil.Process(view.pid).status() == psutil.STATUS_STOPPED
            size = log.stat().st_size
            await pilot.pause(0.6)
            assert log.stat().st_size == size
            await pilot.press("p")
            await until(pilot, lambda: state(app, "P1::A") is WsState.RUNNING)
            await until(pilot, lambda: log.stat().st_size > size)

            # kill asks first; "n" leaves it running, "y" kills it
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("n")
            await pilot.pause(0.3)
            assert state(app, "P1::A") is WsState.RUNNING
            await pilot.press("K")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, lambda: state(app, "P1::A") is WsState.KILLED)
            await until(pilot, lambda: not _alive(view.pid or 0))
            assert state(app, "P1::B") is WsState.RUNNING

            # quitting with B still running asks; "stop" ends it all
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, QuitScreen))
            await pilot.press("s")
            await until(pilot, lambda: app.return_value is not None)
        assert app.return_value == "stopped"
        b_pid = next(iter(pids - {view.pid}))
        assert not _alive(b_pid)
        assert engine.snapshot().workstreams["P1::B"].state in (
            WsState.KILLED,
            WsState.PENDING,
            WsState.INTERRUPTED,
        )


async def test_retry_retry_fresh_and_skip(git_repo: GitRepo, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [
            (
                "P1",
                3,
                [
                    agent_ws("F", "--write", "notes/F.txt=from F", "--fail-first", "--lines", "2"),
                    agent_ws("X", "--exit", "3"),
                    agent_ws("Y", "--lines", "1", deps=["X"]),
                ],
            )
        ],
        push=False,
    )
    engine = make_engine(plan, tmp_path / "state", linger=True)
    app = build_app(engine, plan)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(
            pilot,
            lambda: state(app, "P1::F") is WsState.FAILED and state(app, "P1::X") is WsState.FAILED,
        )
        await until(pilot, lambda: state(app, "P1::Y") is WsState.BLOCKED)
        # a failure is notified (its toast reads the log in a thread first)
        await until(pilot, lambda: any(n.title == "P1::F failed" for n in app._notifications))

        await select(pilot, app, "P1::F")
        await pilot.press("r")
        await until(pilot, lambda: state(app, "P1::F") is WsState.SUCCEEDED)
        assert app.run_snapshot.workstreams["P1::F"].attempt == 2

        # the pane switches to the earlier attempt and back
        pane = app.active_pane
        assert pane is not None and pane.task_id == "P1::F"
        pane.log_view.focus()
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: pane.attempt == 1)
        assert pane.log_view.path is not None and pane.log_view.path.name == "attempt-1.log"
        title = pane.query_one(".log-pane--title").render()
        assert "ended" in str(title) and "attempt 1/2" in str(title)  # not F's present state
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: pane.attempt is None)

        # the diff of F's worktree against its base, loaded off the event loop
        await select(pilot, app, "P1::F")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DiffScreen))
        diff_log = app.screen.query_one(RichLog)
        await until(pilot, lambda: any("notes/F.txt" in line.text for line in diff_log.lines))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DiffScreen))

        await select(pilot, app, "P1::F")
        await pilot.press("R")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: app.run_snapshot.workstreams["P1::F"].attempt == 3)
        await until(pilot, lambda: state(app, "P1::F") is WsState.SUCCEEDED)

        # filtering by text and by status on the live table
        app.table.focus()
        await pilot.press("f", *"workstream x")
        await until(pilot, lambda: app.table.visible_tasks == ["P1::X"])
        await pilot.press("escape")
        await until(pilot, lambda: len(app.table.visible_tasks) == 3)
        await pilot.press("v", "v")  # all -> active -> failed
        await until(pilot, lambda: set(app.table.visible_tasks) == {"P1::X", "P1::Y"})
        await pilot.press("v", "v", "v", "v")  # -> waiting -> done -> attention -> all
        await until(pilot, lambda: len(app.table.visible_tasks) == 3)

        # enter shows the cursor's workstream in the active pane
        await select(pilot, app, "P1::X")
        await pilot.press("a")  # a second pane, pinned to X
        await until(pilot, lambda: len(app.panes) == 2)
        await select(pilot, app, "P1::F")
        await pilot.press("enter")
        await until(pilot, lambda: app.panes[1].task_id == "P1::F")
        await until(pilot, lambda: app.panes[1].log_view.line_count > 0)

        # skipping the failed dependency lets the blocked dependent run
        await select(pilot, app, "P1::X")
        await pilot.press("s")
        await until(pilot, lambda: state(app, "P1::X") is WsState.SKIPPED)
        await until(pilot, lambda: state(app, "P1::Y") is WsState.SUCCEEDED)

        # nothing active: quit needs no question
        await pilot.press("q")
        await until(pilot, lambda: app.return_value is not None)
    assert app.return_value == "finished"


async def test_quit_dialog_cancel_then_detach_leaves_the_agent_running(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    plan = write_plan(
        tmp_path,
        git_repo.path,
        [("P1", 1, [agent_ws("A", "--lines", "-1", "--rate", "20")])],
        push=False,
    )
    engine = make_engine(plan, tmp_path / "state", linger=True)
    app = build_app(engine, plan)
    with reaping(tmp_path) as pids:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: state(app, "P1::A") is WsState.RUNNING)
            pid = app.run_snapshot.workstreams["P1::A"].pid
            assert pid is not None
            pids.add(pid)
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, QuitScreen))
            await pilot.press("escape")  # cancel
            await until(pilot, lambda: not isinstance(app.screen, QuitScreen))
            await pilot.pause(0.3)
            assert app.return_value is None and app.is_running
            assert state(app, "P1::A") is WsState.RUNNING
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, QuitScreen))
            await pilot.click("#detach")
            await until(pilot, lambda: app.return_value is not None)
        assert app.return_value == "detach"
        assert _alive(pid)  # left running for a later resume
