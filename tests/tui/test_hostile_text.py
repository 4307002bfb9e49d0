"""Nothing an agent writes reaches the terminal as a control code: names, details, log lines,
diffs and toasts full of escape sequences, very long lines and wide characters."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from mission_control.engine import events as ev
from mission_control.engine.states import WsState
from mission_control.tui.app import MissionControlApp, build_app
from mission_control.tui.screens.diff_screen import DiffScreen
from mission_control.tui.untrusted import plain, styled
from tests.tui.static_engine import RUN_ID, T0, StaticEngine, demo_snapshot

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
HOSTILE = (
    "[b]markup[/b] \x1b[31mred\x1b[0m \x1b]0;pwned\x07 \x1b[2J\x1b[H clear"
    " \x0eshift-out\x0f \x00nul"
    " \x9b31m c1 \x08\x08bs \x1b lone \x1b[999;999H [$error]x[/] \t tab"
)
WIDE = "名前の長いワークストリーム🚀" * 6


def test_plain_and_styled_drop_every_control_code() -> None:
    for text in (plain(HOSTILE), styled(HOSTILE).plain):
        assert not CONTROL.search(text), repr(text)
        assert "red" in text and "clear" in text and "[b]markup[/b]" in text
    assert styled("\x1b[31mred\x1b[0m plain").spans  # colours survive as styles
    assert plain("a\r\nb") == "a b"


def _hostile_scene(logs: Path) -> tuple[MissionControlApp, StaticEngine]:
    snapshot = demo_snapshot(logs)
    snapshot.plan_name = "plan \x1b]0;title\x07[b]x"
    views = snapshot.workstreams
    views["PH-07::WS-07B"].name = HOSTILE
    views["PH-07::WS-07C"].name = WIDE
    views["PH-07::WS-07D"].detail = "tool exited 3: " + HOSTILE
    for ws in ("WS-07A", "WS-07B", "WS-07D", "WS-07E", "WS-07F"):
        (logs / f"{ws}.log").write_text(
            f"{HOSTILE}\n{WIDE}\n" + "x" * 20_000 + "\n" + "\x1b[32mok\x1b[0m\n" * 10
        )
    engine = StaticEngine(snapshot)
    engine.diffs["PH-07::WS-07B"] = (
        "diff --git a/x b/x\n\x1b[32m+" + HOSTILE + "\x1b[0m\n-" + WIDE + "\n+" + "y" * 9000
    )
    app = build_app(engine, None, run_engine=False, clock=lambda: T0, probe_logs=True)
    return app, engine


def _screen_text(app: MissionControlApp) -> list[str]:
    strips = app.screen._compositor.render_strips()
    width = app.size.width
    lines = []
    for strip in strips:
        assert strip.cell_length == width  # no wide or long text breaks the layout
        lines.append("".join(segment.text for segment in strip))
    return lines


async def _until(pilot: Pilot[Any], check: Any) -> None:
    for _ in range(100):
        await pilot.pause(0.05)
        if check():
            return
    raise AssertionError("timed out")


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)])
async def test_hostile_text_never_reaches_the_terminal(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    app, engine = _hostile_scene(tmp_path)
    async with app.run_test(size=size) as pilot:
        pane = app.panes[0]
        await _until(pilot, lambda: pane.log_view.line_count > 3)
        engine.publish(
            ev.WorkstreamStateChanged(
                RUN_ID, "PH-07::WS-07E", WsState.PAUSED, WsState.FAILED, T0, HOSTILE
            )
        )
        engine.publish(ev.EngineWarned(RUN_ID, "PH-07::WS-07F", HOSTILE, T0))
        await pilot.pause(0.3)
        text = _screen_text(app)
        for line in text:
            assert not CONTROL.search(line), repr(line)
        joined = "\n".join(text)
        assert "[b]markup" in joined  # shown as words, not read as markup
        assert "ok" in joined

        await pilot.press("d")
        await _until(pilot, lambda: isinstance(app.screen, DiffScreen))
        await _until(pilot, lambda: "esc to close" in "\n".join(_screen_text(app)))
        diff = _screen_text(app)
        for line in diff:
            assert not CONTROL.search(line), repr(line)
        assert "clear" in "\n".join(diff)
