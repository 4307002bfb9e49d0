"""Every write to the run ledger: runs, owners, workstream states, attempts, results.

Each public method is one transaction (``LedgerConnection._write``) that changes the
rows and appends the event saying so, so the event history and the current state can
never disagree. Environment values never enter the store: callers pass variable
*names*; an ``env`` mapping found in run options is reduced to its names before it is
written.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from ..engine.states import WsState
from ..errors import SetupError
from .connection import LedgerConnection, dumps
from .owner import format_start, process_alive, same_process
from .records import WorkstreamRow

RUN_RUNNING: Final = "running"
"""Status of a run that has not finished (it may have no live owner: then it can be resumed)."""

# Event kinds the store itself writes.
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
EV_MESSAGE: Final = "message"
EV_NOTE: Final = "note"

AGENT_FIELDS: Final = (
    "session_id",
    "model",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "doing",
    "needs_input",
    "over_budget",
)
"""The attempt columns an agent's report fills (``agents.report.AgentReport``'s names)."""

_UNSET: Final[Any] = object()


def new_run_id(now: float | None = None) -> str:
    """A run id that sorts by start time: ``20261128-153012-ab12`` (local time)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(2)}"


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


class LedgerWriter(LedgerConnection):
    """The ledger's writes; ``RunStore`` adds the reads."""

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
                (run_id, plan, plan_name, dumps(_names_only(options)), RUN_RUNNING, now),
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
                        dumps(list(ws.depends_on)),
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
                "SELECT owner_pid, owner_create_time FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise SetupError(
                    f"no run {run_id} in {self.db_path}: check the run id with "
                    "`mission-control status`"
                )
            owner_pid, owner_ct = row["owner_pid"], row["owner_create_time"]
            previous: int | None = None
            if owner_pid is not None:
                if same_process(owner_pid, owner_ct, pid, create_time):
                    return
                if process_alive(owner_pid, owner_ct):
                    raise SetupError(
                        f"run {run_id} is driven by mission-control pid {owner_pid} "
                        f"(started {format_start(owner_ct)}): stop it or wait for it"
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
            old = WsState(row["state"])
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
        columns = {k: (dumps(v) if k == "conflicts" else v) for k, v in changes.items()}
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
                    dumps(list(argv)),
                    dumps(list(names)),
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

    # -- agents

    def record_agent(
        self, run_id: str, task_id: str, attempt: int, report: Mapping[str, Any]
    ) -> None:
        """What the attempt's agent reported: ``report`` holds the ``AGENT_FIELDS``."""
        values = [report.get(name) for name in AGENT_FIELDS]
        assignments = ", ".join(f"{name} = ?" for name in AGENT_FIELDS)
        with self._write() as conn:
            conn.execute(
                f"UPDATE attempts SET {assignments}"
                " WHERE run_id = ? AND task_id = ? AND attempt = ?",
                (*values, run_id, task_id, attempt),
            )

    def add_note(self, run_id: str, message: str, at: float) -> None:
        """Something said of the whole run (its budget spent): ``status`` repeats it."""
        with self._write() as conn:
            self._event(conn, run_id, EV_NOTE, None, {"message": message}, at)

    def add_message(self, run_id: str, task_id: str, text: str, at: float) -> int:
        """Keep a follow-up message for the workstream's agent until it is handed over."""
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO messages (run_id, task_id, text, created_at) VALUES (?, ?, ?, ?)",
                (run_id, task_id, text, at),
            )
            message_id = int(cur.lastrowid or 0)
            self._event(conn, run_id, EV_MESSAGE, task_id, {"message": message_id}, at)
        return message_id

    def handle_message(
        self, run_id: str, message_id: int, attempt: int, how: str, at: float
    ) -> None:
        """The message went to ``attempt`` of its workstream: ``live``, ``continued`` or
        ``appended`` (to the prompt of a tool that cannot go on with a conversation)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE messages SET attempt = ?, how = ?, handled_at = ?"
                " WHERE run_id = ? AND id = ?",
                (attempt, how, at, run_id, message_id),
            )
