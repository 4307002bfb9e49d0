"""A run shown, not driven: a fixed ``RunSnapshot`` behind the ``EngineControl`` surface.

Snapshot tests and layout checks need a deterministic screen, which a real run
(with real clocks and processes) cannot give. The engine here holds a bus with
a hand-built snapshot; its commands publish the state changes an engine would,
so the views still react to them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from mission_control.engine import events as ev
from mission_control.engine.bus import EventBus
from mission_control.engine.events import Event, ProcessSample
from mission_control.engine.snapshot import PhaseView, RunSnapshot, WorkstreamView
from mission_control.engine.states import WsState

T0 = 1_780_000_000.0
"""The fixed 'now' of the snapshot scenes (a Sunday in 2026)."""
RUN_ID = "20260528-120000-demo"


def _view(
    phase: str,
    ws: str,
    name: str,
    state: WsState,
    *,
    deps: tuple[str, ...] = (),
    tool: str = "aider",
    attempt: int = 0,
    started: float | None = None,
    ended: float | None = None,
    log_path: str | None = None,
    **extra: object,
) -> WorkstreamView:
    view = WorkstreamView(
        task_id=f"{phase}::{ws}",
        phase_id=phase,
        ws_id=ws,
        name=name,
        tool=tool,
        depends_on=tuple(f"{phase}::{d}" for d in deps),
        timeout_seconds=3600.0,
        branch=f"ws/{phase}/{ws}",
        worktree=f"/tmp/worktrees/{phase}-{ws}",
        state=state,
        attempt=attempt,
        started_at=started,
        ended_at=ended,
        log_path=log_path,
    )
    for key, value in extra.items():
        setattr(view, key, value)
    return view


def demo_snapshot(log_dir: Path | None = None) -> RunSnapshot:
    """Ten workstreams of one phase in every interesting state."""
    phase = "PH-07"

    def log(ws: str) -> str | None:
        return str(log_dir / f"{ws}.log") if log_dir is not None else None

    views = [
        _view(
            phase,
            "WS-07A",
            "Scan for hardcoded paths",
            WsState.SUCCEEDED,
            attempt=1,
            started=T0 - 900,
            ended=T0 - 600,
            insertions=42,
            deletions=7,
            files_changed=3,
            pr_url="https://github.com/acme/pipeline/pull/118",
            log_path=log("WS-07A"),
        ),
        _view(
            phase,
            "WS-07B",
            "Create PATH_INDEX_SPEC.md",
            WsState.RUNNING,
            deps=("WS-07A",),
            tool="codex",
            attempt=1,
            started=T0 - 420,
            pid=4242,
            cpu_percent=37.0,
            rss_bytes=180 << 20,
            last_output_at=T0 - 3,
            log_path=log("WS-07B"),
        ),
        _view(
            phase,
            "WS-07C",
            "Refactor scripts to use index",
            WsState.PENDING,
            deps=("WS-07A", "WS-07B"),
        ),
        _view(
            phase,
            "WS-07D",
            "Port the loaders",
            WsState.FAILED,
            deps=("WS-07A",),
            attempt=2,
            started=T0 - 500,
            ended=T0 - 100,
            exit_code=1,
            detail="exit code 1",
            log_path=log("WS-07D"),
        ),
        _view(
            phase,
            "WS-07E",
            "Docs for the index",
            WsState.PAUSED,
            deps=("WS-07A",),
            tool="claude",
            attempt=1,
            started=T0 - 300,
            paused_at=T0 - 60,
            pid=4343,
            rss_bytes=90 << 20,
            log_path=log("WS-07E"),
        ),
        _view(
            phase,
            "WS-07F",
            "Stalled migration",
            WsState.RUNNING,
            deps=("WS-07A",),
            tool="gemini",
            attempt=1,
            started=T0 - 1500,
            pid=4444,
            stalled=True,
            last_output_at=T0 - 700,
            cpu_percent=0.0,
            rss_bytes=60 << 20,
            conflicts=(("PH-07::WS-07B", ("paths.py",)),),
            log_path=log("WS-07F"),
        ),
        _view(phase, "WS-07G", "Tests for the index", WsState.QUEUED, deps=("WS-07B",)),
        _view(
            phase,
            "WS-07H",
            "Timeout demo",
            WsState.TIMED_OUT,
            attempt=1,
            started=T0 - 4000,
            ended=T0 - 400,
            detail="timed out after 60 min",
        ),
        _view(phase, "WS-07I", "Optional cleanup", WsState.SKIPPED, deps=("WS-07D",)),
        _view(
            phase,
            "WS-07J",
            "Release notes",
            WsState.BLOCKED,
            deps=("WS-07D", "WS-07C"),
            detail="WS-07D failed",
        ),
    ]
    snapshot = RunSnapshot(
        run_id=RUN_ID,
        plan_path="/tmp/plan.yaml",
        plan_name="pipeline-refactor",
        started_at=T0 - 1600,
        phases=[PhaseView(phase, "Path abstraction", 3, tuple(v.task_id for v in views))],
        workstreams={v.task_id: v for v in views},
        current_phase=phase,
    )
    return snapshot


def wide_snapshot(n: int = 44) -> RunSnapshot:
    """A large phase (``n`` workstreams in a layered DAG) for scrolling checks."""
    phase = "PH-09"
    views = []
    for i in range(n):
        deps = tuple(f"WS-{j:02d}" for j in (i // 3 - 1, i // 2 - 2) if 0 <= j < i)
        state = [WsState.SUCCEEDED, WsState.RUNNING, WsState.PENDING, WsState.QUEUED][i % 4]
        views.append(_view(phase, f"WS-{i:02d}", f"Workstream number {i}", state, deps=deps))
    return RunSnapshot(
        run_id=RUN_ID,
        plan_path="/tmp/plan.yaml",
        plan_name="big-plan",
        started_at=T0 - 60,
        phases=[PhaseView(phase, "Big", 8, tuple(v.task_id for v in views))],
        workstreams={v.task_id: v for v in views},
        current_phase=phase,
    )


class StaticEngine:
    """``EngineControl`` over a fixed snapshot; commands publish plausible events."""

    def __init__(self, snapshot: RunSnapshot, clock: Callable[[], float] = lambda: T0) -> None:
        self.bus = EventBus(snapshot)
        self._clock = clock
        self.calls: list[tuple[str, str]] = []
        self.diffs: dict[str, str] = {}

    def snapshot(self) -> RunSnapshot:
        return self.bus.snapshot()

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self.bus.subscribe(callback)

    def subscribe_with_snapshot(
        self, callback: Callable[[Event], None]
    ) -> tuple[RunSnapshot, Callable[[], None]]:
        return self.bus.subscribe_with_snapshot(callback)

    def publish(self, event: Event) -> None:
        self.bus.publish(event)

    def _move(self, task_id: str, new: WsState, detail: str = "") -> None:
        old = self.bus.snapshot().workstreams[task_id].state
        self.publish(ev.WorkstreamStateChanged(RUN_ID, task_id, old, new, self._clock(), detail))

    async def run(self) -> bool:
        await asyncio.Event().wait()
        return True

    async def detach(self) -> None:
        self.calls.append(("detach", ""))

    async def pause(self, task_id: str) -> None:
        self.calls.append(("pause", task_id))
        self._move(task_id, WsState.PAUSED)

    async def resume(self, task_id: str) -> None:
        self.calls.append(("resume", task_id))
        self._move(task_id, WsState.RUNNING)

    async def kill(self, task_id: str) -> None:
        self.calls.append(("kill", task_id))
        self._move(task_id, WsState.KILLED)

    async def retry(self, task_id: str, fresh: bool = False) -> None:
        self.calls.append(("retry-fresh" if fresh else "retry", task_id))
        self._move(task_id, WsState.QUEUED)

    async def skip(self, task_id: str) -> None:
        self.calls.append(("skip", task_id))
        self._move(task_id, WsState.SKIPPED)

    async def send_message(self, task_id: str, text: str) -> str:
        self.calls.append(("message", f"{task_id}: {text}"))
        self._move(task_id, WsState.QUEUED, "a new attempt, continuing its conversation")
        return "a new attempt continues the agent's conversation with it"

    async def land(self, phase_id: str) -> str:
        self.calls.append(("land", phase_id))
        return f"landing phase {phase_id} into mc/land/{phase_id}"

    async def cancel(self, kill: bool = False) -> None:
        self.calls.append(("cancel", "kill" if kill else ""))

    def diff(self, task_id: str) -> str:
        return self.diffs.get(task_id, "")

    def sample(self, task_id: str, cpu: float, rss: int) -> None:
        self.publish(
            ev.MetricsSampled(RUN_ID, {task_id: ProcessSample(cpu, rss, 1)}, self._clock())
        )
