"""A 200 MB log in a pane: shown at once, paged back on demand, memory bounded."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from mission_control.tui.app import build_app
from tests.tui.static_engine import T0, StaticEngine, demo_snapshot

SIZE = 200 << 20


def _big_log(path: Path) -> int:
    line = b"\x1b[36m2026-05-28 12:00:00\x1b[0m agent: " + b"x" * 60 + b"\n"
    block = line * 10_000
    written = 0
    with path.open("wb") as f:
        while written < SIZE:
            f.write(block)
            written += len(block)
        f.write(b"THE LAST LINE\n")
    return written


async def test_a_200mb_log_opens_with_bounded_memory(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    size = _big_log(logs / "WS-07B.log")
    assert size >= SIZE
    app = build_app(
        StaticEngine(demo_snapshot(logs)),
        None,
        run_engine=False,
        clock=lambda: T0,
        probe_logs=False,
    )
    tracemalloc.start()
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            view = app.panes[0].log_view
            for _ in range(200):
                await pilot.pause(0.05)
                if view.line_count:
                    break
            assert view.line_count > 0
            first_count = view.line_count
            # only the end of the file is indexed, and the last line is on screen
            assert first_count * 100 < size
            assert "THE LAST LINE" in view._line_text(view.line_count - 1).plain  # type: ignore[union-attr]
            # scrolling to the top pages older lines in, a step at a time
            view.focus()
            for _ in range(3):
                await pilot.press("home")
                for _ in range(100):
                    await pilot.pause(0.05)
                    if view.line_count > first_count:
                        break
                assert view.line_count > first_count
                first_count = view.line_count
            assert not view.follow
            assert view.window_lines <= view.size.height + 2 * 100 + 1
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, f"peak Python memory {peak >> 20} MiB for a {size >> 20} MiB log"
