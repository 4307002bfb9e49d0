"""The run ledger: one SQLite file (WAL) that is the single source of truth for runs.

The ledger is split by what each part holds, and ``RunStore`` is all of it:

- ``schema``: the tables and their migrations (the file format's one home);
- ``connection``: the shared connection, its transactions, crash points and the
  errors a user can fix (``LedgerError``); why WAL and one connection is said there;
- ``ledger``: every write, each one transaction with the event that says so;
- ``records``: the frozen records a row becomes, read by column name;
- ``landings``: each landing of a phase or run (``land``) and each branch it merges;
- this module: the reads, and the names callers import.

A run has one owner, a process identified by pid *and* start time (``owner``);
claiming is atomic, so two racing processes cannot both win.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from .connection import LedgerError, ledger_error
from .landings import LandingLedger, LandingMergeRecord, LandingRecord
from .ledger import EV_NOTE, RUN_RUNNING, LedgerWriter, new_run_id
from .owner import CREATE_TIME_TOLERANCE, process_alive, process_identity
from .records import (
    ATTEMPT_SELECT,
    EVENT_SELECT,
    RUN_SELECT,
    WS_SELECT,
    AttemptRecord,
    EventRecord,
    MessageRecord,
    RunLedger,
    RunRecord,
    WorkstreamRecord,
    WorkstreamRow,
    attempt_record,
    event_record,
    message_record,
    run_record,
    workstream_record,
)
from .schema import DB_NAME, SCHEMA_VERSION

RUN_STOPPED: Final = frozenset({"cancelled", "interrupted"})
"""Statuses of a run its user stopped (Ctrl-C, stop all): ``resume`` starts it again."""

_ATTEMPTS_IN_ORDER: Final = (
    f"{ATTEMPT_SELECT} JOIN workstreams w USING (run_id, task_id) WHERE a.run_id = ?"
)


class RunStore(LedgerWriter, LandingLedger):
    """The run ledger in ``<state_dir>/state.db``. Every method blocks: call it from a thread.

    Safe to share between threads. Several processes may open the same store (a ``status``
    reader beside the running engine); ``claim_owner`` keeps a run to one driver.
    """

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._reading() as conn:
            row = conn.execute(f"{RUN_SELECT} WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else run_record(row)

    def latest_run(self, plan_path: Path | str | None = None) -> RunRecord | None:
        """The most recent run, optionally of one plan."""
        clause, args = "", []
        if plan_path is not None:
            clause, args = " WHERE plan_path = ?", [str(Path(plan_path).resolve())]
        with self._reading() as conn:
            row = conn.execute(
                f"{RUN_SELECT}{clause} ORDER BY created_at DESC, run_id DESC LIMIT 1", args
            ).fetchone()
        return None if row is None else run_record(row)

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
                f"{RUN_SELECT} r WHERE {' AND '.join(where)}"
                " ORDER BY created_at DESC, run_id DESC LIMIT 1",
                args,
            ).fetchone()
        return None if row is None else run_record(row)

    def list_runs(self, limit: int = 20) -> list[RunRecord]:
        """Most recent first."""
        with self._reading() as conn:
            rows = conn.execute(
                f"{RUN_SELECT} ORDER BY created_at DESC, run_id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [run_record(r) for r in rows]

    def read_run(self, run_id: str) -> RunLedger | None:
        """The run, its workstreams and their attempts as of one moment (one transaction)."""
        with self._read() as conn:
            run = conn.execute(f"{RUN_SELECT} WHERE run_id = ?", (run_id,)).fetchone()
            if run is None:
                return None
            workstreams = conn.execute(
                f"{WS_SELECT} WHERE run_id = ? ORDER BY position", (run_id,)
            ).fetchall()
            attempts = conn.execute(
                f"{_ATTEMPTS_IN_ORDER} ORDER BY w.position, a.attempt", (run_id,)
            ).fetchall()
            notes = conn.execute(
                "SELECT payload FROM events WHERE run_id = ? AND kind = ? ORDER BY id",
                (run_id, EV_NOTE),
            ).fetchall()
        return RunLedger(
            run=run_record(run),
            workstreams=tuple(workstream_record(r) for r in workstreams),
            attempts=tuple(attempt_record(r) for r in attempts),
            notes=tuple(str(json.loads(r[0]).get("message", "")) for r in notes),
        )

    def owner_alive(self, run: RunRecord) -> bool:
        """True when the run's recorded owner process still runs."""
        if run.owner_pid is None or run.owner_create_time is None:
            return False
        return process_alive(run.owner_pid, run.owner_create_time)

    # -- workstreams

    def workstreams(self, run_id: str) -> list[WorkstreamRecord]:
        """In plan order."""
        with self._reading() as conn:
            rows = conn.execute(
                f"{WS_SELECT} WHERE run_id = ? ORDER BY position", (run_id,)
            ).fetchall()
        return [workstream_record(r) for r in rows]

    def workstream(self, run_id: str, task_id: str) -> WorkstreamRecord | None:
        with self._reading() as conn:
            row = conn.execute(
                f"{WS_SELECT} WHERE run_id = ? AND task_id = ?", (run_id, task_id)
            ).fetchone()
        return None if row is None else workstream_record(row)

    # -- attempts

    def attempts(self, run_id: str, task_id: str | None = None) -> list[AttemptRecord]:
        """Attempts in plan order of their workstream, then by number."""
        sql = _ATTEMPTS_IN_ORDER
        args: list[Any] = [run_id]
        if task_id is not None:
            sql += " AND a.task_id = ?"
            args.append(task_id)
        with self._reading() as conn:
            rows = conn.execute(f"{sql} ORDER BY w.position, a.attempt", args).fetchall()
        return [attempt_record(r) for r in rows]

    # -- messages

    def messages(self, run_id: str, *, waiting: bool = False) -> list[MessageRecord]:
        """Follow-up messages of a run, oldest first; ``waiting``: only those not handed over."""
        sql = "SELECT * FROM messages WHERE run_id = ?"
        if waiting:
            sql += " AND handled_at IS NULL"
        with self._reading() as conn:
            rows = conn.execute(f"{sql} ORDER BY id", (run_id,)).fetchall()
        return [message_record(r) for r in rows]

    # -- events

    def events(self, run_id: str, after_id: int = 0, limit: int | None = None) -> list[EventRecord]:
        """Events of a run with ``id > after_id``, oldest first (tail with the last id seen)."""
        sql = f"{EVENT_SELECT} WHERE run_id = ? AND id > ? ORDER BY id"
        args: list[Any] = [run_id, after_id]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._reading() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [event_record(r) for r in rows]


__all__ = [
    "CREATE_TIME_TOLERANCE",
    "DB_NAME",
    "RUN_RUNNING",
    "RUN_STOPPED",
    "SCHEMA_VERSION",
    "AttemptRecord",
    "EventRecord",
    "LandingMergeRecord",
    "LandingRecord",
    "LedgerError",
    "RunLedger",
    "RunRecord",
    "RunStore",
    "WorkstreamRecord",
    "WorkstreamRow",
    "ledger_error",
    "new_run_id",
    "process_alive",
    "process_identity",
]
