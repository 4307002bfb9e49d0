"""What the ledger's rows hold, as frozen records, and how a row becomes one.

Rows are read by column name (``sqlite3.Row``), never by position, so a query may list
its columns in any order and a migration that adds a column breaks no reader. JSON
columns are decoded here, once; callers only ever see records.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, TypeVar

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
    session_id: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    doing: str | None = None
    needs_input: str | None = None
    over_budget: str | None = None


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A follow-up message to a workstream's agent."""

    run_id: str
    task_id: str
    id: int
    text: str
    created_at: float
    attempt: int | None
    how: str | None
    handled_at: float | None


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


R = TypeVar("R")


def _loads(text: str) -> Any:
    return json.loads(text)


def _json_tuple(text: str) -> tuple[Any, ...]:
    return tuple(json.loads(text))


def _conflicts(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((str(o), tuple(files)) for o, files in json.loads(text))


def _record(cls: type[R], row: sqlite3.Row, decode: Mapping[str, Callable[[Any], Any]]) -> R:
    """The record ``cls`` of ``row``: each field from the column of its name, decoded where
    ``decode`` says how (JSON columns, the state enum)."""
    values = {
        f.name: decode[f.name](row[f.name]) if f.name in decode else row[f.name]
        for f in fields(cls)  # type: ignore[arg-type]
    }
    return cls(**values)


def run_record(row: sqlite3.Row) -> RunRecord:
    return _record(RunRecord, row, {"options": _loads})


def workstream_record(row: sqlite3.Row) -> WorkstreamRecord:
    decode = {"depends_on": _json_tuple, "state": WsState, "conflicts": _conflicts}
    return _record(WorkstreamRecord, row, decode)


def attempt_record(row: sqlite3.Row) -> AttemptRecord:
    return _record(AttemptRecord, row, {"argv": _json_tuple, "env_names": _json_tuple})


def message_record(row: sqlite3.Row) -> MessageRecord:
    return _record(MessageRecord, row, {})


def event_record(row: sqlite3.Row) -> EventRecord:
    return _record(EventRecord, row, {"payload": _loads})


@dataclass(frozen=True, slots=True)
class RunLedger:
    """Everything the ledger holds of one run, read in one transaction."""

    run: RunRecord
    workstreams: tuple[WorkstreamRecord, ...]
    """In plan order."""
    attempts: tuple[AttemptRecord, ...]
    """In plan order of their workstream, then by number."""
    notes: tuple[str, ...] = ()
    """What the engine said about the whole run (a spent budget), oldest first."""
