"""Resume: each workstream goes on from where the store says it was.

``recovery.restore_run`` reads the store; the backend's ``adopt`` says what
became of each attempt nobody watched (still running, ended, or gone); this
module puts the answer into each workstream's ``Lifecycle`` and restarts the
watching of attempts that are still running or ended unwatched.
"""

from __future__ import annotations

import asyncio

from ..errors import MissionControlError
from ..store.records import AttemptRecord
from . import events as ev
from .backend import AttemptRequest, EndedUnwatched, StillRunning
from .control import Control
from .lifecycle import AttemptRun, Countdown, Lifecycle
from .ports import PortClaim, PortRegistry
from .recovery import Restored, exit_file_for, restore_run
from .states import WsState
from .supervisor import ExitStatus


class Resume(Control):
    async def _resume_run(self) -> None:
        """Restore every workstream of a stored run, and take back its attempts."""
        restored = await asyncio.to_thread(restore_run, self.store, self.run_id)
        history: dict[str, list[AttemptRecord]] = {}
        for a in await self._db(self.store.attempts, self.run_id):
            history.setdefault(a.task_id, []).append(a)
        for task_id, r in restored.items():
            rt = self._rt.get(task_id)
            if rt is None:
                continue
            self._restore_agent(rt, history.get(task_id, []))
            if r.left is not None:
                await self._adopt(rt, r)
            self._restore(rt, r)
            if r.state is not rt.state:
                old = rt.restore(r.state)
                await self._announce(task_id, old, r.state, r.detail)

    async def _adopt(self, rt: Lifecycle, r: Restored) -> None:
        """Ask the backend what became of an attempt nobody watched; note it in ``r``."""
        assert r.left is not None and r.log_path is not None
        request = AttemptRequest(
            ws=rt.ws,
            tool=self.plan.tools[rt.ws.tool],
            run_id=self.run_id,
            attempt=r.attempt,
            dependencies=tuple(self._dependency_branches(rt.ws)),
            fresh=False,
            log_path=r.log_path,
            exit_file=exit_file_for(r.log_path),
            grace_seconds=self._grace,
        )
        try:
            found = await self.backend.adopt(request, r.left)
        except MissionControlError as err:
            self._publish(ev.EngineWarned(self.run_id, rt.task_id, str(err), self._clock.now()))
            found = None
        last = r.last_attempt
        if last is not None and last.ports and (r.finish_again or found is not None):
            # Its checks and its tool go on with the ports it had.
            reclaim = PortRegistry().reclaim
            r.port_claim = await asyncio.to_thread(reclaim, self.run_id, rt.task_id, last.ports)
        if r.left.ended:
            # Ended or finishing: only what it may still hold elsewhere was looked for;
            # finishing again goes through it, an ended workstream lets it go.
            if r.finish_again:
                rt.carry_on = EndedUnwatched(_EXITED)
                return
            if isinstance(found, StillRunning):
                await self.backend.release(rt.task_id)
            if last is not None and last.ended_at is None:
                await self._end_row(rt.task_id, r.attempt, r.state)
            return
        if isinstance(found, StillRunning):
            rt.carry_on = found
            paused = found.handle.paused or r.state is WsState.PAUSED
            r.state = WsState.PAUSED if paused else WsState.RUNNING
            r.detail = f"adopted pid {found.handle.pid}"
        elif isinstance(found, EndedUnwatched):
            rt.carry_on = found
            r.detail = "ended while mission-control was away"
        else:
            if last is not None:
                await self._end_row(rt.task_id, r.attempt, WsState.INTERRUPTED)
            r.state = WsState.INTERRUPTED
            r.detail = "its process was lost with mission-control: starting it again"

    def _restore(self, rt: Lifecycle, r: Restored) -> None:
        rt.attempts = r.attempt
        rt.worktree = r.worktree
        rt.base_commit = r.base_commit
        if r.record is not None:
            rt.conflicts = dict(r.record.conflicts)
            rt.last_head = r.record.head_commit
        claim = r.port_claim or PortClaim()
        if rt.carry_on is None:
            claim.release()
            return
        ports = r.last_attempt.ports if r.last_attempt is not None else ()
        rt.run = AttemptRun(r.attempt, log_path=r.log_path, ports=ports, port_claim=claim)
        if isinstance(rt.carry_on, StillRunning):
            rt.run.recorded = True
            started = r.started_at or self._clock.now()
            left = max(0.0, rt.ws.timeout_seconds - (self._clock.now() - started))
            rt.countdown = Countdown(self._clock, left, lambda: self._on_timeout(rt))

    async def _end_row(self, task_id: str, attempt: int, state: WsState) -> None:
        """End the ledger row of an attempt that ended while no mission-control watched."""
        now = self._clock.now()
        await self._db(
            self.store.end_attempt,
            self.run_id,
            task_id,
            attempt,
            exit_code=None,
            signal=None,
            status=state.value,
            ended_at=now,
        )
        self._publish(ev.AttemptEnded(self.run_id, task_id, attempt, None, None, now))

    def _watch_restored(self) -> None:
        """Start watching the attempts resume took back (and finish those that ended)."""
        for rt in self._rt.values():
            if rt.carry_on is not None:
                rt.task = asyncio.create_task(self._run_workstream(rt), name=rt.task_id)
                self._unsettled.add(rt.task_id)


_EXITED = ExitStatus(0, None)

__all__ = ["Resume"]
