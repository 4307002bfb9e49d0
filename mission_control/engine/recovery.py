"""Picking a run up again after mission-control stopped: by crash, detach or closed terminal.

The store says what each workstream was doing; the processes say whether it is
still doing it. Each unfinished workstream gets one of four fates:
- its agent still runs (same pid, same start time): adopt it, log and timeout go on;
- its agent ended while nobody watched: read the exit status its wrapper left and
  finish it (exit 0) or fail it, as if we had been there;
- its agent is gone without a word: ``interrupted``, started again in its worktree;
- it had not started an agent: it simply waits again.
An attempt recorded without a pid (a crash between record and spawn) may have a
process we never learned of: it is found by its ``MC_*`` environment and stopped
before a new attempt starts, so two agents never share a worktree.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

from ..store.runs import AttemptRecord, RunStore, WorkstreamRecord
from .backend import AttemptHandle
from .process_tree import is_alive, processes_with_env, signal_all
from .states import TERMINAL, WsState
from .supervisor import ExitStatus, adopt, read_exit_file


@dataclass(slots=True)
class Restored:
    state: WsState
    detail: str
    attempt: int
    worktree: Path | None = None
    base_commit: str | None = None
    log_path: Path | None = None
    started_at: float | None = None
    last_attempt: AttemptRecord | None = None
    adopted: AttemptHandle | None = None
    ended: ExitStatus | None = None
    """Set when the attempt ended unwatched: the engine records the end, then finishes it."""
    paused: bool = False
    remote: bool = False
    """The attempt ran elsewhere (a cluster node): its backend may still be able to adopt it."""
    record: WorkstreamRecord | None = None
    """What the store held: results and conflicts for the views."""


def exit_file_for(log_path: Path) -> Path:
    return log_path.with_suffix(".exit")


def restore_run(store: RunStore, run_id: str, *, local: bool = True) -> dict[str, Restored]:
    """Decide, for every workstream of a stored run, how it continues. Blocking.

    With ``local=False`` the attempts ran on other machines: nothing here is
    adopted or stopped, and an attempt without a recorded end is left for the
    backend to find (``Restored.remote``).
    """
    attempts: dict[str, AttemptRecord] = {}
    for record in store.attempts(run_id):
        attempts[record.task_id] = record  # ordered by attempt: the last one wins
    restored: dict[str, Restored] = {}
    for ws in store.workstreams(run_id):
        last = attempts.get(ws.task_id)
        r = restored[ws.task_id] = _restore_one(ws, last, local)
        if local and r.state is WsState.INTERRUPTED and last is not None and last.ended_at is None:
            # Its process is gone for good: the row says so now, before a new attempt starts.
            store.end_attempt(
                run_id,
                ws.task_id,
                last.attempt,
                exit_code=None,
                signal=None,
                status=WsState.INTERRUPTED.value,
                ended_at=time.time(),
            )
    return restored


def _restore_one(ws: WorkstreamRecord, last: AttemptRecord | None, local: bool) -> Restored:
    base = Restored(ws.state, ws.detail, ws.attempts, record=ws)
    if last is not None:
        base.worktree = Path(last.worktree)
        base.base_commit = last.base_commit or ws.base_commit
        base.log_path = Path(last.log_path)
        base.started_at = last.started_at
        base.last_attempt = last
    if ws.state in TERMINAL:
        return base
    if last is None or last.ended_at is not None:
        ended_ok = last is not None and last.ended_at is not None and last.exit_code == 0
        if ws.state is WsState.FINISHING and ended_ok:
            base.ended = ExitStatus(0, None)
            base.remote = not local
            base.detail = "finishing again after mission-control stopped"
            return base
        base.state = WsState.PENDING if ws.state is not WsState.INTERRUPTED else ws.state
        return base
    # The last attempt has no recorded end: its process may outlive us.
    if not local:
        base.remote = True
        base.paused = ws.state is WsState.PAUSED
        base.state = WsState.INTERRUPTED
        base.detail = "its attempt was lost with mission-control: starting it again"
        return base
    exit_file = exit_file_for(Path(last.log_path))
    if last.pid is None:
        stop_strays(last.run_id, ws.task_id, last.attempt)
    else:
        proc = adopt(last.pid, last.pid_create_time or 0.0, exit_file)
        if proc is not None:
            base.adopted = proc
            base.paused = ws.state is WsState.PAUSED
            base.state = WsState.PAUSED if base.paused else WsState.RUNNING
            base.detail = f"adopted pid {proc.pid}"
            return base
    status = read_exit_file(exit_file)
    if status is not None:
        base.ended = status
        base.detail = "ended while mission-control was away"
        return base
    base.state = WsState.INTERRUPTED
    base.detail = "its process was lost with mission-control: starting it again"
    return base


def stop_strays(run_id: str, task_id: str, attempt: int) -> list[int]:
    """Kill processes of an attempt that was never recorded with a pid."""
    phase_id, _, ws_id = task_id.partition("::")
    markers = {
        "MC_RUN_ID": run_id,
        "MC_PHASE": phase_id,
        "MC_WORKSTREAM": ws_id,
        "MC_ATTEMPT": str(attempt),
    }
    strays = processes_with_env(markers)
    if not strays:
        return []
    killed = signal_all(strays, signal.SIGKILL)
    # Not psutil.wait_procs: it would reap a child of ours that someone else waits for.
    deadline = time.monotonic() + 5
    while any(is_alive(p) for p in strays) and time.monotonic() < deadline:
        time.sleep(0.02)
    return killed
