"""What the ledger's rows hold, as frozen records, and how a row becomes one.

Rows are read by column name (``sqlite3.Row``), never by position, so a query may list
its columns in any order and a migration that adds a column breaks no reader. JSON
columns are decoded here, once; callers only ever see records.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..engine.states import WsState
from ..plan.model import Workstream


@dataclass(frozen=True, slots=True)
class WorkstreamRow:
    """What ``create_run`` needs to know of one workstream."""

    task_id: str
    phase_id: str
    ws_id: str
    name: str
    tool: str
    branch: str
    worktree_path: str
    depends_on: tuple[str, ...] = ()

    @classmethod
    def from_workstream(cls, ws: Workstream) -> WorkstreamRow:
        return cls(
            task_id=ws.task_id,
            phase_id=ws.phase_id,
            ws_id=ws.id,
            name=ws.name,
            tool=ws.tool,
            branch=ws.branch,
            worktree_path=str(ws.worktree_path),
            depends_on=tuple(ws.depends_on),
        )


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: str
    plan_path: str
    plan_name: str
    options: Mapping[str, Any]
    status: str
    created_at: float
    finished_at: float | None
    owner_pid: int | None
    owner_create_time: float | None
    owner_since: float | None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


@dataclass(frozen=True, slots=True)
class WorkstreamRecord:
    run_id: str
    task_id: str
    position: int
    phase_id: str
    ws_id: str
    name: str
    tool: str
    depends_on: tuple[str, ...]
    branch: str
    worktree_path: str
    state: WsState
    detail: str
    state_at: float
    attempts: int
    base_commit: str | None
    head_commit: str | None
    files_changed: int
    insertions: int
    deletions: int
    pr_url: str | None
    conflicts: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    run_id: str
    task_id: str
    attempt: int
    pid: int | None
    pid_create_time: float | None
    log_path: str
    worktree: str
    branch: str
    base_commit: str | None
    head_commit: str | None
    argv: tuple[str, ...]
    env_names: tuple[str, ...]
    started_at: float
    ended_at: float | None
    status: str
    exit_code: int | None
    signal: int | None
    paused_seconds: float


@dataclass(frozen=True, slots=True)
class EventRecord:
    id: int
    run_id: str
    at: float
    kind: str
    task_id: str | None
    payload: Mapping[str, Any]


RUN_SELECT: Final = "SELECT * FROM runs"
WS_SELECT: Final = "SELECT * FROM workstreams"
ATTEMPT_SELECT: Final = "SELECT a.* FROM attempts a"
EVENT_SELECT: Final = "SELECT * FROM events"


def run_record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        plan_path=row["plan_path"],
        plan_name=row["plan_name"],
        options=json.loads(row["options"]),
        status=row["status"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        owner_pid=row["owner_pid"],
        owner_create_time=row["owner_create_time"],
        owner_since=row["owner_since"],
    )


def workstream_record(row: sqlite3.Row) -> WorkstreamRecord:
    return WorkstreamRecord(
        run_id=row["run_id"],
        task_id=row["task_id"],
        position=row["position"],
        phase_id=row["phase_id"],
        ws_id=row["ws_id"],
        name=row["name"],
        tool=row["tool"],
        depends_on=tuple(json.loads(row["depends_on"])),
        branch=row["branch"],
        worktree_path=row["worktree_path"],
        state=WsState(row["state"]),
        detail=row["detail"],
        state_at=row["state_at"],
        attempts=row["attempts"],
        base_commit=row["base_commit"],
        head_commit=row["head_commit"],
        files_changed=row["files_changed"],
        insertions=row["insertions"],
        deletions=row["deletions"],
        pr_url=row["pr_url"],
        conflicts=tuple((str(o), tuple(files)) for o, files in json.loads(row["conflicts"])),
    )


def attempt_record(row: sqlite3.Row) -> AttemptRecord:
    return AttemptRecord(
        run_id=row["run_id"],
        task_id=row["task_id"],
        attempt=row["attempt"],
        pid=row["pid"],
        pid_create_time=row["pid_create_time"],
        log_path=row["log_path"],
        worktree=row["worktree"],
        branch=row["branch"],
        base_commit=row["base_commit"],
        head_commit=row["head_commit"],
        argv=tuple(json.loads(row["argv"])),
        env_names=tuple(json.loads(row["env_names"])),
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        status=row["status"],
        exit_code=row["exit_code"],
        signal=row["signal"],
        paused_seconds=row["paused_seconds"],
    )


def event_record(row: sqlite3.Row) -> EventRecord:
    return EventRecord(
        id=row["id"],
        run_id=row["run_id"],
        at=row["at"],
        kind=row["kind"],
        task_id=row["task_id"],
        payload=json.loads(row["payload"]),
    )


@dataclass(frozen=True, slots=True)
class RunLedger:
    """Everything the ledger holds of one run, read in one transaction."""

    run: RunRecord
    workstreams: tuple[WorkstreamRecord, ...]
    """In plan order."""
    attempts: tuple[AttemptRecord, ...]
    """In plan order of their workstream, then by number."""
