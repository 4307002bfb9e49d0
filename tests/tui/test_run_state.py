"""What the header says of the run: its end (and a clock that stops), what needs the user,
and what the table's filters hide."""

from __future__ import annotations

from pathlib import Path

from mission_control.engine import events as ev
from mission_control.engine.states import WsState
from mission_control.tui.app import MissionControlApp, build_app
from mission_control.tui.widgets.workstream_table import StatusFilter
from tests.tui.static_engine import RUN_ID, T0, StaticEngine, demo_snapshot


def _app(now: list[float]) -> tuple[MissionControlApp, StaticEngine]:
    engine = StaticEngine(demo_snapshot(), clock=lambda: now[0])
    app = build_app(engine, None, run_engine=False, clock=lambda: now[0], probe_logs=False)
    return app, engine


def _header(app: MissionControlApp) -> str:
    return str(app.header.render())


async def test_a_finished_run_says_so_and_its_clock_stops() -> None:
    now = [T0]
    app, engine = _app(now)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "26m40s" in _header(app)
        for task_id, old in (
            ("PH-07::WS-07B", WsState.RUNNING),
            ("PH-07::WS-07E", WsState.PAUSED),
            ("PH-07::WS-07F", WsState.RUNNING),
        ):
            engine.publish(ev.WorkstreamStateChanged(RUN_ID, task_id, old, WsState.SUCCEEDED, T0))
        engine.publish(ev.RunFinished(RUN_ID, False, T0))
        await pilot.pause()
        now[0] = T0 + 600  # ten minutes later: the run's clock has stopped
        app.run_screen.schedule_refresh()
        await pilot.pause()
        header = _header(app)
        assert "run finished with failures: 4 succeeded, 3 failed, 1 skipped, 2 not run" in header
        assert "in 26m40s" in header
        assert "36m40s" not in header


async def test_attention_counts_in_the_header_and_filters_the_table() -> None:
    app, _ = _app([T0])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        # failed, timed out and blocked, plus the stalled one with a conflict
        assert "! 4 need you" in _header(app)
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert app.table.status_filter is StatusFilter.ATTENTION
        assert set(app.table.visible_tasks) == {
            "PH-07::WS-07D",
            "PH-07::WS-07F",
            "PH-07::WS-07H",
            "PH-07::WS-07J",
        }
        assert "showing attention (4 of 10)" in _header(app)
        await pilot.press("exclamation_mark")
        await pilot.pause()
        assert app.table.row_count == 10
        assert "showing" not in _header(app)


async def test_a_filter_that_hides_everything_says_so_and_esc_shows_all() -> None:
    app, _ = _app([T0])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("f", *"nothing-like-this", "enter")
        await pilot.pause()
        assert app.table.row_count == 0
        empty = app.query_one("#empty")
        assert empty.display
        assert "no workstream is 'nothing-like-this'" in str(empty.render())
        assert "showing 'nothing-like-this' (0 of 10)" in _header(app)
        await pilot.press("escape")
        await pilot.pause()
        assert app.table.row_count == 10
        assert not empty.display


async def test_when_all_work_ends_under_a_lingering_engine_the_clock_stops() -> None:
    """The app's engine stays for retries instead of finishing the run: the header says
    the work ended once nothing runs or waits, and stops counting."""
    now = [T0]
    app, engine = _app(now)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        for task_id, old, new in (
            ("PH-07::WS-07B", WsState.RUNNING, WsState.SUCCEEDED),
            ("PH-07::WS-07E", WsState.PAUSED, WsState.SUCCEEDED),
            ("PH-07::WS-07F", WsState.RUNNING, WsState.FAILED),
            ("PH-07::WS-07G", WsState.QUEUED, WsState.BLOCKED),
        ):
            engine.publish(ev.WorkstreamStateChanged(RUN_ID, task_id, old, new, T0 - 50))
        await pilot.pause()
        for _ in range(60):
            await pilot.pause(0.1)
            if "run finished" in _header(app):
                break
        now[0] = T0 + 600
        app.run_screen.schedule_refresh()
        await pilot.pause()
        header = _header(app)
        assert "run finished with failures: 3 succeeded, 5 failed, 1 skipped, 1 not run" in header
        assert "in 25m50s" in header  # started T0 - 1600, last end T0 - 50


async def test_esc_that_closes_a_dialog_keeps_the_filter() -> None:
    app, _ = _app([T0])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("exclamation_mark", "question_mark")
        await pilot.pause()
        await pilot.press("escape")  # closes the help, nothing else
        await pilot.pause()
        assert app.table.status_filter is StatusFilter.ATTENTION
        await pilot.press("escape")  # now on the filtered table: shows everything
        await pilot.pause()
        assert app.table.status_filter is StatusFilter.ALL


async def test_states_the_app_already_knows_raise_no_toast() -> None:
    """An attached or resumed run publishes states the app read with its snapshot."""
    app, engine = _app([T0])
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        engine.publish(  # WS-07D is failed already in the snapshot
            ev.WorkstreamStateChanged(
                RUN_ID, "PH-07::WS-07D", WsState.FAILED, WsState.FAILED, T0, "exit code 1"
            )
        )
        engine.publish(
            ev.WorkstreamStateChanged(
                RUN_ID, "PH-07::WS-07B", WsState.RUNNING, WsState.FAILED, T0, "exit code 2"
            )
        )
        await pilot.pause()
        titles = [n.title for n in app._notifications]
        assert "PH-07::WS-07B failed" in titles
        assert "PH-07::WS-07D failed" not in titles


async def test_a_failure_toast_gives_the_agents_last_error_line(tmp_path: Path) -> None:
    (tmp_path / "WS-07B.log").write_text(
        "working\n\x1b[31m✘ error: the test database is locked\x1b[0m\nbye\n"
    )
    engine = StaticEngine(demo_snapshot(tmp_path))
    app = build_app(engine, None, run_engine=False, clock=lambda: T0, probe_logs=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        engine.publish(
            ev.WorkstreamStateChanged(
                RUN_ID, "PH-07::WS-07B", WsState.RUNNING, WsState.FAILED, T0, "tool exited 3"
            )
        )
        for _ in range(50):
            await pilot.pause(0.05)
            if app._notifications:
                break
        [toast] = [n for n in app._notifications if n.title == "PH-07::WS-07B failed"]
        assert toast.message == "tool exited 3\n✘ error: the test database is locked"
