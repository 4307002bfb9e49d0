"""The ledger's landings: each landing of a phase or a run, and each branch it merges.

A landing is one row per (run, scope, integration branch): running ``land`` again
with the same options continues that row instead of starting over. Each branch
it merges is a row of ``landing_merges`` whose ``state`` says how far it got;
the commit the worktree held before a merge began (``before``) and the commit
merged (``branch_head``) are written before git is asked to merge, so a landing
killed half-way can tell from git whether that merge happened. Every write is
one transaction with the event that says so, as in ``ledger``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .connection import LedgerConnection, dumps
from .records import _record

EV_LANDING: Final = "landing"
EV_LANDING_MERGE: Final = "landing_merge"

_UNSET: Final[Any] = object()

LANDING_SELECT: Final = "SELECT * FROM landings"
MERGE_SELECT: Final = "SELECT * FROM landing_merges"


@dataclass(frozen=True, slots=True)
class LandingRecord:
    landing_id: int
    run_id: str
    scope: str
    """The phase id, or empty for the whole run."""
    into_branch: str
    repo: str
    worktree: str
    base_ref: str
    base_commit: str
    checks_mode: str
    status: str
    detail: str
    head_commit: str | None
    pr_url: str | None
    replaced: str | None
    """The tip of an earlier run's landing branch this one started over from (kept under
    ``refs/mission-control/old/``): the push replaces the remote's copy."""
    started_at: float
    updated_at: float
    finished_at: float | None


@dataclass(frozen=True, slots=True)
class LandingMergeRecord:
    landing_id: int
    task_id: str
    position: int
    branch: str
    state: str
    branch_head: str | None
    before: str | None
    merge_commit: str | None
    files: tuple[str, ...]
    detail: str
    pr_closed: bool
    at: float


def _json_tuple(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _landing(row: Any) -> LandingRecord:
    return _record(LandingRecord, row, {})


def _merge(row: Any) -> LandingMergeRecord:
    decode: dict[str, Callable[[Any], Any]] = {"files": _json_tuple, "pr_closed": bool}
    return _record(LandingMergeRecord, row, decode)


class LandingLedger(LedgerConnection):
    """Reads and writes of landings; ``RunStore`` has them."""

    def find_landing(self, run_id: str, scope: str, into_branch: str) -> LandingRecord | None:
        with self._reading() as conn:
            row = conn.execute(
                f"{LANDING_SELECT} WHERE run_id = ? AND scope = ? AND into_branch = ?",
                (run_id, scope, into_branch),
            ).fetchone()
        return None if row is None else _landing(row)

    def latest_landing_into(self, repo: str, into_branch: str) -> LandingRecord | None:
        """The most recent landing of any run into ``into_branch`` of ``repo``."""
        with self._reading() as conn:
            row = conn.execute(
                f"{LANDING_SELECT} WHERE repo = ? AND into_branch = ?"
                " ORDER BY started_at DESC, landing_id DESC LIMIT 1",
                (repo, into_branch),
            ).fetchone()
        return None if row is None else _landing(row)

    def landings(self, run_id: str) -> list[LandingRecord]:
        with self._reading() as conn:
            rows = conn.execute(
                f"{LANDING_SELECT} WHERE run_id = ? ORDER BY landing_id", (run_id,)
            ).fetchall()
        return [_landing(r) for r in rows]

    def landing_merges(self, landing_id: int) -> list[LandingMergeRecord]:
        """In landing order."""
        with self._reading() as conn:
            rows = conn.execute(
                f"{MERGE_SELECT} WHERE landing_id = ? ORDER BY position", (landing_id,)
            ).fetchall()
        return [_merge(r) for r in rows]

    def start_landing(
        self,
        run_id: str,
        scope: str,
        into_branch: str,
        *,
        repo: str,
        worktree: str,
        base_ref: str,
        base_commit: str,
        checks_mode: str,
        branches: Sequence[tuple[str, str]],
        replaced: str | None = None,
        at: float | None = None,
    ) -> int:
        """Record a landing (or take up the one with these keys) with ``branches``
        ((task id, branch), in landing order); returns its id. Branches new to it are
        ``pending``; every branch gets its place in the order given."""
        now = time.time() if at is None else at
        with self._write() as conn:
            row = conn.execute(
                "SELECT landing_id FROM landings"
                " WHERE run_id = ? AND scope = ? AND into_branch = ?",
                (run_id, scope, into_branch),
            ).fetchone()
            if row is None:
                cur = conn.execute(
                    "INSERT INTO landings (run_id, scope, into_branch, repo, worktree, base_ref,"
                    " base_commit, checks_mode, status, replaced, started_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'landing', ?, ?, ?)",
                    (
                        run_id,
                        scope,
                        into_branch,
                        repo,
                        worktree,
                        base_ref,
                        base_commit,
                        checks_mode,
                        replaced,
                        now,
                        now,
                    ),
                )
                assert cur.lastrowid is not None
                landing_id = int(cur.lastrowid)
            else:
                landing_id = int(row["landing_id"])
                conn.execute(
                    "UPDATE landings SET status = 'landing', detail = '', checks_mode = ?,"
                    " updated_at = ?, finished_at = NULL WHERE landing_id = ?",
                    (checks_mode, now, landing_id),
                )
            for position, (task_id, branch) in enumerate(branches):
                conn.execute(
                    "INSERT INTO landing_merges (landing_id, task_id, position, branch, state, at)"
                    " VALUES (?, ?, ?, ?, 'pending', ?) ON CONFLICT (landing_id, task_id)"
                    " DO UPDATE SET position = excluded.position",
                    (landing_id, task_id, position, branch, now),
                )
            self._event(
                conn,
                run_id,
                EV_LANDING,
                None,
                {
                    "landing_id": landing_id,
                    "status": "landing",
                    "into": into_branch,
                    "scope": scope,
                    "branches": [task for task, _ in branches],
                },
                now,
            )
        return landing_id

    def record_merge(
        self,
        landing_id: int,
        task_id: str,
        state: str,
        *,
        detail: str = "",
        branch_head: str | None = _UNSET,
        before: str | None = _UNSET,
        merge_commit: str | None = _UNSET,
        files: Sequence[str] = _UNSET,
        pr_closed: bool = _UNSET,
        at: float | None = None,
    ) -> None:
        """Move one branch of a landing to ``state``; only the fields given change."""
        now = time.time() if at is None else at
        changes: dict[str, Any] = {"state": state, "detail": detail, "at": now}
        for key, value in (
            ("branch_head", branch_head),
            ("before", before),
            ("merge_commit", merge_commit),
            ("pr_closed", pr_closed),
        ):
            if value is not _UNSET:
                changes[key] = value
        if files is not _UNSET:
            changes["files"] = dumps(list(files))
        with self._write() as conn:
            run = conn.execute(
                "SELECT run_id FROM landings WHERE landing_id = ?", (landing_id,)
            ).fetchone()
            if run is None:
                raise KeyError(f"no landing {landing_id}")
            cur = conn.execute(
                f"UPDATE landing_merges SET {', '.join(f'{k} = ?' for k in changes)}"
                " WHERE landing_id = ? AND task_id = ?",
                (*changes.values(), landing_id, task_id),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no branch {task_id} in landing {landing_id}")
            payload = {k: v for k, v in changes.items() if k not in ("at", "files")}
            if files is not _UNSET:
                payload["files"] = list(files)
            payload["landing_id"] = landing_id
            self._event(conn, run["run_id"], EV_LANDING_MERGE, task_id, payload, now)

    def record_landing(
        self,
        landing_id: int,
        status: str,
        detail: str = "",
        *,
        head_commit: str | None = _UNSET,
        pr_url: str | None = _UNSET,
        finished: bool = False,
        at: float | None = None,
    ) -> None:
        """Set a landing's status (``landing``, ``stopped``, ``landed``) and what it made."""
        now = time.time() if at is None else at
        changes: dict[str, Any] = {"status": status, "detail": detail, "updated_at": now}
        if head_commit is not _UNSET:
            changes["head_commit"] = head_commit
        if pr_url is not _UNSET:
            changes["pr_url"] = pr_url
        changes["finished_at"] = now if finished else None
        with self._write() as conn:
            run = conn.execute(
                "SELECT run_id FROM landings WHERE landing_id = ?", (landing_id,)
            ).fetchone()
            if run is None:
                raise KeyError(f"no landing {landing_id}")
            conn.execute(
                f"UPDATE landings SET {', '.join(f'{k} = ?' for k in changes)}"
                " WHERE landing_id = ?",
                (*changes.values(), landing_id),
            )
            payload = {k: v for k, v in changes.items() if k not in ("updated_at", "finished_at")}
            payload["landing_id"] = landing_id
            self._event(conn, run["run_id"], EV_LANDING, None, payload, now)
