"""Workstream states and the groups of them the scheduler, the store and the views share.

Which state may follow which is said in one place, ``lifecycle.ALLOWED``.
"""

from __future__ import annotations

from enum import StrEnum


class WsState(StrEnum):
    PENDING = "pending"  # waiting for dependencies or its phase
    QUEUED = "queued"  # runnable, waiting for a parallel slot
    PREPARING = "preparing"  # worktree, branch and merges of dependencies
    RUNNING = "running"
    PAUSED = "paused"
    FINISHING = "finishing"  # checks, commit, push, pull request
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    KILLED = "killed"
    SKIPPED = "skipped"
    BLOCKED = "blocked"  # a dependency did not succeed
    INTERRUPTED = "interrupted"  # its process was lost with mission-control
    NEEDS_INPUT = "needs_input"  # its agent ended asking the user something


TERMINAL: frozenset[WsState] = frozenset(
    {
        WsState.SUCCEEDED,
        WsState.FAILED,
        WsState.TIMED_OUT,
        WsState.KILLED,
        WsState.SKIPPED,
        WsState.BLOCKED,
        WsState.NEEDS_INPUT,
    }
)
"""States a workstream stays in unless the user retries it (or answers it)."""

DONE_FOR_DEPENDENTS: frozenset[WsState] = frozenset({WsState.SUCCEEDED, WsState.SKIPPED})
"""States that let dependents start."""

ACTIVE: frozenset[WsState] = frozenset(
    {WsState.PREPARING, WsState.RUNNING, WsState.PAUSED, WsState.FINISHING}
)
"""States that hold a parallel slot."""

FAILED_STATES: frozenset[WsState] = frozenset(
    {WsState.FAILED, WsState.TIMED_OUT, WsState.KILLED, WsState.BLOCKED}
)

ICONS: dict[WsState, str] = {
    WsState.PENDING: "·",
    WsState.QUEUED: "◌",
    WsState.PREPARING: "◔",
    WsState.RUNNING: "▶",
    WsState.PAUSED: "⏸",
    WsState.FINISHING: "◕",
    WsState.SUCCEEDED: "✔",
    WsState.FAILED: "✘",
    WsState.TIMED_OUT: "⏱",
    WsState.KILLED: "☠",
    WsState.SKIPPED: "↷",
    WsState.BLOCKED: "⊘",
    WsState.INTERRUPTED: "↯",
    WsState.NEEDS_INPUT: "?",
}
