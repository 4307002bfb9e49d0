"""Read-only views of a run, and the narrow surface views use to drive the engine.

A view (TUI, headless reporter) gets a ``RunSnapshot`` once, then applies
events to keep it current; it never reaches into the engine's internals.
The same shape is what the ledger projects a run to (``projection``), so a view
that opens an existing run, ``status`` and ``status --json`` all see one thing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .events import Event, Tokens, spent
from .states import TERMINAL, WsState


@dataclass(frozen=True, slots=True)
class AttemptView:
    """One attempt as the ledger recorded it: what ran, where, and how it ended."""

    attempt: int
    pid: int | None
    status: str
    started_at: float
    ended_at: float | None
    exit_code: int | None
    signal: int | None
    paused_seconds: float
    log_path: str
    worktree: str
    branch: str
    base_commit: str | None
    head_commit: str | None
    argv: tuple[str, ...]
    env_names: tuple[str, ...]
    session_id: str | None = None
    model: str | None = None
    tokens: Tokens = field(default_factory=Tokens)
    cost_usd: float | None = None
    doing: str | None = None
    needs_input: str | None = None
    over_budget: str | None = None
    ports: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class OwnerView:
    """The process driving a run (pid and start time: pids are reused)."""

    pid: int
    create_time: float | None
    since: float | None
    alive: bool


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
    state_at: float | None = None
    """When the workstream entered its state."""
    base_commit: str | None = None
    """The commit its branch started from (the ledger's; events do not carry it)."""
    last_attempt: AttemptView | None = None
    """The ledger's record of the latest attempt (projected from the ledger only)."""
    history: tuple[AttemptView, ...] = ()
    """The ledger's record of every attempt, oldest first (projected from the ledger only)."""
    doing: str | None = None
    """The agent's last action, e.g. ``Write src/x.py``."""
    session_id: str | None = None
    model: str | None = None
    needs_input: str | None = None
    """The agent's question (or refused permission) while it waits for the user."""
    tokens: Tokens = field(default_factory=Tokens)
    """Tokens used over all its attempts."""
    cost_usd: float | None = None
    """USD spent over all its attempts; None while no agent reported a cost."""
    ports: tuple[int, ...] = ()
    """The latest attempt's ports (``MC_PORT``...)."""

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
    backend: str = "local"
    """Where attempts run (``local``, ``ray``): worktrees elsewhere than here cannot be opened."""
    status: str | None = None
    """The ledger's status of the run (``running``, ``succeeded``, ``cancelled``…)."""
    finished_at: float | None = None
    owner: OwnerView | None = None
    state_dir: str | None = None
    """The folder of the ledger the run was read from."""
    notes: tuple[str, ...] = ()
    """What was said of the whole run (a spent budget), from the ledger."""


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

    async def send_message(self, task_id: str, text: str) -> str:
        """Give the workstream's agent a follow-up; what becomes of it, in words."""
        ...

    async def land(self, phase_id: str) -> str:
        """Land the phase now, as ``land --phase`` does; what happens, in words (its steps
        come as ``PhaseLandingStep`` events)."""
        ...

    async def cancel(self, kill: bool = False) -> None:
        """Stop starting work and stop running workstreams (gracefully, or now with ``kill``)."""
        ...


def apply_event(snapshot: RunSnapshot, event: Event) -> None:
    """Fold one event into a snapshot; the engine and every view use this same function."""
    from . import events as ev

    match event:
        case ev.WorkstreamStateChanged(task_id=task_id, new=new, at=at, detail=detail):
            view = snapshot.workstreams.get(task_id)
            if view is None:
                return
            if new is WsState.PAUSED and view.paused_at is None:
                view.paused_at = at
            elif view.paused_at is not None and new is not WsState.PAUSED:
                view.paused_seconds += at - view.paused_at
                view.paused_at = None
            if new in (WsState.QUEUED, WsState.PREPARING) and view.state not in (
                WsState.QUEUED,
                WsState.PREPARING,
            ):
                view.ended_at = None
            if view.attempt == 0:  # never ran: it ended when it last reached an end state
                view.ended_at = at if new in _ENDED else None
            elif new in _ENDED and view.ended_at is None:
                view.ended_at = at
            if new is not WsState.RUNNING and new is not WsState.PAUSED:
                view.stalled = False
            view.state = new
            view.detail = detail
            view.state_at = at
        case ev.AttemptStarted(task_id=task_id, attempt=attempt, pid=pid, log_path=log, at=at):
            view = snapshot.workstreams.get(task_id)
            if view is None:
                return
            view.ports = event.ports
            view.attempt = attempt
            view.pid = pid
            view.log_path = log
            view.started_at = at
            view.ended_at = None
            view.paused_seconds = 0.0
            view.paused_at = None
            view.exit_code = None
            view.signal = None
            view.last_output_at = at
            view.cpu_percent = 0.0
            view.rss_bytes = 0
        case ev.AttemptEnded(task_id=task_id, exit_code=code, signal=sig, at=at):
            view = snapshot.workstreams.get(task_id)
            if view is None:
                return
            view.ended_at = at
            view.exit_code = code
            view.signal = sig
            view.pid = None
            view.cpu_percent = 0.0
            view.rss_bytes = 0
        case ev.WorkstreamStalled(task_id=task_id, stalled=stalled, at=at, idle_seconds=idle):
            view = snapshot.workstreams.get(task_id)
            if view is not None:
                view.stalled = stalled
                view.last_output_at = at - idle
        case ev.AgentReported(task_id=task_id):
            view = snapshot.workstreams.get(task_id)
            if view is not None:
                view.session_id = event.session_id
                view.model = event.model
                view.doing = event.doing
                view.needs_input = event.needs_input
                view.tokens = event.tokens
                view.cost_usd = event.cost_usd
                view.last_output_at = event.at
        case ev.WorkstreamResultUpdated(task_id=task_id):
            view = snapshot.workstreams.get(task_id)
            if view is not None:
                view.head = event.head
                view.files_changed = event.files_changed
                view.insertions = event.insertions
                view.deletions = event.deletions
                view.pr_url = event.pr_url
        case ev.ConflictsForecast(task_id=task_id, conflicts=conflicts):
            view = snapshot.workstreams.get(task_id)
            if view is not None:
                view.conflicts = conflicts
        case ev.MetricsSampled(samples=samples):
            for task_id, sample in samples.items():
                view = snapshot.workstreams.get(task_id)
                if view is not None:
                    view.cpu_percent = sample.cpu_percent
                    view.rss_bytes = sample.rss_bytes
        case ev.PhaseStarted(phase_id=phase_id):
            snapshot.current_phase = phase_id
        case ev.RunFinished(ok=ok):
            snapshot.finished = True
            snapshot.ok = ok
        case ev.RunStarted():
            snapshot.finished = False
            snapshot.ok = None
        case _:
            pass


def run_totals(snapshot: RunSnapshot) -> tuple[Tokens, float | None]:
    """Tokens and USD over the whole run (None: no agent reported a cost)."""
    return spent((v.tokens, v.cost_usd) for v in snapshot.workstreams.values())


_ENDED = TERMINAL | {WsState.INTERRUPTED}
