"""Snapshots of the main screen in a fixed state, at 80x24, 120x40 and 200x60.

The scene is deterministic: a hand-built run, a fixed clock and run id, fixed
log files, no log probing (its ages would follow the real clock).
Update with ``--snapshot-update`` only after reading the diff report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from mission_control.tui.app import MissionControlApp, build_app
from tests.tui.static_engine import T0, StaticEngine, demo_snapshot


def _scene(logs: Path) -> MissionControlApp:
    for ws in ("WS-07A", "WS-07B", "WS-07D", "WS-07E", "WS-07F"):
        (logs / f"{ws}.log").write_text(
            "".join(f"\x1b[32m[{ws}]\x1b[0m step {i}: edit paths.py\n" for i in range(120))
        )
    engine = StaticEngine(demo_snapshot(logs))
    return build_app(
        engine, None, run_engine=False, clock=lambda: T0, probe_logs=False, theme="mission-dark"
    )


async def _settle(pilot: Pilot[Any]) -> None:
    app = pilot.app
    assert isinstance(app, MissionControlApp)
    for _ in range(100):
        await pilot.pause(0.02)
        if all(p.log_view.line_count > 0 or p.log_view.path is None for p in app.panes):
            break
    await pilot.pause(0.6)  # past the panes' hold after the last key
    # a full repaint, so the picture does not depend on which partial updates came last
    app.screen.refresh(layout=True)
    await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


@pytest.mark.parametrize(
    "size", [(120, 40), (80, 24), (200, 60)], ids=["120x40", "80x24", "200x60"]
)
def test_main_screen(snap_compare: Any, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(_scene(tmp_path), terminal_size=size, run_before=_settle)


def test_two_panes(snap_compare: Any, tmp_path: Path) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await pilot.press("a", "down", "down")
        await _settle(pilot)

    assert snap_compare(_scene(tmp_path), terminal_size=(120, 40), run_before=before)


def test_help_screen(snap_compare: Any, tmp_path: Path) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await pilot.press("question_mark")
        await _settle(pilot)

    assert snap_compare(_scene(tmp_path), terminal_size=(80, 24), run_before=before)


def test_kill_question(snap_compare: Any, tmp_path: Path) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await pilot.press("K")
        await _settle(pilot)

    assert snap_compare(_scene(tmp_path), terminal_size=(80, 24), run_before=before)
