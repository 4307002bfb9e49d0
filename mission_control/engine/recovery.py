"""Picking a run up again after mission-control stopped: by crash, detach or closed terminal.

The store says what each workstream was doing; its backend says whether it is
still doing it. ``restore_run`` only reads the store: for each workstream it
gives the state to go on from and, for an attempt whose outcome the store does
not know, what the ledger knows of it (``LeftBehind``) for the backend's
``adopt`` to look for. The engine then gives each unfinished workstream one of
four fates: its agent still runs (watched again, log and timeout go on); it
ended while nobody watched (finished or failed as if we had been there); it is
gone without a word (``interrupted``, started again); or it had not started an
agent (it simply waits again).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..store.runs import AttemptRecord, RunStore, WorkstreamRecord
from .backend import LeftBehind
from .ports import PortClaim
from .states import TERMINAL, WsState


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
    left: LeftBehind | None = None
    """An attempt for the backend to look for: one without a recorded end, or one
    whose workstream was finishing or has ended (what it may still hold elsewhere)."""
    finish_again: bool = False
    """Its tool exited 0 and finishing did not end: finish it again."""
    record: WorkstreamRecord | None = None
    """What the store held: results and conflicts for the views."""
    port_claim: PortClaim | None = None
    """The ports of its last attempt, held again for the tool and checks that go on."""

    @property
    def unended(self) -> bool:
        """Its last attempt has no recorded end: it may still run."""
        return self.left is not None and not self.left.ended


def exit_file_for(log_path: Path) -> Path:
    return log_path.with_suffix(".exit")


def restore_run(store: RunStore, run_id: str) -> dict[str, Restored]:
    """Decide, for every workstream of a stored run, where it goes on from. Blocking."""
    attempts: dict[str, AttemptRecord] = {}
    for record in store.attempts(run_id):
        attempts[record.task_id] = record  # ordered by attempt: the last one wins
    return {
        ws.task_id: _restore_one(ws, attempts.get(ws.task_id)) for ws in store.workstreams(run_id)
    }


def _restore_one(ws: WorkstreamRecord, last: AttemptRecord | None) -> Restored:
    base = Restored(ws.state, ws.detail, ws.attempts, record=ws)
    if last is None:
        if ws.state not in TERMINAL and ws.state is not WsState.INTERRUPTED:
            base.state = WsState.PENDING
        return base
    base.worktree = Path(last.worktree)
    base.base_commit = last.base_commit or ws.base_commit
    base.log_path = Path(last.log_path)
    base.started_at = last.started_at
    base.last_attempt = last
    ended = last.ended_at is not None
    if ws.state in TERMINAL:
        base.left = LeftBehind(last.pid, last.pid_create_time, ended=True)
        return base
    if ended:
        if ws.state is WsState.FINISHING and last.exit_code == 0:
            base.finish_again = True
            base.left = LeftBehind(last.pid, last.pid_create_time, ended=True)
            base.detail = "finishing again after mission-control stopped"
            return base
        base.state = WsState.PENDING if ws.state is not WsState.INTERRUPTED else ws.state
        return base
    base.left = LeftBehind(last.pid, last.pid_create_time, ended=False)
    return base


__all__ = ["Restored", "exit_file_for", "restore_run"]
