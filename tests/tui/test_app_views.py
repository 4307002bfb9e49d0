"""The app's views over a fixed run: table, filters, panes, selection, live updates."""

from __future__ import annotations

from pathlib import Path

from textual.binding import Binding

from mission_control.engine import events as ev
from mission_control.engine.events import Tokens
from mission_control.engine.states import WsState
from mission_control.tui.app import MissionControlApp, build_app
from mission_control.tui.screens.message_screen import MessageScreen
from mission_control.tui.widgets.log_pane import LogPane
from mission_control.tui.widgets.workstream_table import StatusFilter
from tests.tui.static_engine import RUN_ID, T0, StaticEngine, demo_snapshot, wide_snapshot


def _app(logs: Path | None = None, probe: bool = True) -> tuple[MissionControlApp, StaticEngine]:
    engine = StaticEngine(demo_snapshot(logs))
    app = build_app(engine, None, run_engine=False, clock=lambda: T0, probe_logs=probe)
    return app, engine


async def test_table_lists_every_workstream_and_selection_reaches_dag_and_pane(
    demo_logs: Path,
) -> None:
    app, _ = _app(demo_logs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.table.row_count == 10
        # the first running workstream is selected at start
        assert app.selected_task == "PH-07::WS-07B"
        assert app.dag.selected == "PH-07::WS-07B"
        await pilot.press("down")
        await pilot.pause()
        assert app.selected_task == "PH-07::WS-07C"
        assert app.dag.selected == "PH-07::WS-07C"
        # the unpinned pane follows the cursor once it rests
        await pilot.pause(0.2)
        assert app.panes[0].task_id == "PH-07::WS-07C"


async def test_text_and_status_filters(demo_logs: Path) -> None:
    app, _ = _app(demo_logs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f")
        await pilot.press(*"loader")
        await pilot.pause()
        assert app.table.visible_tasks == ["PH-07::WS-07D"]
        await pilot.press("escape")
        await pilot.pause()
        assert app.table.row_count == 10
        await pilot.press("v")  # active
        await pilot.pause()
        assert app.table.status_filter is StatusFilter.ACTIVE
        assert set(app.table.visible_tasks) == {"PH-07::WS-07B", "PH-07::WS-07E", "PH-07::WS-07F"}
        await pilot.press("v")  # failed
        await pilot.pause()
        assert set(app.table.visible_tasks) == {
            "PH-07::WS-07D",
            "PH-07::WS-07H",
            "PH-07::WS-07J",
        }


async def test_live_update_changes_only_changed_cells_and_keeps_cursor(demo_logs: Path) -> None:
    app, engine = _app(demo_logs, probe=False)
    async with app.run_test(size=(250, 50)) as pilot:  # wide enough for CPU and memory
        await pilot.press("down", "down", "down")  # WS-07E
        await pilot.pause()
        assert app.selected_task == "PH-07::WS-07E"
        table = app.table
        before = {
            (row, col): table.get_cell(row, col).plain
            for row in table.visible_tasks
            for col in ("status", "cpu", "name")
        }
        writes: list[tuple[str, str]] = []
        original = table.update_cell

        def spy(row_key: object, column_key: object, value: object, **kw: object) -> None:
            writes.append((str(getattr(row_key, "value", row_key)), str(column_key)))
            original(row_key, column_key, value, **kw)  # type: ignore[arg-type]

        table.update_cell = spy  # type: ignore[method-assign]
        engine.sample("PH-07::WS-07B", 88.0, 200 << 20)
        for _ in range(60):  # metrics are shown at the next one-second tick
            await pilot.pause(0.05)
            if writes:
                break
        assert set(writes) == {("PH-07::WS-07B", "cpu"), ("PH-07::WS-07B", "mem")}
        assert table.get_cell("PH-07::WS-07B", "cpu").plain == "88%"
        engine.publish(
            ev.WorkstreamStateChanged(RUN_ID, "PH-07::WS-07C", WsState.PENDING, WsState.QUEUED, T0)
        )
        await pilot.pause()
        assert table.get_cell("PH-07::WS-07C", "status").plain == "◌ queued"
        assert app.selected_task == "PH-07::WS-07E"
        assert table.selected_task == "PH-07::WS-07E"
        assert before[("PH-07::WS-07E", "name")] == table.get_cell("PH-07::WS-07E", "name").plain


async def test_sorting_keeps_the_cursor_on_the_same_workstream(demo_logs: Path) -> None:
    app, _ = _app(demo_logs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("down", "down")
        await pilot.pause()
        chosen = app.selected_task
        app.table.sort_by("status", reverse=True)
        await pilot.pause()
        assert app.table.selected_task == chosen
        assert app.table.visible_tasks[0] != "PH-07::WS-07A"


async def test_panes_add_close_and_choose(demo_logs: Path) -> None:
    app, _ = _app(demo_logs)
    async with app.run_test(size=(200, 50)) as pilot:
        await pilot.press("a")
        await pilot.pause()
        assert len(app.panes) == 2
        assert app.active_pane is app.panes[1]
        assert app.panes[1].task_id == "PH-07::WS-07B"
        # the new pane is pinned: moving the cursor does not move it
        await pilot.press("down", "down")
        await pilot.pause(0.2)
        assert app.panes[1].task_id == "PH-07::WS-07B"
        assert app.panes[0].task_id == "PH-07::WS-07D"
        # enter shows the cursor's workstream in the active pane
        await pilot.press("enter")
        await pilot.pause()
        assert app.panes[1].task_id == "PH-07::WS-07D"
        await pilot.press("a", "a", "a")
        await pilot.pause()
        assert len(app.panes) == 4  # at most four
        assert app.query_one("#logs").has_class("-stacked") is False
        await pilot.press("x")
        await pilot.pause()
        assert len(app.panes) == 3


async def test_panes_stack_on_a_narrow_terminal(demo_logs: Path) -> None:
    app, _ = _app(demo_logs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("a")
        await pilot.pause()
        assert app.query_one("#logs").has_class("-stacked")
        panes = app.query(LogPane)
        assert panes[0].region.y < panes[1].region.y


async def test_log_pane_shows_the_log_and_search_finds_matches(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [f"line {i}" + (" NEEDLE" if i in (40, 150) else "") for i in range(300)]
    (logs / "WS-07B.log").write_text("\n".join(lines) + "\n")
    app, _ = _app(logs)
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.panes[0].log_view
        for _ in range(50):
            await pilot.pause(0.05)
            if view.line_count == 300:
                break
        assert view.line_count == 300
        assert view.follow
        view.focus()
        await pilot.press("slash", *"needle", "enter")
        for _ in range(50):
            await pilot.pause(0.05)
            if view.match_line is not None:
                break
        assert view.match_line in (40, 150)
        first = view.match_line
        assert not view.follow
        await pilot.press("n")
        for _ in range(50):
            await pilot.pause(0.05)
            if view.match_line != first:
                break
        assert {first, view.match_line} == {40, 150}
        await pilot.press("end")
        await pilot.pause()
        assert view.follow


async def test_dag_scrolls_for_a_large_phase() -> None:
    engine = StaticEngine(wide_snapshot(44))
    app = build_app(engine, None, run_engine=False, clock=lambda: T0)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.dag.virtual_size.height > app.dag.size.height
        nodes = app.dag._layout.nodes
        last = max(nodes, key=lambda n: nodes[n].row)
        assert nodes[last].row >= app.dag.size.height
        app.table.select(last)
        await pilot.pause()
        assert app.dag.selected == last
        assert app.dag.scroll_y > 0


async def test_notifications_on_failure_and_run_end(demo_logs: Path) -> None:
    app, engine = _app(demo_logs)
    async with app.run_test(size=(120, 40)) as pilot:
        engine.publish(
            ev.WorkstreamStateChanged(
                RUN_ID, "PH-07::WS-07B", WsState.RUNNING, WsState.TIMED_OUT, T0, "timed out"
            )
        )
        engine.publish(ev.RunFinished(RUN_ID, False, T0))
        for _ in range(50):  # a failure's toast reads the log first, in a thread
            await pilot.pause(0.05)
            if len(app._notifications) >= 2:
                break
        titles = [n.title for n in app._notifications]
        assert "PH-07::WS-07B timed out" in titles
        assert "Run finished" in titles


async def test_a_phase_landing_that_stops_or_lands_is_a_notification(demo_logs: Path) -> None:
    app, engine = _app(demo_logs)
    async with app.run_test(size=(120, 40)) as pilot:
        engine.publish(ev.PhaseLandingStep(RUN_ID, "PH-07", "merge", True, "merged", T0))
        engine.publish(
            ev.PhaseLandingStep(RUN_ID, "PH-07", "stopped", False, "conflicts in f.txt", T0)
        )
        engine.publish(
            ev.PhaseLandingStep(RUN_ID, "PH-08", "push", True, "pushed mc/land/PH-08", T0)
        )
        await pilot.pause()
        titles = [n.title for n in app._notifications]
        assert titles == ["phase PH-07: landing stopped", "phase PH-08 landed"]


async def test_L_lands_the_selected_workstreams_phase(demo_logs: Path) -> None:
    app, engine = _app(demo_logs, probe=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.selected_task == "PH-07::WS-07B"
        await pilot.press("L")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert ("land", "PH-07") in engine.calls
        assert "Land PH-07" in [n.title for n in app._notifications]


async def test_every_key_action_is_also_a_palette_command(demo_logs: Path) -> None:
    app, _ = _app(demo_logs, probe=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        titles = {cmd.title for cmd in app.get_system_commands(app.screen)}
        for binding in app.run_screen.BINDINGS:
            assert isinstance(binding, Binding)
            if binding.action in ("app.quit", "app.change_theme"):
                continue  # Textual's own "Quit" and "Theme" commands
            assert binding.tooltip in titles, binding.action
        assert {"Quit", "Theme"} <= titles


async def test_m_answers_an_agent_that_needs_input(demo_logs: Path) -> None:
    """The question shows in the table, the header counts it, a toast says so, and m opens a
    box whose keys never reach the hotkeys (an `s` in the text skips nothing)."""
    app, engine = _app(demo_logs, probe=False)
    task = "PH-07::WS-07D"  # failed, attempt 2: answerable
    async with app.run_test(size=(200, 60)) as pilot:
        await pilot.pause()
        view = engine.bus.snapshot().workstreams[task]
        assert view.attempt
        engine.publish(
            ev.AgentReported(
                RUN_ID,
                task,
                2,
                "s-1",
                "m",
                "Edit src/x.py",
                "asks: which port?",
                Tokens(1200, 300, 0),
                0.42,
                T0,
            )
        )
        engine.publish(
            ev.WorkstreamStateChanged(
                RUN_ID, task, WsState.FAILED, WsState.NEEDS_INPUT, T0, "asks: which port?"
            )
        )
        await pilot.pause(0.3)
        assert f"{task} needs you" in [n.title for n in app._notifications]
        assert "? 1 asking" in str(app.header.render())
        app.table.move_cursor(row=app.table.get_row_index(task))
        await pilot.pause()
        row = app.table.get_row(task)
        assert any("which port?" in str(cell) for cell in row)
        assert any("$0.42" in str(cell) for cell in row)
        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, MessageScreen)
        await pilot.press(*"use 8080 and skip tests", "enter")
        await pilot.pause(0.3)
        assert ("message", f"{task}: use 8080 and skip tests") in engine.calls
        assert not [c for c in engine.calls if c[0] == "skip"]
        assert not isinstance(app.screen, MessageScreen)
