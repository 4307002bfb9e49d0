"""The app hears of log growth only from the process's one log watcher.

A pane's new lines and the table's last output wait for the watcher to say the
log grew: given a real watcher that looks at files only when asked (``rescan``),
lines a real process appends stay off the screen until it is asked, then show.
With a real engine and real agents, the engine's stall detection, the table and
the panes all subscribe to one watcher, and one thread in the process watches logs.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from mission_control.engine.states import WsState
from mission_control.store.watch import LogWatcher, shared_watcher
from mission_control.tui.app import MissionControlApp, build_app
from mission_control.tui.screens.quit_screen import QuitScreen
from tests.conftest import GitRepo
from tests.engine.engine_helpers import make_engine, write_plan
from tests.engine.engine_helpers import ws as agent_ws
from tests.tui.static_engine import T0, StaticEngine, demo_snapshot
from tests.tui.test_app_engine import reaping

pytestmark = pytest.mark.timeout(300)

FOLLOWED = "PH-07::WS-07B"
"""The first running workstream of the demo: selected at start, its log in the pane."""


def _asked_only() -> LogWatcher:
    """A real watcher that looks at the files only when asked (no inotify, no polling
    to speak of): what the app shows of a log's growth can then come only from it."""
    return LogWatcher(use_inotify=False, poll_interval=3600)


def _append_by_process(path: Path, text: str) -> None:
    code = "import sys; open(sys.argv[1], 'a').write(sys.argv[2])"
    subprocess.run([sys.executable, "-c", code, str(path), text], check=True)


async def _until(pilot: Pilot[Any], check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await pilot.pause(0.05)


async def _idle_for(pilot: Pilot[Any], seconds: float) -> None:
    """Let the app run (timers, threads) for at least ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await pilot.pause(0.1)


def _last_output(app: MissionControlApp, task_id: str) -> str:
    return str(app.table.get_cell(task_id, "last"))


async def test_a_pane_shows_new_lines_when_the_watcher_says_the_log_grew(
    demo_logs: Path,
) -> None:
    watcher = _asked_only()
    engine = StaticEngine(demo_snapshot(demo_logs))
    app = build_app(
        engine, None, run_engine=False, clock=lambda: T0, probe_logs=False, log_watcher=watcher
    )
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            view = app.panes[0].log_view
            await _until(pilot, lambda: view.line_count == 200)
            assert app.panes[0].task_id == FOLLOWED
            _append_by_process(demo_logs / "WS-07B.log", "fresh line one\nfresh line two\n")
            await _idle_for(pilot, 1.5)  # several of the old polls' intervals
            assert view.line_count == 200, "the pane read the file without being told"
            watcher.rescan()
            await _until(pilot, lambda: view.line_count == 202)
            assert view.follow  # still at the end, showing the new lines
    finally:
        watcher.close()


async def test_the_tables_last_output_comes_from_the_watcher(demo_logs: Path) -> None:
    watcher = _asked_only()
    engine = StaticEngine(demo_snapshot(demo_logs))
    app = build_app(
        engine, None, run_engine=False, clock=lambda: T0, probe_logs=True, log_watcher=watcher
    )
    try:
        async with app.run_test(size=(200, 60)) as pilot:
            # a subscription replays the log's size: its last line shows at once
            await _until(pilot, lambda: "line 199" in _last_output(app, FOLLOWED))
            _append_by_process(demo_logs / "WS-07B.log", "brand new output\n")
            await _idle_for(pilot, 2.5)  # two of the table's ticks, and then some
            assert "brand new output" not in _last_output(app, FOLLOWED)
            watcher.rescan()
            await _until(pilot, lambda: "brand new output" in _last_output(app, FOLLOWED))
    finally:
        watcher.close()


def _log_watchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "log-watcher" and t.is_alive()]


async def test_one_watcher_feeds_the_engine_the_table_and_the_panes(
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
                    agent_ws("A", "--lines", "-1", "--rate", "20"),
                    agent_ws("B", "--lines", "-1", "--rate", "20"),
                ],
            )
        ],
    )
    engine = make_engine(plan, tmp_path / "state")
    app = build_app(engine, plan)
    watcher = shared_watcher()
    with reaping(tmp_path):
        async with app.run_test(size=(160, 50)) as pilot:
            views = app.run_snapshot.workstreams
            await _until(
                pilot,
                lambda: all(v.state is WsState.RUNNING and v.log_path for v in views.values()),
            )
            await pilot.press("a")  # a second pane, on the same workstream
            await pilot.pause()
            panes = app.panes
            assert len(panes) == 2
            # the panes follow their growing logs
            for pane in panes:
                first = pane.log_view.line_count
                await _until(pilot, lambda p=pane, n=first: p.log_view.line_count > n + 5)
            # the table's last output follows the agents as they print
            task_id = next(iter(views))
            shown = _last_output(app, task_id)
            await _until(pilot, lambda: _last_output(app, task_id) not in ("", shown))
            # every reader of logs is a subscriber of the one watcher: the sampler (stall
            # detection) for each attempt, the table for each log, each pane for its own
            assert watcher is app.log_watcher
            assert watcher.watched >= 2 + 2 + 2
            assert len(_log_watchers()) == 1
            await pilot.press("q")
            await _until(pilot, lambda: isinstance(app.screen, QuitScreen))
            await pilot.press("s")  # stop every workstream
            await _until(pilot, lambda: app.return_value is not None, timeout=120)
        assert app.return_value == "stopped"
