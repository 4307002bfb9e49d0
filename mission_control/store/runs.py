"""The run ledger: one SQLite file (WAL) that is the single source of truth for runs.

Why this shape:

- SQLite from the standard library, in WAL mode, so a ``status`` process can read while
  the engine writes, and a crash never leaves a half-written file: every public write is
  one ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction, so a SIGKILL at any instant leaves
  either the whole change or none of it.
- ``synchronous=NORMAL``: in WAL mode a committed transaction sits in the WAL file as soon
  as ``COMMIT`` returns, so it survives the death of our process (the requirement).
  Only an operating-system crash or power loss can drop the last few commits, and even
  then the file opens consistent; paying an fsync per state change buys nothing more here.
- One connection shared by all threads behind a lock: writes are small and rare (a few
  per second), so a single connection is simpler than a pool and keeps ordering obvious.
- ``record_state`` changes the workstream row and appends its event in one transaction,
  so the event history and the current state can never disagree.
- A run has one owner, a process identified by pid *and* process start time (pids are
  reused); claiming is atomic, so two racing processes cannot both win.
- Environment values never enter the store: callers pass variable *names*; an ``env``
  mapping found in run options is reduced to its names before it is written.
- The ledger is private (0600 in a 0700 folder, see ``private``): it holds argv and paths.
- Failures the user can fix (a full disk, a damaged file, a table dropped by hand) come
  out as ``LedgerError``, one line with the fix; every statement runs under ``_guard``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import psutil

from .. import crashpoints
from ..engine.states import WsState
from ..errors import SetupError
from ..plan.model import Workstream
from .private import FILE_MODE, is_private, make_private_dir, make_tree_private, open_private

SCHEMA_VERSION: Final = 1
DB_NAME: Final = "state.db"

RUN_RUNNING: Final = "running"
"""Status of a run that has not finished (it may have no live owner: then it can be resumed)."""

RUN_STOPPED: Final = frozenset({"cancelled", "interrupted"})
"""Statuses of a run its user stopped (Ctrl-C, stop all): ``resume`` starts it again."""

CREATE_TIME_TOLERANCE: Final = 1.0
"""Seconds two readings of one process's start time may differ (boot time is re-read)."""

# Event kinds the store itself writes; engines may record any other kind.
EV_RUN_CREATED: Final = "run_created"
EV_RUN_REOPENED: Final = "run_reopened"
EV_RUN_FINISHED: Final = "run_finished"
EV_STATE: Final = "state"
EV_ATTEMPT_STARTED: Final = "attempt_started"
EV_ATTEMPT_PID: Final = "attempt_pid"
EV_ATTEMPT_ENDED: Final = "attempt_ended"
EV_RESULT: Final = "result"
EV_OWNER_CLAIMED: Final = "owner_claimed"
EV_OWNER_RELEASED: Final = "owner_released"


# --------------------------------------------------------------------------- records


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


# --------------------------------------------------------------------------- helpers


def new_run_id(now: float | None = None) -> str:
    """A run id that sorts by start time: ``20261128-153012-ab12`` (local time)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(2)}"


def process_identity(pid: int | None = None) -> tuple[int, float]:
    """``(pid, start time)`` of a process (this one by default): the owner identity."""
    proc = psutil.Process(os.getpid() if pid is None else pid)
    return proc.pid, proc.create_time()


def process_alive(pid: int, create_time: float) -> bool:
    """True when ``pid`` still runs and is the same process that started at ``create_time``."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > CREATE_TIME_TOLERANCE:
            return False  # the pid was reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # it exists; we just may not look at it


def _names_only(options: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``options`` where every ``env`` mapping is replaced by its sorted names."""

    def scrub(value: Any) -> Any:
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if key == "env" and isinstance(item, Mapping):
                    out[str(key)] = sorted(str(k) for k in item)
                else:
                    out[str(key)] = scrub(item)
            return out
        if isinstance(value, list | tuple):
            return [scrub(v) for v in value]
        return value

    result: dict[str, Any] = scrub(options)
    return result


def _check_env_names(names: Iterable[str]) -> tuple[str, ...]:
    out = tuple(names)
    for i, name in enumerate(out):
        if not name or "=" in name or any(c.isspace() for c in name):
            # Never echo the item: it may be a value.
            raise ValueError(f"env_names[{i}] is not a variable name: pass names, never values")
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def _fmt_time(at: float | None) -> str:
    if at is None:
        return "unknown time"
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def _make_private_state(state_dir: Path, db_path: Path) -> None:
    """The state folder 0700 and the ledger 0600, before SQLite makes its -wal and -shm
    files (it gives them the ledger's mode). A folder from before that rule is narrowed."""
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    make_private_dir(state_dir)
    if not is_private(state_dir):
        make_tree_private(state_dir)
    with contextlib.suppress(OSError):  # SQLite says better why it cannot open the file
        # Never open and close an existing ledger here: closing any descriptor of the file
        # drops every POSIX lock this process holds on it, SQLite's included, and another
        # process closing its connection would then delete the WAL under this one.
        if not db_path.exists():
            os.close(open_private(db_path, os.O_RDWR))
        elif not is_private(db_path):
            os.chmod(db_path, FILE_MODE)
        for suffix in ("-wal", "-shm"):
            sidecar = db_path.with_name(db_path.name + suffix)
            if sidecar.exists() and not is_private(sidecar):
                os.chmod(sidecar, FILE_MODE)


class LedgerError(SetupError):
    """The run ledger cannot be used: full disk, damaged file, missing table, no rights."""


def _move_aside(db_path: Path) -> str:
    return (
        f"move it aside (`mv {db_path} {db_path}.old`) to start with an empty ledger,"
        " or pass --state-dir"
    )


def _nearly_full(folder: Path) -> bool:
    """True when the disk holding ``folder`` has less than a MiB free (SQLite then often
    reports only "disk I/O error", when it could not grow its shared-memory file)."""
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def ledger_error(db_path: Path, err: sqlite3.Error) -> LedgerError | None:
    """What ``err`` means for the user and what to do, or None when it is not theirs to fix."""
    name = str(getattr(err, "sqlite_errorname", "") or "")
    text = str(err)
    full = name.startswith("SQLITE_FULL") or "disk is full" in text
    if full or (name.startswith("SQLITE_IOERR") and _nearly_full(db_path.parent)):
        return LedgerError(
            f"no space left for the run ledger {db_path} ({text}): free space on that disk"
            " (or pass --state-dir on another one) and try again; `mission-control resume`"
            " continues a run that was cut short"
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text:
        return LedgerError(f"the run ledger {db_path} is damaged ({text}): {_move_aside(db_path)}")
    if text.startswith(("no such table", "no such column")):
        return LedgerError(
            f"the run ledger {db_path} does not have the tables mission-control made ({text});"
            f" it was changed outside mission-control: {_move_aside(db_path)}"
        )
    if name.startswith("SQLITE_READONLY"):
        return LedgerError(
            f"the run ledger {db_path} cannot be written ({text}): make it and its folder"
            " writable, or pass --state-dir"
        )
    if name.startswith("SQLITE_IOERR"):
        return LedgerError(
            f"cannot read or write the run ledger {db_path} ({text}): check that disk"
            " (is it full, or gone?), or pass --state-dir"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return LedgerError(
            f"the run ledger {db_path} stayed locked by another process ({text}):"
            " wait for it, or pass --state-dir"
        )
    return None


_TABLES: Final = ("runs", "workstreams", "attempts", "events")

_UNSET: Final[Any] = object()

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


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA_V1.split(";"):
        if statement.strip():
            conn.execute(statement)


_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _migrate_0_to_1}
"""``from_version -> step``; each step moves the schema up by one version."""


# --------------------------------------------------------------------------- the store


class RunStore:
    """The run ledger in ``<state_dir>/state.db``. Every method blocks: call it from a thread.

    Safe to share between threads. Several processes may open the same store (a ``status``
    reader beside the running engine); ``claim_owner`` keeps a run to one driver.
    """

    def __init__(self, state_dir: Path | str) -> None:
        self.state_dir = Path(state_dir)
        self.db_path = self.state_dir / DB_NAME
        try:
            _make_private_state(self.state_dir, self.db_path)
        except OSError as err:
            raise SetupError(
                f"cannot create the state folder {self.state_dir}: {err.strerror}; "
                "pass --state-dir with a writable folder"
            ) from err
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                self.db_path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as err:
            raise SetupError(
                f"cannot open the run state {self.db_path}: {err}; "
                "check the folder's permissions or pass --state-dir"
            ) from err
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
            self._check_tables()
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise ledger_error(self.db_path, err) or SetupError(
                f"{self.db_path} is not a usable mission-control state database ({err}); "
                f"{_move_aside(self.db_path)}"
            ) from err
        except BaseException:  # a newer schema, or an interrupt: never leak the connection
            self._conn.close()
            raise

    # -- lifecycle

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        with self._reading() as conn:
            row = conn.execute("PRAGMA user_version").fetchone()
        return int(row[0])

    def _migrate(self) -> None:
        with self._write() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise SetupError(
                    f"{self.db_path} was written by a newer mission-control (schema {version}, "
                    f"this one knows {SCHEMA_VERSION}): upgrade mission-control or pass "
                    "--state-dir"
                )
            while version < SCHEMA_VERSION:
                _MIGRATIONS[version](conn)
                version += 1
                conn.execute(f"PRAGMA user_version={version}")

    def _check_tables(self) -> None:
        """A ledger missing one of its tables (dropped by hand) is refused before any use."""
        found = {
            row[0]
            for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        missing = sorted(set(_TABLES) - found)
        if missing:
            raise LedgerError(
                f"the run ledger {self.db_path} has lost its table {', '.join(missing)}"
                f" (changed outside mission-control): {_move_aside(self.db_path)}"
            )

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Say an SQLite failure the user can fix (full disk, damage) in the ledger's words."""
        try:
            yield
        except sqlite3.Error as err:
            translated = ledger_error(self.db_path, err)
            if translated is None:
                raise  # our own mistake (a constraint, a query): a bug, not the user's
            raise translated from err

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection for one read statement."""
        with self._lock, self._guard():
            yield self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front so it never fails half-way on a lock."""
        with self._lock, self._guard():
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                crashpoints.reach("ledger.write")
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back already (disk full)
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            crashpoints.reach("ledger.written")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: several SELECTs see the same snapshot."""
        with self._lock, self._guard():
            conn = self._conn
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @staticmethod
    def _event(
        conn: sqlite3.Connection,
        run_id: str,
        kind: str,
        task_id: str | None,
        payload: Mapping[str, Any],
        at: float,
    ) -> int:
        cur = conn.execute(
            "INSERT INTO events (run_id, at, kind, task_id, payload) VALUES (?, ?, ?, ?, ?)",
            (run_id, at, kind, task_id, _dumps(payload)),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    # -- runs

    def create_run(
        self,
        run_id: str,
        plan_path: Path | str,
        plan_name: str,
        options: Mapping[str, Any],
        workstreams: Sequence[WorkstreamRow],
        at: float | None = None,
    ) -> None:
        """Record a new run and its workstreams (all ``pending``).

        ``options`` are the settings needed to resume the run; an ``env`` mapping inside
        is stored as its names only.
        """
        now = time.time() if at is None else at
        plan = str(Path(plan_path).resolve())
        with self._write() as conn:
            conn.execute(
                "INSERT INTO runs (run_id, plan_path, plan_name, options, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, plan, plan_name, _dumps(_names_only(options)), RUN_RUNNING, now),
            )
            conn.executemany(
                "INSERT INTO workstreams (run_id, task_id, position, phase_id, ws_id, name,"
                " tool, depends_on, branch, worktree_path, state, detail, state_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?)",
                [
                    (
                        run_id,
                        ws.task_id,
                        i,
                        ws.phase_id,
                        ws.ws_id,
                        ws.name,
                        ws.tool,
                        _dumps(list(ws.depends_on)),
                        ws.branch,
                        ws.worktree_path,
                        WsState.PENDING.value,
                        now,
                    )
                    for i, ws in enumerate(workstreams)
                ],
            )
            self._event(
                conn,
                run_id,
                EV_RUN_CREATED,
                None,
                {"plan_path": plan, "plan_name": plan_name, "workstreams": len(workstreams)},
                now,
            )

    def reopen_run(self, run_id: str, at: float) -> None:
        """Mark a finished run as running again (resume, retry after the end)."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, finished_at = NULL WHERE run_id = ?",
                (RUN_RUNNING, run_id),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no run {run_id}")
            self._event(conn, run_id, EV_RUN_REOPENED, None, {}, at)

    def finish_run(self, run_id: str, status: str, at: float) -> None:
        """Close a run with its final status (``succeeded``, ``failed``, ``cancelled``…)."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                (status, at, run_id),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no run {run_id}")
            self._event(conn, run_id, EV_RUN_FINISHED, None, {"status": status}, at)

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._reading() as conn:
            row = conn.execute(f"{_RUN_SELECT} WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else _run_record(row)

    def latest_run(
        self, plan_path: Path | str | None = None, unfinished_only: bool = False
    ) -> RunRecord | None:
        """The most recent run, optionally of one plan and/or not yet finished."""
        where: list[str] = []
        args: list[Any] = []
        if plan_path is not None:
            where.append("plan_path = ?")
            args.append(str(Path(plan_path).resolve()))
        if unfinished_only:
            where.append("finished_at IS NULL")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._reading() as conn:
            row = conn.execute(
                f"{_RUN_SELECT}{clause} ORDER BY created_at DESC, run_id DESC LIMIT 1", args
            ).fetchone()
        return None if row is None else _run_record(row)

    def resumable_run(self, plan_path: Path | str | None = None) -> RunRecord | None:
        """The run ``resume`` continues, optionally of one plan: the most recent run that is
        unfinished, or that was stopped (``RUN_STOPPED``) and is still its plan's latest run.

        A stopped run that a later run of its plan replaced is not picked: resuming it
        would redo work the later run has built on.
        """
        stopped = sorted(RUN_STOPPED)
        where = [
            f"(finished_at IS NULL OR (status IN ({', '.join('?' * len(stopped))})"
            " AND NOT EXISTS (SELECT 1 FROM runs later WHERE later.plan_path = r.plan_path"
            " AND (later.created_at, later.run_id) > (r.created_at, r.run_id))))"
        ]
        args: list[Any] = list(stopped)
        if plan_path is not None:
            where.append("plan_path = ?")
            args.append(str(Path(plan_path).resolve()))
        with self._reading() as conn:
            row = conn.execute(
                f"{_RUN_SELECT} r WHERE {' AND '.join(where)}"
                " ORDER BY created_at DESC, run_id DESC LIMIT 1",
                args,
            ).fetchone()
        return None if row is None else _run_record(row)

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """Most recent first."""
        with self._reading() as conn:
            rows = conn.execute(
                f"{_RUN_SELECT} ORDER BY created_at DESC, run_id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_run_record(r) for r in rows]

    # -- ownership

    def claim_owner(
        self, run_id: str, pid: int, create_time: float, at: float | None = None
    ) -> None:
        """Make ``(pid, create_time)`` the run's driver.

        Raises ``SetupError`` naming the owner when another live process drives the run;
        takes the run over when the recorded owner is dead (or its pid was reused).
        Atomic: two processes racing for one run cannot both win.
        """
        now = time.time() if at is None else at
        with self._write() as conn:
            row = conn.execute(
                "SELECT owner_pid, owner_create_time, owner_since FROM runs WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            if row is None:
                raise SetupError(
                    f"no run {run_id} in {self.db_path}: check the run id with "
                    "`mission-control status`"
                )
            owner_pid, owner_ct, _since = row
            previous: int | None = None
            if owner_pid is not None:
                same = owner_pid == pid and abs(owner_ct - create_time) <= CREATE_TIME_TOLERANCE
                if same:
                    return
                if process_alive(owner_pid, owner_ct):
                    raise SetupError(
                        f"run {run_id} is driven by mission-control pid {owner_pid} "
                        f"(started {_fmt_time(owner_ct)}): stop it or wait for it"
                    )
                previous = owner_pid
            conn.execute(
                "UPDATE runs SET owner_pid = ?, owner_create_time = ?, owner_since = ?"
                " WHERE run_id = ?",
                (pid, create_time, now, run_id),
            )
            self._event(
                conn, run_id, EV_OWNER_CLAIMED, None, {"pid": pid, "took_over_from": previous}, now
            )

    def release_owner(self, run_id: str, pid: int, at: float | None = None) -> None:
        """Give the run up, if ``pid`` owns it (a no-op otherwise)."""
        now = time.time() if at is None else at
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET owner_pid = NULL, owner_create_time = NULL, owner_since = NULL"
                " WHERE run_id = ? AND owner_pid = ?",
                (run_id, pid),
            )
            if cur.rowcount:
                self._event(conn, run_id, EV_OWNER_RELEASED, None, {"pid": pid}, now)

    def owner_alive(self, run: RunRecord) -> bool:
        """True when the run's recorded owner process still runs."""
        if run.owner_pid is None or run.owner_create_time is None:
            return False
        return process_alive(run.owner_pid, run.owner_create_time)

    # -- workstreams

    def record_state(
        self, run_id: str, task_id: str, state: WsState, detail: str, at: float
    ) -> WsState:
        """Set a workstream's state and append its ``state`` event; returns the old state."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT state FROM workstreams WHERE run_id = ? AND task_id = ?",
                (run_id, task_id),
            ).fetchone()
            if row is None:
                raise KeyError(f"no workstream {task_id} in run {run_id}")
            old = WsState(row[0])
            conn.execute(
                "UPDATE workstreams SET state = ?, detail = ?, state_at = ?"
                " WHERE run_id = ? AND task_id = ?",
                (state.value, detail, at, run_id, task_id),
            )
            self._event(
                conn,
                run_id,
                EV_STATE,
                task_id,
                {"old": old.value, "new": state.value, "detail": detail},
                at,
            )
        return old

    def update_result(
        self,
        run_id: str,
        task_id: str,
        *,
        at: float | None = None,
        base_commit: str | None = _UNSET,
        head_commit: str | None = _UNSET,
        files_changed: int = _UNSET,
        insertions: int = _UNSET,
        deletions: int = _UNSET,
        pr_url: str | None = _UNSET,
        conflicts: Sequence[tuple[str, Sequence[str]]] = _UNSET,
    ) -> None:
        """Update what a workstream produced; only the fields given change.

        ``head_commit`` and ``base_commit`` also go on the latest attempt.
        """
        now = time.time() if at is None else at
        fields: dict[str, Any] = {
            "base_commit": base_commit,
            "head_commit": head_commit,
            "files_changed": files_changed,
            "insertions": insertions,
            "deletions": deletions,
            "pr_url": pr_url,
        }
        changes = {k: v for k, v in fields.items() if v is not _UNSET}
        if conflicts is not _UNSET:
            changes["conflicts"] = [[other, list(files)] for other, files in conflicts]
        if not changes:
            return
        columns = {k: (_dumps(v) if k == "conflicts" else v) for k, v in changes.items()}
        with self._write() as conn:
            cur = conn.execute(
                f"UPDATE workstreams SET {', '.join(f'{k} = ?' for k in columns)}"
                " WHERE run_id = ? AND task_id = ?",
                (*columns.values(), run_id, task_id),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no workstream {task_id} in run {run_id}")
            commits = {k: v for k, v in changes.items() if k in ("base_commit", "head_commit")}
            if commits:
                conn.execute(
                    f"UPDATE attempts SET {', '.join(f'{k} = ?' for k in commits)}"
                    " WHERE run_id = ? AND task_id = ? AND attempt ="
                    " (SELECT MAX(attempt) FROM attempts WHERE run_id = ? AND task_id = ?)",
                    (*commits.values(), run_id, task_id, run_id, task_id),
                )
            self._event(conn, run_id, EV_RESULT, task_id, changes, now)

    def workstreams(self, run_id: str) -> list[WorkstreamRecord]:
        """In plan order."""
        with self._reading() as conn:
            rows = conn.execute(
                f"{_WS_SELECT} WHERE run_id = ? ORDER BY position", (run_id,)
            ).fetchall()
        return [_ws_record(r) for r in rows]

    def workstream(self, run_id: str, task_id: str) -> WorkstreamRecord | None:
        with self._reading() as conn:
            row = conn.execute(
                f"{_WS_SELECT} WHERE run_id = ? AND task_id = ?", (run_id, task_id)
            ).fetchone()
        return None if row is None else _ws_record(row)

    # -- attempts

    def start_attempt(
        self,
        run_id: str,
        task_id: str,
        attempt: int,
        *,
        pid: int | None,
        pid_create_time: float | None,
        log_path: Path | str,
        worktree: Path | str,
        branch: str,
        base_commit: str | None,
        argv: Sequence[str],
        env_names: Iterable[str],
        started_at: float,
    ) -> None:
        """Record an attempt that has started (or is about to: ``pid`` may come later).

        ``env_names`` are the names of the variables set for the process, never values:
        an item holding ``=`` or whitespace is refused.
        """
        names = _check_env_names(env_names)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO attempts (run_id, task_id, attempt, pid, pid_create_time, log_path,"
                " worktree, branch, base_commit, argv, env_names, started_at, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    task_id,
                    attempt,
                    pid,
                    pid_create_time,
                    str(log_path),
                    str(worktree),
                    branch,
                    base_commit,
                    _dumps(list(argv)),
                    _dumps(list(names)),
                    started_at,
                    WsState.RUNNING.value,
                ),
            )
            conn.execute(
                "UPDATE workstreams SET attempts = MAX(attempts, ?),"
                " base_commit = COALESCE(?, base_commit) WHERE run_id = ? AND task_id = ?",
                (attempt, base_commit, run_id, task_id),
            )
            self._event(
                conn,
                run_id,
                EV_ATTEMPT_STARTED,
                task_id,
                {
                    "attempt": attempt,
                    "pid": pid,
                    "log_path": str(log_path),
                    "argv": list(argv),
                    "env_names": list(names),
                },
                started_at,
            )

    def update_attempt_pid(
        self,
        run_id: str,
        task_id: str,
        attempt: int,
        pid: int,
        pid_create_time: float,
        at: float,
    ) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE attempts SET pid = ?, pid_create_time = ?"
                " WHERE run_id = ? AND task_id = ? AND attempt = ?",
                (pid, pid_create_time, run_id, task_id, attempt),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no attempt {attempt} of {task_id} in run {run_id}")
            self._event(conn, run_id, EV_ATTEMPT_PID, task_id, {"attempt": attempt, "pid": pid}, at)

    def end_attempt(
        self,
        run_id: str,
        task_id: str,
        attempt: int,
        *,
        exit_code: int | None,
        signal: int | None,
        status: str,
        ended_at: float,
        paused_seconds: float = 0.0,
    ) -> None:
        """Close an attempt: ``status`` is a workstream state value (``succeeded``, ``failed``…)."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE attempts SET exit_code = ?, signal = ?, status = ?, ended_at = ?,"
                " paused_seconds = ? WHERE run_id = ? AND task_id = ? AND attempt = ?",
                (exit_code, signal, status, ended_at, paused_seconds, run_id, task_id, attempt),
            )
            if cur.rowcount == 0:
                raise KeyError(f"no attempt {attempt} of {task_id} in run {run_id}")
            self._event(
                conn,
                run_id,
                EV_ATTEMPT_ENDED,
                task_id,
                {"attempt": attempt, "exit_code": exit_code, "signal": signal, "status": status},
                ended_at,
            )

    def attempts(self, run_id: str, task_id: str | None = None) -> list[AttemptRecord]:
        """Attempts in plan order of their workstream, then by number."""
        sql = f"{_ATTEMPT_SELECT} JOIN workstreams w USING (run_id, task_id) WHERE a.run_id = ?"
        args: list[Any] = [run_id]
        if task_id is not None:
            sql += " AND a.task_id = ?"
            args.append(task_id)
        with self._reading() as conn:
            rows = conn.execute(f"{sql} ORDER BY w.position, a.attempt", args).fetchall()
        return [_attempt_record(r) for r in rows]

    def open_attempts(self, run_id: str) -> list[AttemptRecord]:
        """Attempts with no recorded end: after a crash, their processes may still run."""
        return [a for a in self.attempts(run_id) if a.ended_at is None]

    # -- events

    def record_event(
        self,
        run_id: str,
        kind: str,
        task_id: str | None,
        payload: Mapping[str, Any],
        at: float,
    ) -> int:
        """Append an event; returns its id. The payload must not hold secret values."""
        with self._write() as conn:
            return self._event(conn, run_id, kind, task_id, payload, at)

    def events(self, run_id: str, after_id: int = 0, limit: int | None = None) -> list[EventRecord]:
        """Events of a run with ``id > after_id``, oldest first (tail with the last id seen)."""
        sql = (
            "SELECT id, run_id, at, kind, task_id, payload FROM events"
            " WHERE run_id = ? AND id > ? ORDER BY id"
        )
        args: list[Any] = [run_id, after_id]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._reading() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [
            EventRecord(
                id=r[0], run_id=r[1], at=r[2], kind=r[3], task_id=r[4], payload=json.loads(r[5])
            )
            for r in rows
        ]

    # -- status output

    def to_ledger_json(self, run_id: str) -> dict[str, Any]:
        """The run as plain JSON data for ``status --json``; times are Unix seconds."""
        with self._read() as conn:
            run_row = conn.execute(f"{_RUN_SELECT} WHERE run_id = ?", (run_id,)).fetchone()
            if run_row is None:
                raise KeyError(f"no run {run_id}")
            ws_rows = conn.execute(
                f"{_WS_SELECT} WHERE run_id = ? ORDER BY position", (run_id,)
            ).fetchall()
            at_rows = conn.execute(
                f"{_ATTEMPT_SELECT} JOIN workstreams w USING (run_id, task_id)"
                " WHERE a.run_id = ? ORDER BY w.position, a.attempt",
                (run_id,),
            ).fetchall()
        run = _run_record(run_row)
        last: dict[str, AttemptRecord] = {}
        for attempt in (_attempt_record(r) for r in at_rows):
            last[attempt.task_id] = attempt
        owner: dict[str, Any] | None = None
        if run.owner_pid is not None:
            owner = {
                "pid": run.owner_pid,
                "create_time": run.owner_create_time,
                "since": run.owner_since,
                "alive": self.owner_alive(run),
            }
        workstreams: list[dict[str, Any]] = []
        for ws in (_ws_record(r) for r in ws_rows):
            att = last.get(ws.task_id)
            workstreams.append(
                {
                    "task_id": ws.task_id,
                    "phase_id": ws.phase_id,
                    "ws_id": ws.ws_id,
                    "name": ws.name,
                    "tool": ws.tool,
                    "depends_on": list(ws.depends_on),
                    "branch": ws.branch,
                    "worktree_path": ws.worktree_path,
                    "state": ws.state.value,
                    "detail": ws.detail,
                    "state_at": ws.state_at,
                    "attempts": ws.attempts,
                    "base_commit": ws.base_commit,
                    "head_commit": ws.head_commit,
                    "files_changed": ws.files_changed,
                    "insertions": ws.insertions,
                    "deletions": ws.deletions,
                    "pr_url": ws.pr_url,
                    "conflicts": [
                        {"with": other, "files": list(files)} for other, files in ws.conflicts
                    ],
                    "log_path": att.log_path if att else None,
                    "last_attempt": None if att is None else _attempt_json(att),
                }
            )
        return {
            "run_id": run.run_id,
            "plan_path": run.plan_path,
            "plan_name": run.plan_name,
            "status": run.status,
            "created_at": run.created_at,
            "finished_at": run.finished_at,
            "owner": owner,
            "state_dir": str(self.state_dir),
            "workstreams": workstreams,
        }


# --------------------------------------------------------------------------- row mapping

_RUN_SELECT: Final = (
    "SELECT run_id, plan_path, plan_name, options, status, created_at, finished_at,"
    " owner_pid, owner_create_time, owner_since FROM runs"
)
_WS_SELECT: Final = (
    "SELECT run_id, task_id, position, phase_id, ws_id, name, tool, depends_on, branch,"
    " worktree_path, state, detail, state_at, attempts, base_commit, head_commit,"
    " files_changed, insertions, deletions, pr_url, conflicts FROM workstreams"
)
_ATTEMPT_SELECT: Final = (
    "SELECT a.run_id, a.task_id, a.attempt, a.pid, a.pid_create_time, a.log_path, a.worktree,"
    " a.branch, a.base_commit, a.head_commit, a.argv, a.env_names, a.started_at, a.ended_at,"
    " a.status, a.exit_code, a.signal, a.paused_seconds FROM attempts a"
)


def _run_record(r: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        run_id=r[0],
        plan_path=r[1],
        plan_name=r[2],
        options=json.loads(r[3]),
        status=r[4],
        created_at=r[5],
        finished_at=r[6],
        owner_pid=r[7],
        owner_create_time=r[8],
        owner_since=r[9],
    )


def _ws_record(r: tuple[Any, ...]) -> WorkstreamRecord:
    return WorkstreamRecord(
        run_id=r[0],
        task_id=r[1],
        position=r[2],
        phase_id=r[3],
        ws_id=r[4],
        name=r[5],
        tool=r[6],
        depends_on=tuple(json.loads(r[7])),
        branch=r[8],
        worktree_path=r[9],
        state=WsState(r[10]),
        detail=r[11],
        state_at=r[12],
        attempts=r[13],
        base_commit=r[14],
        head_commit=r[15],
        files_changed=r[16],
        insertions=r[17],
        deletions=r[18],
        pr_url=r[19],
        conflicts=tuple((str(o), tuple(files)) for o, files in json.loads(r[20])),
    )


def _attempt_record(r: tuple[Any, ...]) -> AttemptRecord:
    return AttemptRecord(
        run_id=r[0],
        task_id=r[1],
        attempt=r[2],
        pid=r[3],
        pid_create_time=r[4],
        log_path=r[5],
        worktree=r[6],
        branch=r[7],
        base_commit=r[8],
        head_commit=r[9],
        argv=tuple(json.loads(r[10])),
        env_names=tuple(json.loads(r[11])),
        started_at=r[12],
        ended_at=r[13],
        status=r[14],
        exit_code=r[15],
        signal=r[16],
        paused_seconds=r[17],
    )


def _attempt_json(a: AttemptRecord) -> dict[str, Any]:
    return {
        "attempt": a.attempt,
        "pid": a.pid,
        "status": a.status,
        "started_at": a.started_at,
        "ended_at": a.ended_at,
        "exit_code": a.exit_code,
        "signal": a.signal,
        "paused_seconds": a.paused_seconds,
        "log_path": a.log_path,
        "worktree": a.worktree,
        "branch": a.branch,
        "base_commit": a.base_commit,
        "head_commit": a.head_commit,
        "argv": list(a.argv),
        "env_names": list(a.env_names),
    }
