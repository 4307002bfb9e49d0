"""The one SQLite connection a ledger holds, and the rules every statement runs under.

Why this shape:

- SQLite from the standard library, in WAL mode, so a ``status`` process can read while
  the engine writes, and a crash never leaves a half-written file: every public write is
  one ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction (``_write``), so a SIGKILL at any instant
  leaves either the whole change or none of it.
- ``synchronous=NORMAL``: in WAL mode a committed transaction sits in the WAL file as soon
  as ``COMMIT`` returns, so it survives the death of our process (the requirement).
  Only an operating-system crash or power loss can drop the last few commits, and even
  then the file opens consistent; paying an fsync per state change buys nothing more here.
- One connection shared by all threads behind a lock: writes are small and rare (a few
  per second), so a single connection is simpler than a pool and keeps ordering obvious.
- Rows come back as ``sqlite3.Row``: read by column name, never by position.
- The ledger is private (0600 in a 0700 folder, see ``private``): it holds argv and paths.
- Failures the user can fix (a full disk, a damaged file, a table dropped by hand) come
  out as ``LedgerError``, one line with the fix; every statement runs under ``_guard``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import crashpoints
from ..errors import SetupError
from .private import FILE_MODE, is_private, make_private_dir, make_tree_private, open_private
from .schema import DB_NAME, migrate, missing_tables


class LedgerError(SetupError):
    """The run ledger cannot be used: full disk, damaged file, missing table, no rights."""


def dumps(value: Any) -> str:
    """A value as the ledger stores JSON: sorted keys, so equal values are equal text."""
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


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


class LedgerConnection:
    """The ledger file ``<state_dir>/state.db``, opened, migrated and checked.

    Safe to share between threads; every method blocks, so call it from a thread.
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
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            with self._write() as conn:
                migrate(conn, self.db_path)
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

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _check_tables(self) -> None:
        """A ledger missing one of its tables (dropped by hand) is refused before any use."""
        missing = missing_tables(self._conn)
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
        """Append an event in the caller's transaction; returns its id."""
        cur = conn.execute(
            "INSERT INTO events (run_id, at, kind, task_id, payload) VALUES (?, ?, ?, ?, ?)",
            (run_id, at, kind, task_id, dumps(payload)),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid
