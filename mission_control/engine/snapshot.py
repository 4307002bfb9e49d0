"""Read-only views of a run, and the narrow surface views use to drive the engine.

A view (TUI, headless reporter) gets a ``RunSnapshot`` once, then applies
events to keep it current; it never reaches into the engine's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .events import Event
from .states import WsState


@dataclass(slots=True)
class WorkstreamView:
    """What a view knows of one workstream; mutable so subscribers can fold events in."""

    task_id: str
    phase_id: str
    ws_id: str
    name: str
    tool: str
    depends_on: tuple[str, ...]
    timeout_seconds: float
    branch: str
    worktree: str
    state: WsState = WsState.PENDING
    detail: str = ""
    attempt: int = 0
    pid: int | None = None
    log_path: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    paused_seconds: float = 0.0
    paused_at: float | None = None
    stalled: bool = False
    last_output_at: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    head: str | None = None
    files_changed: int = 0
    insertions: int = 0
    deletions: int = 0
    pr_url: str | None = None
    conflicts: tuple[tuple[str, tuple[str, ...]], ...] = ()
    cpu_percent: float = 0.0
    rss_bytes: int = 0

    def elapsed(self, now: float) -> float:
        """Seconds the current attempt has run, paused time excluded."""
        if self.started_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else now
        paused = self.paused_seconds
        if self.paused_at is not None and self.ended_at is None:
            paused += now - self.paused_at
        return max(0.0, end - self.started_at - paused)


@dataclass(slots=True)
class PhaseView:
    phase_id: str
    name: str
    max_parallel: int
    task_ids: tuple[str, ...]


@dataclass(slots=True)
class RunSnapshot:
    run_id: str
    plan_path: str
    plan_name: str
    started_at: float
    phases: list[PhaseView]
    workstreams: dict[str, WorkstreamView] = field(default_factory=dict)
    current_phase: str | None = None
    finished: bool = False
    ok: bool | None = None


class EngineControl(Protocol):
    """All a view may do with an engine. Commands are safe to call from any thread."""

    def snapshot(self) -> RunSnapshot: ...

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback`` for every event from now on; returns the unsubscribe function."""
        ...

    def subscribe_with_snapshot(
        self, callback: Callable[[Event], None]
    ) -> tuple[RunSnapshot, Callable[[], None]]:
        """A snapshot and a subscription taken under one lock: no event is missed or doubled."""
        ...

    async def pause(self, task_id: str) -> None: ...

    async def resume(self, task_id: str) -> None: ...

    async def kill(self, task_id: str) -> None: ...

    async def retry(self, task_id: str, fresh: bool = False) -> None: ...

    async def skip(self, task_id: str) -> None: ...

    async def cancel(self, kill: bool = False) -> None:
        """Stop starting work and stop running workstreams (gracefully, or at once with ``kill``)."""
        ...
