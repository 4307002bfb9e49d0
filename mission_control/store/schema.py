"""The ledger's tables and the steps that bring an older file up to them.

Kept apart from the code that reads and writes rows so the file format has one home:
a new column is a new migration step here (``from_version -> step``), never an edit of
the version-1 DDL, so state folders written by any earlier mission-control still open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final

from ..errors import SetupError

SCHEMA_VERSION: Final = 4
DB_NAME: Final = "state.db"

TABLES: Final = (
    "runs",
    "workstreams",
    "attempts",
    "events",
    "messages",
    "landings",
    "landing_merges",
)
"""Every table the ledger needs; a file missing one was changed by hand."""

_SCHEMA_V1 = """
CREATE TABLE runs (
    run_id            TEXT PRIMARY KEY,
    plan_path         TEXT NOT NULL,
    plan_name         TEXT NOT NULL,
    options           TEXT NOT NULL,
    status            TEXT NOT NULL,
    created_at        REAL NOT NULL,
    finished_at       REAL,
    owner_pid         INTEGER,
    owner_create_time REAL,
    owner_since       REAL
);
CREATE INDEX runs_by_time ON runs(created_at, run_id);
CREATE INDEX runs_by_plan ON runs(plan_path, created_at);

CREATE TABLE workstreams (
    run_id        TEXT NOT NULL REFERENCES runs(run_id),
    task_id       TEXT NOT NULL,
    position      INTEGER NOT NULL,
    phase_id      TEXT NOT NULL,
    ws_id         TEXT NOT NULL,
    name          TEXT NOT NULL,
    tool          TEXT NOT NULL,
    depends_on    TEXT NOT NULL,
    branch        TEXT NOT NULL,
    worktree_path TEXT NOT NULL,
    state         TEXT NOT NULL,
    detail        TEXT NOT NULL,
    state_at      REAL NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    base_commit   TEXT,
    head_commit   TEXT,
    files_changed INTEGER NOT NULL DEFAULT 0,
    insertions    INTEGER NOT NULL DEFAULT 0,
    deletions     INTEGER NOT NULL DEFAULT 0,
    pr_url        TEXT,
    conflicts     TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_id, task_id)
);

CREATE TABLE attempts (
    run_id          TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    pid             INTEGER,
    pid_create_time REAL,
    log_path        TEXT NOT NULL,
    worktree        TEXT NOT NULL,
    branch          TEXT NOT NULL,
    base_commit     TEXT,
    head_commit     TEXT,
    argv            TEXT NOT NULL,
    env_names       TEXT NOT NULL,
    started_at      REAL NOT NULL,
    ended_at        REAL,
    status          TEXT NOT NULL,
    exit_code       INTEGER,
    signal          INTEGER,
    paused_seconds  REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, task_id, attempt),
    FOREIGN KEY (run_id, task_id) REFERENCES workstreams(run_id, task_id)
);

CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  TEXT NOT NULL REFERENCES runs(run_id),
    at      REAL NOT NULL,
    kind    TEXT NOT NULL,
    task_id TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX events_by_run ON events(run_id, id);
"""


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    _run_script(conn, _SCHEMA_V1)


_AGENT_COLUMNS: Final = (
    "session_id TEXT",
    "model TEXT",
    "input_tokens INTEGER NOT NULL DEFAULT 0",
    "output_tokens INTEGER NOT NULL DEFAULT 0",
    "cached_tokens INTEGER NOT NULL DEFAULT 0",
    "cost_usd REAL",
    "doing TEXT",
    "needs_input TEXT",
    "over_budget TEXT",
)
"""What an attempt's agent reported (``agents.report``); zeros and NULLs for a plain tool."""

_MESSAGES = """
CREATE TABLE messages (
    run_id     TEXT NOT NULL REFERENCES runs(run_id),
    task_id    TEXT NOT NULL,
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    text       TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempt    INTEGER,
    how        TEXT,
    handled_at REAL
);
CREATE INDEX messages_waiting ON messages(run_id, handled_at)
"""
"""Follow-up messages to an agent: ``attempt`` and ``how`` (``live``, ``continued``,
``appended``) once one is handed over; until then it waits."""


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    for column in _AGENT_COLUMNS:
        conn.execute(f"ALTER TABLE attempts ADD COLUMN {column}")
    _run_script(conn, _MESSAGES)


_SCHEMA_V3 = """
CREATE TABLE landings (
    landing_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL REFERENCES runs(run_id),
    scope        TEXT NOT NULL,
    into_branch  TEXT NOT NULL,
    repo         TEXT NOT NULL,
    worktree     TEXT NOT NULL,
    base_ref     TEXT NOT NULL,
    base_commit  TEXT NOT NULL,
    checks_mode  TEXT NOT NULL,
    status       TEXT NOT NULL,
    detail       TEXT NOT NULL DEFAULT '',
    head_commit  TEXT,
    pr_url       TEXT,
    replaced     TEXT,
    started_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    finished_at  REAL,
    UNIQUE (run_id, scope, into_branch)
);

CREATE TABLE landing_merges (
    landing_id   INTEGER NOT NULL REFERENCES landings(landing_id),
    task_id      TEXT NOT NULL,
    position     INTEGER NOT NULL,
    branch       TEXT NOT NULL,
    state        TEXT NOT NULL,
    branch_head  TEXT,
    before       TEXT,
    merge_commit TEXT,
    files        TEXT NOT NULL DEFAULT '[]',
    detail       TEXT NOT NULL DEFAULT '',
    pr_closed    INTEGER NOT NULL DEFAULT 0,
    at           REAL NOT NULL,
    PRIMARY KEY (landing_id, task_id)
);
"""
"""Version 3: each landing of a phase or run (``land``) and each branch it merges."""


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    _run_script(conn, _SCHEMA_V3)


def _migrate_3_to_4(conn: sqlite3.Connection) -> None:
    """Each attempt's ports (``MC_PORT``...), a JSON list."""
    conn.execute("ALTER TABLE attempts ADD COLUMN ports TEXT NOT NULL DEFAULT '[]'")


_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    0: _migrate_0_to_1,
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
}
"""``from_version -> step``; each step moves the schema up by one version."""


def migrate(conn: sqlite3.Connection, db_path: Path) -> None:
    """Bring the file up to ``SCHEMA_VERSION``; the caller holds a write transaction."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SetupError(
            f"{db_path} was written by a newer mission-control (schema {version}, "
            f"this one knows {SCHEMA_VERSION}): upgrade mission-control or pass "
            "--state-dir"
        )
    while version < SCHEMA_VERSION:
        _MIGRATIONS[version](conn)
        version += 1
        conn.execute(f"PRAGMA user_version={version}")


def missing_tables(conn: sqlite3.Connection) -> list[str]:
    """The ledger's tables the file lacks (dropped by hand), sorted."""
    found = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return sorted(set(TABLES) - found)
