"""What a landing is made of: its request, the steps it reports, its result, the
states of each branch's row in the ledger, and the state of one landing under way
(``LandingRun``) that the merge loop (``landing``) and the delivery
(``landing_delivery``) share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..plan.model import Plan, Workstream
from ..store.landings import LandingMergeRecord
from ..store.runs import RunStore
from .landing_order import LandingScope

ChecksMode = Literal["each", "end", "none"]

PENDING = "pending"
MERGING = "merging"
MERGED = "merged"
"""Merged; the checks after it have not passed yet."""
LANDED = "landed"
HELD = "held"
"""The integration branch held the branch's head already."""
CONFLICTED = "conflicted"
CHECK_FAILED = "check_failed"
RESOLVING = "resolving"

IN_FLIGHT = frozenset({MERGING, CONFLICTED, RESOLVING})
"""States a landing stops (or is killed) in with a merge under way in the worktree."""


@dataclass(frozen=True, slots=True)
class LandingStep:
    """One thing a landing did: a merge, a check, a resolution, the push, a pull request."""

    kind: str
    ok: bool
    text: str
    task_id: str | None = None
    branch: str | None = None
    commit: str | None = None
    files: tuple[str, ...] = ()
    tail: tuple[str, ...] = ()

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"event": self.kind, "ok": self.ok, "text": self.text}
        for key in ("task_id", "branch", "commit"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        if self.files:
            data["files"] = list(self.files)
        if self.tail:
            data["tail"] = list(self.tail)
        return data


@dataclass(frozen=True, slots=True)
class LandingRequest:
    plan: Plan
    scope: LandingScope
    checks: ChecksMode = "each"
    resolve_tool: str | None = None
    close_prs: bool = False


@dataclass(frozen=True, slots=True)
class LandingResult:
    ok: bool
    detail: str
    head: str | None = None
    pr_url: str | None = None
    landed: tuple[str, ...] = ()


Report = Callable[[LandingStep], None]


class LandingStopped(Exception):
    """The landing stops at a branch (a conflict, a failed check, a failed push)."""

    def __init__(self, text: str, task_id: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.task_id = task_id


@dataclass
class LandingRun:
    request: LandingRequest
    store: RunStore
    report: Report
    landing_id: int
    detached: bool = False
    """The integration branch is checked out elsewhere: the worktree works on a detached
    HEAD and its result goes to the remote's branch only."""
    rows: dict[str, LandingMergeRecord] = field(default_factory=dict)

    @property
    def scope(self) -> LandingScope:
        return self.request.scope

    @property
    def path(self) -> Path:
        return self.scope.worktree

    def record(self, task_id: str, state: str, **values: Any) -> None:
        self.store.record_merge(self.landing_id, task_id, state, **values)
        self.rows = {r.task_id: r for r in self.store.landing_merges(self.landing_id)}

    def say(
        self,
        kind: str,
        ok: bool,
        text: str,
        ws: Workstream | None = None,
        *,
        commit: str | None = None,
        files: tuple[str, ...] = (),
        tail: tuple[str, ...] = (),
    ) -> None:
        """Report one step, about ``ws`` when given."""
        task_id, branch = (ws.task_id, ws.branch) if ws is not None else (None, None)
        self.report(LandingStep(kind, ok, text, task_id, branch, commit, files, tail))

    def env(self) -> dict[str, str]:
        """What checks and a resolver run with: the plan's ``env:``, then ``MC_*``."""
        return {
            **self.scope.first.env,
            "MC_RUN_ID": self.scope.run_id,
            "MC_LANDING": self.scope.into,
            "MC_WORKTREE": str(self.path),
        }


def landed_tasks(run: LandingRun) -> tuple[str, ...]:
    """The branches of the landing that are on the integration branch."""
    return tuple(t for t, r in run.rows.items() if r.state in (LANDED, HELD))
