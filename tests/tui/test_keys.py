"""Keys as lazygit and k9s users expect them: search from anywhere, no hotkey while typing,
a question before anything that stops an agent, help, and a key bar cut only between keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual import events
from textual.binding import Binding
from textual.widgets import Input

from mission_control.tui.app import MissionControlApp, build_app
from mission_control.tui.screens.confirm_screen import ConfirmScreen
from mission_control.tui.screens.help_screen import HelpScreen
from mission_control.tui.widgets.key_bar import KeyBar
from mission_control.tui.widgets.search_box import SearchBox
from tests.tui.static_engine import T0, StaticEngine, demo_snapshot


def _app(logs: Path | None = None) -> tuple[MissionControlApp, StaticEngine]:
    engine = StaticEngine(demo_snapshot(logs))
    app = build_app(
        engine, None, run_engine=False, clock=lambda: T0, probe_logs=False, theme="mission-dark"
    )
    return app, engine


def _type_at_once(app: MissionControlApp, text: str) -> None:
    """Queue every key before any is handled, as a terminal delivers a fast typist's keys."""
    names = {"/": "slash", "\r": "enter"}
    for char in text:
        app.post_message(events.Key(names.get(char, char), char))


async def test_slash_from_the_table_searches_the_pane_and_no_key_falls_through(
    demo_logs: Path,
) -> None:
    app, engine = _app(demo_logs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.focused is app.table
        _type_at_once(app, "/tokens")
        await pilot.pause(0.2)
        box = app.panes[0].query_one(SearchBox)
        assert app.focused is box
        assert box.value == "tokens"  # every letter reached the box...
        assert app.theme == "mission-dark"  # ...none opened the theme picker (t)
        assert not any(call[0] == "skip" for call in engine.calls)  # ...nor skipped (s)
        assert app.screen is app.screen_stack[0]
        # the box shows its text: no border eats its one row
        assert box.region.height == 1 and box.content_region.height == 1
        # the key bar says how to leave the box, and offers no letter as a command
        bar = str(app.query_one(KeyBar).render())
        assert bar.startswith("enter Apply  esc Close")
        assert "/ Search" not in bar and "s Skip" not in bar
        await pilot.press("enter")
        await pilot.pause()
        assert app.focused is app.panes[0].log_view


async def test_a_search_typed_at_once_with_its_enter_is_made(demo_logs: Path) -> None:
    app, engine = _app(demo_logs)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        _type_at_once(app, "/paths\r")
        pane = app.panes[0]
        for _ in range(100):  # the view searches in its own thread
            await pilot.pause(0.05)
            if pane.log_view.match_line is not None:
                break
        assert pane.log_view.match_line is not None  # the enter searched, for every letter
        assert app.focused is pane.log_view
        assert pane.query_one(SearchBox).value == "paths"
        assert len(app.panes) == 1 and engine.calls == []


async def test_filter_box_takes_keys_typed_at_once_and_shows_them(demo_logs: Path) -> None:
    app, engine = _app(demo_logs)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.post_message(events.Key("f", "f"))
        _type_at_once(app, "skip")
        await pilot.pause(0.2)
        box = app.query_one("#filter", Input)
        assert box.value == "skip"
        assert box.content_region.height == 1
        assert engine.calls == []


async def test_j_and_k_move_in_the_table() -> None:
    app, _ = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.selected_task == "PH-07::WS-07B"
        await pilot.press("j", "j")
        assert app.selected_task == "PH-07::WS-07D"
        await pilot.press("k")
        assert app.selected_task == "PH-07::WS-07C"


@pytest.mark.parametrize(("key", "call"), [("s", "skip"), ("K", "kill")])
async def test_stopping_a_running_agent_asks_first(key: str, call: str) -> None:
    app, engine = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.selected_task == "PH-07::WS-07B"  # running
        await pilot.press(key)
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert engine.calls == []
        await pilot.press(key)
        await pilot.pause()
        await pilot.press("enter")  # the focus is on the safe answer
        await pilot.pause()
        assert engine.calls == []
        await pilot.press(key, "y")
        await pilot.pause()
        assert engine.calls == [(call, "PH-07::WS-07B")]


async def test_skip_of_work_not_running_needs_no_question() -> None:
    app, engine = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("j")  # WS-07C, pending
        await pilot.press("s")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert engine.calls == [("skip", "PH-07::WS-07C")]


@pytest.mark.parametrize("key", ["question_mark", "f1"])
async def test_help_lists_every_key_by_context(key: str) -> None:
    app, _ = _app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press(key)
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(str(w.render()) for w in app.screen.query(".help-screen--section"))
        for binding in app.run_screen.BINDINGS:
            assert isinstance(binding, Binding)
            assert binding.tooltip in text, binding.action
        for words in ("Workstream table", "Log pane", "Next match", "Next workstream", "^p"):
            assert words in text
        assert re.search(r"^\[ +Older attempt$", text, re.MULTILINE)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


@pytest.mark.parametrize("width", [80, 100, 120, 200])
async def test_key_bar_shows_whole_keys_and_always_help_and_quit(width: int) -> None:
    app, _ = _app()
    async with app.run_test(size=(width, 30)) as pilot:
        await pilot.pause()
        bar = app.query_one(KeyBar)
        line = str(bar.render())
        assert len(line) <= bar.content_size.width
        assert line.rstrip().endswith("? Help  q Quit")
        left, _ = bar.entries()
        shown = line[: -len("? Help  q Quit")].split("  ")
        pairs = {f"{k} {d}" for k, d in left}
        for cell in (c.strip() for c in shown if c.strip()):
            assert cell in pairs  # no entry is cut
        assert "⏎ Open" in line or "enter Open" in line
        assert "/ Search" in line
        # the log pane's own keys when it has the focus
        app.panes[0].log_view.focus()
        await pilot.pause()
        assert str(bar.render()).startswith(("end Follow", "↘ Follow", "⇲ Follow"))


async def test_a_question_dims_the_screen_behind_it_rather_than_blanking_it() -> None:
    app, _ = _app()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause()
        await pilot.press("K")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        lines = ["".join(s.text for s in strip) for strip in app.screen._compositor.render_strips()]
        assert "pipeline-refactor" in lines[0]  # the header still shows, dimmed
        assert any("Kill PH-07::WS-07B?" in line for line in lines)


async def test_j_and_k_scroll_the_help() -> None:
    from textual.containers import VerticalScroll

    app, _ = _app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        scroll = app.screen.query_one(VerticalScroll)
        await pilot.press("j", "j", "j")
        await pilot.pause()
        assert scroll.scroll_y == 3
        await pilot.press("k")
        await pilot.pause()
        assert scroll.scroll_y == 2
