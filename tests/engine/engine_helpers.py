"""Building plans for engine tests and watching an engine's events while it runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from mission_control.engine import events as ev
from mission_control.engine.engine import Engine, RunOptions
from mission_control.engine.states import WsState
from mission_control.plan.loader import load_plan_or_raise
from mission_control.plan.model import Plan
from tests.helpers import agent_argv


def ws(ws_id: str, *agent_flags: str, deps: Iterable[str] = (), **extra: Any) -> dict[str, Any]:
    """A workstream running the scripted agent with ``agent_flags`` through the shell tool."""
    item: dict[str, Any] = {
        "id": ws_id,
        "name": f"workstream {ws_id}",
        "tool": "shell",
        "command": agent_argv(*agent_flags),
        "depends_on": list(deps),
    }
    item.update(extra)
    return item


def write_plan(
    folder: Path,
    repo: Path,
    phases: list[tuple[str, int, list[dict[str, Any]]]],
    **defaults: Any,
) -> Plan:
    """Write a plan file in ``folder`` and load it the way the CLI does."""
    doc: dict[str, Any] = {
        "version": 1,
        "name": "test plan",
        "defaults": {"repo": str(repo), "base_branch": "main", "timeout_minutes": 2, **defaults},
        "phases": [
            {"id": pid, "name": f"phase {pid}", "max_parallel_workstreams": limit, "workstreams": w}
            for pid, limit, w in phases
        ],
    }
    path = folder / "plan.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_plan_or_raise(path)


class Recorder:
    """Collects every event of an engine and lets a test await a condition on them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.events: list[ev.Event] = []
        self.states: dict[str, WsState] = {}
        self._changed = asyncio.Event()
        engine.subscribe(self._on_event)

    def _on_event(self, event: ev.Event) -> None:
        self.events.append(event)
        if isinstance(event, ev.WorkstreamStateChanged):
            self.states[event.task_id] = event.new
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; states: {self.states}")
            self._changed.clear()
            try:
                # Not only events: a predicate may read what no event announces (a
                # backend's requests), so it is looked at again now and then.
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))
            except TimeoutError:
                continue

    async def state(self, task_id: str, *states: WsState, timeout: float = 30.0) -> None:
        await self.until(lambda: self.states.get(task_id) in states, timeout)

    def transitions(self, task_id: str) -> list[WsState]:
        return [
            e.new
            for e in self.events
            if isinstance(e, ev.WorkstreamStateChanged) and e.task_id == task_id
        ]

    def details(self, task_id: str) -> list[str]:
        return [
            e.detail
            for e in self.events
            if isinstance(e, ev.WorkstreamStateChanged) and e.task_id == task_id
        ]


def make_engine(plan: Plan, state_dir: Path, **options: Any) -> Engine:
    opts = {"grace_seconds": 0.5, "retry_backoff_seconds": 0.1, "sample_interval": 0.2, **options}
    return Engine(plan, state_dir=state_dir, options=RunOptions(**opts))
