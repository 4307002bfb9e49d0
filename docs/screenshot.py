"""Export the README's screenshot: the app itself renders the demo run to SVG.

    uv run python docs/screenshot.py        # writes docs/mission-control.svg

The run is real (demo repository, simulated agents, the real engine); the
picture is taken once a few workstreams have finished and others are running.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from mission_control.demo.scaffold import create_demo
from mission_control.engine.engine import Engine, RunOptions
from mission_control.engine.states import WsState
from mission_control.plan.loader import load_plan_or_raise
from mission_control.tui.app import build_app

OUT = Path(__file__).with_name("mission-control.svg")


async def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        demo = create_demo(Path(scratch) / "demo", speed=2.0)
        os.environ["PATH"] = f"{demo.bin_dir}{os.pathsep}{os.environ['PATH']}"
        plan = load_plan_or_raise(demo.plan_path)
        engine = Engine(
            plan, state_dir=demo.folder / ".mission-control", options=RunOptions(linger=True)
        )
        app = build_app(engine, plan)
        async with app.run_test(size=(160, 44)) as pilot:
            for _ in range(600):
                await pilot.pause(0.1)
                states = [v.state for v in engine.snapshot().workstreams.values()]
                done = sum(s is WsState.SUCCEEDED for s in states)
                if done >= 5 and WsState.RUNNING in states:
                    break
            await pilot.press("down", "down", "enter")  # the first pane: a finished one
            await pilot.pause(0.5)
            await pilot.press("up", "up", "a")  # a second pane, on a running workstream
            running = [
                i
                for i, v in enumerate(engine.snapshot().workstreams.values())
                if v.state is WsState.RUNNING
            ]
            await pilot.press(*(["down"] * running[0]), "enter")
            await pilot.pause(1.5)
            app.save_screenshot(OUT.name, str(OUT.parent))
            await engine.cancel(kill=True)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
