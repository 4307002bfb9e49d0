"""What every part of the engine shares: its workstreams, the store, the bus, the loop.

The engine is one class assembled from a few modules, each holding one concern
(``finish_report``, ``attempts``, ``control``, ``resume``, ``engine``), stacked
on this base. Here are the plumbing they all use: the one way a state changes
(``_set_state``: checked by the workstream's ``Lifecycle``, recorded, then
published), the store's thread, the bus, and the views' side of ``EngineControl``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import SetupError
from ..plan.model import Plan
from ..store.runs import RunStore
from . import events as ev
from .backend import Backend, Workspace
from .branches import ExistingBranches
from .bus import EventBus
from .clock import Clock
from .events import Event
from .lifecycle import Lifecycle
from .scheduler import PlanGraph
from .snapshot import PhaseView, RunSnapshot, WorkstreamView
from .states import DONE_FOR_DEPENDENTS, FAILED_STATES, WsState

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RunOptions:
    phase: str | None = None
    max_parallel: int | None = None
    keep_going: bool = False
    run_id: str | None = None
    """Continue this run (resume) instead of starting a new one."""
    linger: bool = False
    """Keep serving commands once all work has ended (the TUI); ``cancel`` ends ``run``."""
    grace_seconds: float | None = None
    retry_backoff_seconds: float = 5.0
    sample_interval: float = 1.0
    backend: str = "local"
    """Where attempts run: a name ``engine.backend.make_backend`` knows (``local``, ``ray``)."""
    ray_address: str | None = None
    """The Ray cluster to use (``auto``: a running local one, else one started for the run)."""
    existing_branches: ExistingBranches = "refuse"
    """A new run meeting branches with earlier runs' commits: stop, build on them, or
    start them again from the base (``engine.branches``). Kept with the run."""


KNOWN_HOLDS = 64
"""The most (commit, commit it holds) pairs handed to git's callers: a longer chain asks git."""


class EngineCore:
    """The shared state and plumbing of the engine (see the module docstring)."""

    plan: Plan
    options: RunOptions
    state_dir: Path
    run_id: str
    graph: PlanGraph
    backend: Backend
    store: RunStore
    bus: EventBus
    _clock: Clock
    _rt: dict[str, Lifecycle]
    _dependents: dict[str, tuple[str, ...]]
    """Direct dependents of each workstream of the plan (built once)."""
    _phases: dict[str, tuple[str, ...]]
    """The workstreams of each phase in the run."""
    _db_pool: ThreadPoolExecutor
    _wake: asyncio.Event
    _loop: asyncio.AbstractEventLoop | None
    _cancelling: bool
    _detaching: bool
    _outside: dict[str, WsState]
    _background: set[asyncio.Future[None]]
    _states: dict[str, WsState]
    """Each workstream's state, as the scheduler reads it (kept by ``_announce``)."""
    _unsettled: set[str]
    """Workstreams the scheduler must look at one by one (a task of theirs may still run,
    a retry may be backing off): every one whose state changed or whose task started
    since it was last found settled."""
    _states_changed: asyncio.Event
    """Set (and replaced) at every state change: wakes what waits on other workstreams."""
    _grace: float
    _made_on: dict[str, str]
    """Commit -> the commit finishing made it on (it holds that one), this run."""

    # ----------------------------------------------------------------- views

    def snapshot(self) -> RunSnapshot:
        return self.bus.snapshot()

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self.bus.subscribe(callback)

    def subscribe_with_snapshot(
        self, callback: Callable[[Event], None]
    ) -> tuple[RunSnapshot, Callable[[], None]]:
        return self.bus.subscribe_with_snapshot(callback)

    def diff(self, task_id: str) -> str:
        """The worktree's diff against its base (blocking: call from a thread)."""
        rt = self._rt[task_id]
        workspace = rt.run.workspace if rt.run is not None else None
        if workspace is None and rt.worktree is not None and rt.base_commit is not None:
            workspace = Workspace(rt.worktree, rt.ws.branch, rt.base_commit)  # restored
        if workspace is None:
            return f"{task_id} has no worktree yet"
        return self.backend.diff(rt.ws, workspace)

    # ------------------------------------------------------------ state

    async def _set_state(self, task_id: str, state: WsState, detail: str = "") -> None:
        """Move the workstream (checked by its lifecycle), record it, then publish it."""
        old = self._rt[task_id].move(state)
        if old is None:
            return
        await self._announce(task_id, old, state, detail)

    async def _announce(self, task_id: str, old: WsState, state: WsState, detail: str) -> None:
        self._states[task_id] = state
        self._unsettled.add(task_id)
        now = self._clock.now()
        await self._db(self.store.record_state, self.run_id, task_id, state, detail, now)
        self._publish(ev.WorkstreamStateChanged(self.run_id, task_id, old, state, now, detail))
        self._notify_state_change()
        if state in FAILED_STATES or state in DONE_FOR_DEPENDENTS:
            self._wake.set()

    def _notify_state_change(self) -> None:
        self._states_changed.set()
        self._states_changed = asyncio.Event()

    async def _unblock_dependents(self, task_id: str) -> None:
        """A workstream retried or skipped: its blocked dependents wait again."""
        frontier, seen = [task_id], set()
        while frontier:
            for other in self._dependents.get(frontier.pop(), ()):
                if other in seen:
                    continue
                seen.add(other)
                frontier.append(other)
                rt = self._rt.get(other)
                if rt is not None and rt.state is WsState.BLOCKED:
                    await self._set_state(other, WsState.PENDING, "")

    # ------------------------------------------------------------ plumbing

    def _ancestry(self, head: str) -> tuple[tuple[str, str], ...]:
        """(commit, the commit finishing made it on) from ``head`` back, as far as this run
        saw (a chain's link holds the links before it), at most ``KNOWN_HOLDS`` pairs."""
        pairs: list[tuple[str, str]] = []
        at: str | None = head
        while at in self._made_on and len(pairs) < KNOWN_HOLDS:
            pairs.append((at, self._made_on[at]))
            at = self._made_on[at]
        return tuple(pairs)

    def _get(self, task_id: str) -> Lifecycle:
        try:
            return self._rt[task_id]
        except KeyError:
            raise SetupError(f"no workstream {task_id} in this run") from None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a command in the background, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(self._warn_if_failed)

    def _warn_if_failed(self, task: asyncio.Future[None]) -> None:
        # Nobody awaits a background command: without this its error would vanish.
        if not task.cancelled() and (err := task.exception()) is not None:
            message = f"background command failed: {err!r}"
            self._publish(ev.EngineWarned(self.run_id, None, message, self._clock.now()))

    def _publish(self, event: Event) -> None:
        self.bus.publish(event)

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_pool, lambda: fn(*args, **kwargs))

    def _initial_snapshot(self) -> RunSnapshot:
        phases = [
            PhaseView(p.phase_id, self.plan.phase(p.phase_id).name, p.max_parallel, p.task_ids)
            for p in self.graph.phases
        ]
        snapshot = RunSnapshot(
            run_id=self.run_id,
            plan_path=str(self.plan.path),
            plan_name=self.plan.name,
            started_at=self._clock.now(),
            phases=phases,
            backend=self.backend.name,
        )
        for rt in self._rt.values():
            ws = rt.ws
            snapshot.workstreams[ws.task_id] = WorkstreamView(
                task_id=ws.task_id,
                phase_id=ws.phase_id,
                ws_id=ws.id,
                name=ws.name,
                tool=ws.tool,
                depends_on=tuple(ws.depends_on),
                timeout_seconds=ws.timeout_seconds,
                branch=ws.branch,
                worktree=str(ws.worktree_path),
                state=rt.state,
            )
        return snapshot


__all__ = ["EngineCore", "RunOptions"]
