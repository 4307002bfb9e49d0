"""One workstream's life, from pending to its end: the states it may move between and why.

A ``Lifecycle`` owns one workstream for the whole run. Its state changes only
through ``move``, which checks ``ALLOWED``: a move the table does not list is a
bug in the engine and raises. What used to be a dozen flags are a few values:
why an attempt is being stopped (``StopReason``), what the branch needs on the
next attempt (``BranchRewrite``), how a restored workstream goes on
(``Continuation``), and the current attempt's own record (``AttemptRun``),
replaced whole at each new attempt so nothing of the last one lingers.

The engine keeps the loop (decide, start, wake) and the recording and
publishing; this module holds no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from ..agents.report import AgentReport
from ..plan.model import Workstream
from .backend import AttemptHandle, AttemptRequest, EndedUnwatched, StillRunning, Workspace
from .clock import Clock, Timer
from .events import Tokens, spent
from .ports import PortClaim
from .states import WsState
from .tools import FollowUp

S = WsState

_STOPPED = frozenset({S.KILLED, S.SKIPPED, S.INTERRUPTED})
"""Where a stop ends an attempt (a timeout or a stall retry end through a failure)."""
_ENDS = frozenset({S.FAILED, S.QUEUED}) | _STOPPED
"""Where any attempt may end: failed, an automatic retry queued, or stopped."""

ALLOWED: Mapping[WsState, frozenset[WsState]] = {
    S.PENDING: frozenset({S.QUEUED, S.PREPARING, S.BLOCKED, S.SKIPPED, S.KILLED}),
    S.QUEUED: frozenset({S.QUEUED, S.PENDING, S.PREPARING, S.BLOCKED, S.SKIPPED, S.KILLED}),
    # Set back to pending when a dependency it waits for ends otherwise (or on detach);
    # finishing straight away after a restore whose attempt ended unwatched.
    S.PREPARING: _ENDS | {S.PENDING, S.RUNNING, S.FINISHING},
    S.RUNNING: _ENDS | {S.PAUSED, S.FINISHING, S.TIMED_OUT, S.NEEDS_INPUT},
    S.PAUSED: _ENDS | {S.RUNNING, S.FINISHING, S.TIMED_OUT, S.NEEDS_INPUT},
    S.FINISHING: _ENDS | {S.SUCCEEDED},
    S.SUCCEEDED: frozenset({S.QUEUED}),
    S.FAILED: frozenset({S.QUEUED, S.SKIPPED}),
    S.TIMED_OUT: frozenset({S.QUEUED, S.SKIPPED}),
    S.KILLED: frozenset({S.QUEUED, S.SKIPPED}),
    S.SKIPPED: frozenset({S.QUEUED}),
    S.BLOCKED: frozenset({S.PENDING, S.SKIPPED}),
    S.INTERRUPTED: frozenset({S.QUEUED, S.PENDING, S.PREPARING, S.BLOCKED, S.SKIPPED, S.KILLED}),
    # Answered (a message continues it), retried, or skipped.
    S.NEEDS_INPUT: frozenset({S.QUEUED, S.SKIPPED}),
}
"""Which state may follow which. Moving to the state one is in is allowed only where listed
(queued again, with a new reason)."""


class IllegalTransition(RuntimeError):
    """The engine tried a move the table forbids: a bug, never the user's doing."""


class StopReason(Enum):
    """Why a running attempt is being stopped, and so the state it ends in."""

    KILL = "kill"
    SKIP = "skip"
    TIMEOUT = "timeout"
    CANCEL = "cancel"
    """The run is cancelled: the attempt is interrupted (resume starts it again)."""
    STALL_RETRY = "stall_retry"
    """``on_stall: retry``: it ends failed, and is retried while retries remain."""
    STALL_KILL = "stall_kill"
    """``on_stall: kill``: it ends killed, saying it was quiet, not stopped by the user."""

    @property
    def ends_as(self) -> WsState:
        return _STOP_ENDS[self]

    @property
    def attempt_status(self) -> str:
        """How the ledger names the end of an attempt stopped for this reason."""
        return S.KILLED.value if self is StopReason.STALL_RETRY else self.ends_as.value


_STOP_ENDS = {
    StopReason.KILL: S.KILLED,
    StopReason.SKIP: S.SKIPPED,
    StopReason.TIMEOUT: S.TIMED_OUT,
    StopReason.CANCEL: S.INTERRUPTED,
    StopReason.STALL_RETRY: S.FAILED,
    StopReason.STALL_KILL: S.KILLED,
}

STOP_DETAIL: Mapping[WsState, str] = {
    S.KILLED: "killed by the user",
    S.SKIPPED: "skipped by the user",
    S.INTERRUPTED: "stopped with the run: resume to start it again",
}


class BranchRewrite(Enum):
    """What the workstream's branch needs from its next attempt."""

    KEPT = "kept"
    """Built on as it is, pushed as usual."""
    RESET_NEXT = "reset_next"
    """A fresh retry was asked: the next attempt starts the worktree again from its base."""
    REWRITTEN = "rewritten"
    """Reset since its last push: the next push replaces the remote's copy."""


Continuation = StillRunning | EndedUnwatched
"""How a restored workstream goes on: watch its agent again, or finish what ended."""


@dataclass(slots=True)
class AttemptRun:
    """One attempt, from the moment it is prepared until the workstream leaves it."""

    number: int
    log_path: Path | None = None
    request: AttemptRequest | None = None
    workspace: Workspace | None = None
    handle: AttemptHandle | None = None
    """Its running tool, while it runs."""
    recorded: bool = False
    """Recorded as started in the store and not yet as ended."""
    work_ready: bool = False
    """Checked and committed while still finishing: dependents may start."""
    delivered: bool = False
    """Committed and pushed while still finishing: dependents' tools may start."""
    give_up: asyncio.Event = field(default_factory=asyncio.Event)
    """Set on a stop or a detach: a backend still waiting for room lets go."""
    ports: tuple[int, ...] = ()
    """Its ports, for the checks when it finishes."""
    port_claim: PortClaim = field(default_factory=PortClaim)
    """This process's hold on them (``engine.ports``)."""


class Countdown:
    """An attempt's timeout: runs while the tool runs, holds still while it is paused."""

    def __init__(self, clock: Clock, seconds: float, on_expiry: Callable[[], None]) -> None:
        self._clock = clock
        self.remaining = seconds
        self._on_expiry = on_expiry
        self._deadline = 0.0
        self._timer: Timer | None = None

    def start(self) -> None:
        self.stop()
        self._deadline = self._clock.now() + self.remaining
        self._timer = self._clock.call_later(self.remaining, self._expire)

    def stop(self) -> None:
        if self._timer is not None:
            self.remaining = max(0.0, self._deadline - self._clock.now())
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        self.remaining = 0.0
        self._on_expiry()


@dataclass(slots=True)
class OutputWatch:
    """When the tool last wrote to its log: a quiet tool is stalled."""

    last_size: int = -1
    last_output_at: float = 0.0
    stalled: bool = False

    def reset(self, now: float) -> None:
        self.last_size, self.last_output_at, self.stalled = -1, now, False


@dataclass(slots=True)
class AgentUse:
    """What the workstream's agent reported, over its attempts."""

    reports: dict[int, AgentReport] = field(default_factory=dict)
    """The latest report of each attempt."""
    follow_up: FollowUp | None = None
    """The user's message the next attempt continues the conversation with."""
    follow_up_ids: tuple[int, ...] = ()
    """The ledger ids of the messages in ``follow_up``."""
    messages_waiting: bool = False
    """The ledger may hold messages for it not yet handed over."""
    inboxed: set[int] = field(default_factory=set)
    """Messages put in the running attempt's inbox (the relay hands them over)."""

    @property
    def session_id(self) -> str | None:
        """The latest session the agent reported: the one a follow-up goes on with."""
        for number in sorted(self.reports, reverse=True):
            if (session := self.reports[number].session_id) is not None:
                return session
        return None

    def spent(self) -> tuple[int, float]:
        """Tokens and USD used so far, as a budget counts them."""
        tokens, cost = self.totals()
        return tokens.total, cost or 0.0

    def session_cost(self, session_id: str | None) -> float:
        """What the attempts of ``session_id`` cost together."""
        return sum(
            r.cost_usd or 0.0
            for r in self.reports.values()
            if session_id is not None and r.session_id == session_id
        )

    def totals(self) -> tuple[Tokens, float | None]:
        return spent(
            (Tokens(r.input_tokens, r.output_tokens, r.cached_tokens), r.cost_usd)
            for r in self.reports.values()
        )


class Lifecycle:
    """The engine's record of one workstream; only ``move`` changes its state."""

    def __init__(self, ws: Workstream, *, rewrite: BranchRewrite = BranchRewrite.KEPT) -> None:
        self.ws = ws
        self.state = WsState.PENDING
        self.attempts = 0
        """The number of its last attempt (0 before the first)."""
        self.retries_left = ws.retries
        self.losses = 0
        """Attempts lost with their machine in a row, each started again."""
        self.stop: StopReason | None = None
        self.stopping = asyncio.Event()
        """Set with ``stop``: wakes a finishing step or a dependent that waits."""
        self.rewrite = rewrite
        self.held_until = 0.0
        """An automatic retry backs off until then."""
        self.task: asyncio.Task[None] | None = None
        self.run: AttemptRun | None = None
        self.carry_on: Continuation | None = None
        self.worktree: Path | None = None
        self.base_commit: str | None = None
        self.last_head: str | None = None
        """The branch's head as finishing last left it; what it holds is in the engine's
        ``_made_on`` (a dependent starting from it needs no git to know)."""
        self.countdown: Countdown | None = None
        self.output = OutputWatch()
        self.conflicts: dict[str, tuple[str, ...]] = {}
        self.agent = AgentUse()
        self.forecast_base: str | None = None
        """The base commit this branch's conflicts with the base were last forecast against."""

    @property
    def task_id(self) -> str:
        return self.ws.task_id

    @property
    def busy(self) -> bool:
        """Something of the engine works on it now (an attempt, its finishing, a wait)."""
        return self.task is not None and not self.task.done()

    @property
    def handle(self) -> AttemptHandle | None:
        """The running tool: the current attempt's, or an adopted one not yet watched."""
        if self.run is not None and self.run.handle is not None:
            return self.run.handle
        return self.carry_on.handle if isinstance(self.carry_on, StillRunning) else None

    @property
    def recorded(self) -> bool:
        return self.run is not None and self.run.recorded

    @property
    def work_ready(self) -> bool:
        return self.run is not None and self.run.work_ready and self.state is WsState.FINISHING

    @property
    def delivered(self) -> bool:
        """Its work is where dependents take it from, though it is still finishing."""
        return self.run is not None and self.run.delivered and self.state is WsState.FINISHING

    def move(self, new: WsState) -> WsState | None:
        """Move to ``new``; the old state, or None when it already is there (nothing to do)."""
        old = self.state
        allowed = ALLOWED[old]
        if old is new and new not in allowed:
            return None
        if new not in allowed:
            raise IllegalTransition(f"{self.task_id}: {old.value} -> {new.value} is not allowed")
        self.state = new
        return old

    def restore(self, state: WsState) -> WsState:
        """Take the state the store kept for it (resume): its history is not replayed here."""
        if self.state is not WsState.PENDING:
            raise IllegalTransition(f"{self.task_id}: restored twice")
        old, self.state = self.state, state
        return old

    def request_stop(self, reason: StopReason) -> None:
        self.stop = reason
        self.stopping.set()
        if self.run is not None:
            self.run.give_up.set()

    def clear_stop(self) -> StopReason | None:
        reason, self.stop = self.stop, None
        self.stopping.clear()
        return reason

    def begin_attempt(self) -> AttemptRun:
        """A new attempt is being prepared (numbered once its tool is about to start)."""
        self.run = AttemptRun(self.attempts + 1)
        if self.stop is not None:
            self.run.give_up.set()
        return self.run


__all__ = [
    "ALLOWED",
    "STOP_DETAIL",
    "AttemptRun",
    "BranchRewrite",
    "Continuation",
    "Countdown",
    "IllegalTransition",
    "Lifecycle",
    "OutputWatch",
    "StopReason",
]
