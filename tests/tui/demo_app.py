"""Run the demo scene in a terminal: ``uv run python -m tests.tui.demo_app [--wide]``."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from mission_control.tui.app import build_app
from tests.tui.static_engine import T0, StaticEngine, demo_snapshot, wide_snapshot


def main() -> None:
    if "--wide" in sys.argv:
        snapshot = wide_snapshot()
    else:
        logs = Path(tempfile.mkdtemp())
        for ws in ("WS-07A", "WS-07B", "WS-07D", "WS-07E", "WS-07F"):
            (logs / f"{ws}.log").write_text(
                "".join(f"\x1b[32m{ws}\x1b[0m line {i}: working on paths.py\n" for i in range(300))
            )
        snapshot = demo_snapshot(logs)
    app = build_app(StaticEngine(snapshot), None, run_engine=False, clock=lambda: T0)
    print(app.run())


if __name__ == "__main__":
    main()
