"""`i` shows one workstream: why it stopped, each attempt's outcome, its finishing steps."""

from __future__ import annotations

from pathlib import Path

from mission_control.tui.app import build_app
from mission_control.tui.screens.detail_screen import DetailScreen
from tests.tui.static_engine import T0, StaticEngine, demo_snapshot


async def test_details_of_a_failed_workstream(tmp_path: Path) -> None:
    (tmp_path / "attempt-1.log").write_text(
        "agent v1\n\x1b[31m✘ error: the test database is locked\x1b[0m\n"
    )
    (tmp_path / "WS-07D.log").write_text(
        "agent v1\n... working\n"
        "\x1b[31mTraceback (most recent call last):\x1b[0m\n"
        "ValueError: bad loader \x1b]0;title\x07\n"
        "──── check 'tests': pytest -q\n"
        "──── check failed: check 'tests' exited 1\n"
    )
    engine = StaticEngine(demo_snapshot(tmp_path))
    app = build_app(engine, None, run_engine=False, clock=lambda: T0, probe_logs=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.table.select("PH-07::WS-07D")
        await pilot.pause()
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        logs = app.screen.query_one("#logs")
        for _ in range(50):
            await pilot.pause(0.05)
            if "Attempts" in str(logs.render()):
                break
        text = str(logs.render())
        facts = str(app.screen.query_one("#facts").render())
        assert "exit code 1" in facts and "ws/PH-07/WS-07D" in facts
        why = text.split("Attempts")[0]
        assert "Why it stopped" in why and "ValueError: bad loader" in why
        assert "\x1b" not in text and "\x07" not in text
        assert "#1  ✘ error: the test database is locked" in text
        assert "#2  failed" in text
        assert "check failed: check 'tests' exited 1" in text.split("Steps")[1]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DetailScreen)


async def test_details_of_a_workstream_not_started() -> None:
    engine = StaticEngine(demo_snapshot())
    app = build_app(engine, None, run_engine=False, clock=lambda: T0, probe_logs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.table.select("PH-07::WS-07C")
        await pilot.pause()
        await pilot.press("i")
        for _ in range(50):
            await pilot.pause(0.05)
            if "no attempt" in str(app.screen.query_one("#logs").render()):
                break
        assert "no attempt has run yet" in str(app.screen.query_one("#logs").render())


async def test_details_show_the_ports_of_the_latest_attempt() -> None:
    snapshot = demo_snapshot()
    snapshot.workstreams["PH-07::WS-07A"].ports = (20004, 20005)
    app = build_app(
        StaticEngine(snapshot), None, run_engine=False, clock=lambda: T0, probe_logs=False
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.table.select("PH-07::WS-07A")
        await pilot.pause()
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        facts = str(app.screen.query_one("#facts").render())
        assert "ports" in facts and "20004, 20005" in facts
