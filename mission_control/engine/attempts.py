"""One workstream's attempts: prepare, start, watch, finish, and how each one ends.

Each started workstream runs ``_run_workstream`` as its own task. The task
prepares through the backend, holds the tool until the dependencies have
succeeded, records the attempt before it starts it, watches it to its end, and
finishes or fails it. How an attempt ends (failed and retried with backoff,
timed out, stopped for a reason, lost with its machine) is decided here; every
state change goes through the workstream's ``Lifecycle``. Timeouts and retry
holds run on the engine's ``Clock``; output stalls are seen in the samples the
backend streams.
"""

from __future__ import annotations

import asyncio
import contextlib

from ..errors import MissionControlError
from ..plan.model import BaseMode, OnStall, Workstream
from ..store.logs import attempt_log_path
from . import events as ev
from .backend import AttemptHandle, AttemptLost, AttemptRequest, EndedUnwatched, StillRunning
from .conversation import Conversation
from .events import ProcessSample
from .finish import FinishRequest
from .lifecycle import STOP_DETAIL, BranchRewrite, Countdown, Lifecycle, StopReason
from .metrics import LogActivity
from .ports import PortClaim, claim_ports
from .recovery import exit_file_for
from .states import DONE_FOR_DEPENDENTS, WsState
from .supervisor import ExitStatus

MAX_LOSSES = 3
"""How many times an attempt lost with its machine is started again before it fails."""


class Attempts(Conversation):
    async def _run_workstream(self, rt: Lifecycle) -> None:
        task_id = rt.task_id
        try:
            carry, rt.carry_on = rt.carry_on, None
            if isinstance(carry, StillRunning):
                await self._supervise(rt, carry.handle)
            elif isinstance(carry, EndedUnwatched):
                await self._after_exit(rt, carry.status)
            else:
                await self._prepare_and_run(rt)
        except AttemptLost as err:
            await self._lost(rt, str(err))
        except MissionControlError as err:
            if self._detaching and rt.state is WsState.PREPARING and not rt.recorded:
                pass  # let go of while waiting for room: resume starts it
            elif rt.stop is not None:  # stopped on purpose: the error is the stop's doing
                await self._end_stopped(rt)
            else:
                await self._end_failed(rt, WsState.FAILED, str(err))
        except asyncio.CancelledError:
            if not self._detaching:
                raise
        except Exception as err:  # a bug must fail one workstream, not the run
            await self._end_failed(rt, WsState.FAILED, f"internal error: {err!r}")
        finally:
            if rt.run is not None:
                rt.run.handle = None
            self._disarm(rt)
            if rt.agent.messages_waiting and not self._detaching:
                # Once this task is done: the messages may start the next attempt.
                asyncio.get_running_loop().call_soon(self._deliver_soon, rt)
            if not self._detaching or not rt.recorded:  # a detached run's agents go on
                with contextlib.suppress(Exception):
                    await self.backend.release(task_id)
                if rt.run is not None:
                    rt.run.port_claim.release()
            self._wake.set()

    async def _prepare_and_run(self, rt: Lifecycle) -> None:
        ws = rt.ws
        run = rt.begin_attempt()
        preparing = "preparing its worktree"
        if unsettled := self._unsettled_dependencies(rt):
            preparing += f"; its tool starts once {', '.join(unsettled)} succeeded"
        log_path = attempt_log_path(self.state_dir, self.run_id, ws.phase_id, ws.id, run.number)
        claim = run.port_claim = await self._preparing(rt, preparing)
        ports = claim.ports
        request = AttemptRequest(
            ws=ws,
            tool=self.plan.tools[ws.tool],
            run_id=self.run_id,
            attempt=run.number,
            dependencies=tuple(self._dependency_branches(ws)),
            known_holds=self._known_holds(ws),
            fresh=rt.rewrite is BranchRewrite.RESET_NEXT,
            log_path=log_path,
            exit_file=exit_file_for(log_path),
            grace_seconds=self._grace,
            stop=run.give_up,
            ports=ports,
            port_locks=claim.fds,
            follow_up=rt.agent.follow_up,
            spent_before=rt.agent.spent(),
        )
        run.request = request
        run.ports = ports
        prepared = await self.backend.prepare(request)
        workspace = run.workspace = prepared.workspace
        rt.worktree = workspace.path
        rt.base_commit = workspace.base_commit
        if rt.rewrite is BranchRewrite.RESET_NEXT:
            rt.rewrite = BranchRewrite.REWRITTEN
        if self._detaching:
            await self._set_state(ws.task_id, WsState.PENDING, "")
            return
        if self._cancelling or rt.stop is not None:
            await self._end_stopped(rt)
            return
        if not await self._dependencies_succeeded(rt):
            return
        rt.attempts = run.number
        run.log_path = log_path
        command = prepared.command
        # Recorded before the start: a crash in between leaves an attempt with no pid,
        # which resume finds by its MC_* environment instead of starting a twin.
        await self._db(
            self.store.start_attempt,
            self.run_id,
            ws.task_id,
            run.number,
            pid=None,
            pid_create_time=None,
            log_path=str(log_path),
            worktree=workspace.shown,
            branch=workspace.branch,
            base_commit=workspace.base_commit,
            argv=list(command.argv),
            env_names=sorted(command.env_names),
            started_at=self._clock.now(),
            ports=ports,
        )
        run.recorded = True
        started = await self.backend.start(request, prepared)
        now = self._clock.now()
        if started.local_pid is not None:
            pid, create_time = started.local_pid
            await self._db(
                self.store.update_attempt_pid,
                self.run_id,
                ws.task_id,
                run.number,
                pid,
                create_time,
                now,
            )
        self._publish(
            ev.AttemptStarted(
                self.run_id,
                ws.task_id,
                run.number,
                started.handle.pid,
                str(log_path),
                tuple(command.argv),
                now,
                ports,
            )
        )
        if rt.agent.follow_up is not None:
            await self._follow_up_started(rt, run.number, command.continues)
        rt.countdown = Countdown(self._clock, ws.timeout_seconds, lambda: self._on_timeout(rt))
        await self._supervise(rt, started.handle)

    async def _preparing(self, rt: Lifecycle, detail: str) -> PortClaim:
        """Record the move to PREPARING while the attempt's ports are claimed (both are on
        a dependent's way to its start); the claim."""
        ws = rt.ws
        recording = self._set_state(ws.task_id, WsState.PREPARING, detail)
        if ws.ports <= 0:
            await recording
            return PortClaim()
        claiming = asyncio.to_thread(claim_ports, self.run_id, ws, self.plan.port_range)
        recorded, claim = await asyncio.gather(recording, claiming, return_exceptions=True)
        if isinstance(recorded, BaseException):
            if isinstance(claim, PortClaim):
                claim.release()
            raise recorded
        if isinstance(claim, BaseException):
            raise claim
        return claim

    def _unsettled_dependencies(self, rt: Lifecycle) -> list[str]:
        """The dependencies of ``rt`` whose work is not delivered yet (succeeded, or pushed
        while its pull request is being opened)."""
        return [
            dep
            for dep in rt.ws.depends_on
            if not (dep in self._rt and self._rt[dep].delivered)
            and (self._rt[dep].state if dep in self._rt else self._outside.get(dep))
            not in DONE_FOR_DEPENDENTS
        ]

    async def _dependencies_succeeded(self, rt: Lifecycle) -> bool:
        """Hold a dependent prepared early until every dependency has succeeded.

        A dependent may start (make its worktree, merge) once a dependency's work is
        committed, but its tool runs only on work that was delivered: a dependency
        that fails while pushing must not feed it. False when the workstream was set
        back instead (a dependency ended otherwise: the scheduler blocks it or starts
        it again; or it was stopped meanwhile).
        """
        while unsettled := self._unsettled_dependencies(rt):
            changed = self._states_changed
            if self._detaching:
                await self._set_state(rt.task_id, WsState.PENDING, "")
                return False
            if self._cancelling or rt.stop is not None:
                await self._end_stopped(rt)
                return False
            for dep in unsettled:
                other = self._rt.get(dep)
                if other is None or not other.work_ready:
                    state = other.state.value if other is not None else "not done"
                    detail = f"waiting: dependency {dep} is {state}"
                    await self._set_state(rt.task_id, WsState.PENDING, detail)
                    return False
            stopping = asyncio.ensure_future(rt.stopping.wait())
            waiting = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait({stopping, waiting}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                waiting.cancel()
        return True

    def _known_holds(self, ws: Workstream) -> tuple[tuple[str, str], ...]:
        """What finishing saw of the dependencies' ancestry (``_ancestry`` of each head)."""
        pairs: list[tuple[str, str]] = []
        for dependency in ws.depends_on:
            rt = self._rt.get(dependency)
            if rt is not None and rt.last_head:
                pairs += self._ancestry(rt.last_head)
        return tuple(pairs)

    def _dependency_branches(self, ws: Workstream) -> list[str]:
        if ws.base is BaseMode.BRANCH:
            return []
        return [self.plan.workstream(d).branch for d in ws.depends_on]

    async def _supervise(self, rt: Lifecycle, handle: AttemptHandle) -> None:
        """Watch a running attempt to its end, then finish or fail it."""
        assert rt.run is not None
        rt.run.handle = handle
        rt.output.reset(self._clock.now())
        if rt.stop is not None:  # stopped while it was being started: it had no handle yet
            self._spawn(self._terminate(rt))
        if rt.state is not WsState.PAUSED:
            await self._set_state(rt.task_id, WsState.RUNNING, f"pid {handle.pid}")
            self._arm(rt)
        status = await handle.wait()
        self._disarm(rt)
        rt.run.handle = None
        await self._after_exit(rt, status)

    async def _after_exit(self, rt: Lifecycle, status: ExitStatus) -> None:
        """Record an attempt's end, then finish the workstream or fail it."""
        ws = rt.ws
        stopped = rt.stop
        if stopped is not None:
            attempt_status = stopped.attempt_status
        else:
            attempt_status = "exited" if status.exit_code == 0 else WsState.FAILED.value
        report = await self._last_report(rt)
        await self._record_end(rt, status, attempt_status)
        await self._after_attempt_messages(rt)
        if stopped is not None:
            await self._end_stopped(rt)
            return
        if report is not None and report.over_budget is not None:
            # Another attempt would spend the same again: no automatic retry.
            await self._set_state(ws.task_id, WsState.FAILED, report.over_budget)
            return
        if status.exit_code != 0:
            why = f"tool '{ws.tool}' {status.describe()}"
            if report is not None and report.final_message:  # the agent's own last word
                why += f": {_first_line(report.final_message)}"
            await self._end_failed(rt, WsState.FAILED, why)
            return
        if report is not None and report.needs_input is not None:
            await self._set_state(ws.task_id, WsState.NEEDS_INPUT, report.needs_input)
            return
        await self._set_state(ws.task_id, WsState.FINISHING, "checks, commit, push")
        run = rt.run
        log_path = run.log_path if run is not None else None
        assert rt.worktree is not None and rt.base_commit is not None and log_path is not None
        outcome = await self._finish(
            rt,
            FinishRequest(
                ws=ws,
                run_id=self.run_id,
                attempt=rt.attempts,
                worktree=rt.worktree,
                base_commit=rt.base_commit,
                log_path=log_path,
                grace_seconds=self._grace,
                stop=rt.stopping,
                force_push=rt.rewrite is BranchRewrite.REWRITTEN,
                ports=run.ports if run is not None else (),
                settled=run is not None and run.request is not None,
            ),
        )
        if outcome.ok:
            rt.rewrite = BranchRewrite.KEPT
        if rt.stop is not None:
            await self._end_stopped(rt)
        elif outcome.ok:
            await self._set_state(ws.task_id, WsState.SUCCEEDED, outcome.detail)
        else:
            await self._end_failed(rt, WsState.FAILED, outcome.detail)

    async def _record_end(self, rt: Lifecycle, status: ExitStatus, attempt_status: str) -> None:
        """Record the attempt's end in the store, then tell the views."""
        now = self._clock.now()
        await self._db(
            self.store.end_attempt,
            self.run_id,
            rt.task_id,
            rt.attempts,
            exit_code=status.exit_code,
            signal=status.signal,
            status=attempt_status,
            ended_at=now,
        )
        if rt.run is not None:
            rt.run.recorded = False
        self._publish(
            ev.AttemptEnded(
                self.run_id, rt.task_id, rt.attempts, status.exit_code, status.signal, now
            )
        )

    async def _lost(self, rt: Lifecycle, detail: str) -> None:
        """An attempt's machine or actor went away: record it, then start it again (bounded)."""
        task_id = rt.task_id
        if rt.recorded:
            await self._record_end(rt, ExitStatus(None, None), WsState.INTERRUPTED.value)
        if rt.stop is not None:
            await self._end_stopped(rt)
            return
        rt.losses += 1
        if self._cancelling:
            await self._set_state(task_id, WsState.INTERRUPTED, detail)
            return
        if rt.losses > MAX_LOSSES:
            # Not interrupted: that state is started again by itself, and this would never end.
            again = f"{detail} ({MAX_LOSSES + 1} times in a row): retry it by hand"
            await self._set_state(task_id, WsState.FAILED, again)
            return
        await self._set_state(
            task_id, WsState.QUEUED, f"{detail}: starting it again ({rt.losses}/{MAX_LOSSES})"
        )

    async def _end_stopped(self, rt: Lifecycle) -> None:
        reason = rt.clear_stop() or StopReason.CANCEL
        ws = rt.ws
        if reason is StopReason.STALL_RETRY:
            # A stall retry is a retry like any other: it counts and it backs off.
            quiet = f"no output for {_minutes(ws.stall_minutes)}"
            given_up = (
                f"{quiet}, {rt.attempts} attempt{'s' if rt.attempts != 1 else ''}"
                f" (on_stall: retry, retries: {ws.retries})"
            )
            await self._end_failed(rt, WsState.FAILED, quiet, given_up=given_up)
            return
        if reason is StopReason.STALL_KILL:
            detail = f"killed: no output for {_minutes(ws.stall_minutes)} (on_stall: kill)"
            await self._set_state(rt.task_id, WsState.KILLED, detail)
            return
        if reason is StopReason.TIMEOUT:
            detail = f"timed out after {_minutes(ws.timeout_minutes)}"
            await self._end_failed(rt, WsState.TIMED_OUT, detail)
            return
        state = reason.ends_as
        await self._set_state(rt.task_id, state, STOP_DETAIL.get(state, ""))
        if state is WsState.SKIPPED:
            await self._unblock_dependents(rt.task_id)

    async def _end_failed(
        self, rt: Lifecycle, state: WsState, detail: str, *, given_up: str | None = None
    ) -> None:
        """Fail the workstream, or queue an automatic retry with backoff while retries remain.

        ``given_up``: the detail when no retry is left (``detail`` otherwise)."""
        retryable = state in (WsState.FAILED, WsState.TIMED_OUT)
        if rt.retries_left > 0 and not self._cancelling and retryable:
            used = rt.ws.retries - rt.retries_left
            rt.retries_left -= 1
            delay = min(self.options.retry_backoff_seconds * (2**used), 300.0)
            rt.held_until = self._clock.now() + delay
            await self._set_state(
                rt.task_id,
                WsState.QUEUED,
                f"{detail}; retry {used + 1}/{rt.ws.retries} in {delay:.0f}s",
            )
            self._clock.call_later(delay, lambda: self._release_hold(rt))
            return
        await self._set_state(rt.task_id, state, given_up or detail)

    def _deliver_soon(self, rt: Lifecycle) -> None:
        async def deliver() -> None:
            await self._deliver(rt)

        self._spawn(deliver())

    def _release_hold(self, rt: Lifecycle) -> None:
        rt.held_until = 0.0
        self._wake.set()

    # ------------------------------------------------------------- stopping

    async def _stop(self, rt: Lifecycle, reason: StopReason) -> None:
        """Stop the workstream for ``reason``: its attempt if one is under way, else now."""
        if rt.busy:
            rt.request_stop(reason)
            await self._terminate(rt)
            return
        rt.held_until = 0.0  # a retry backing off is not retried any more
        state = reason.ends_as
        await self._set_state(rt.task_id, state, STOP_DETAIL.get(state, ""))
        self._wake.set()

    def _arm(self, rt: Lifecycle) -> None:
        if rt.countdown is not None:
            rt.countdown.start()

    def _disarm(self, rt: Lifecycle) -> None:
        if rt.countdown is not None:
            rt.countdown.stop()

    def _on_timeout(self, rt: Lifecycle) -> None:
        if rt.run is not None and rt.run.handle is not None and rt.stop is None:
            rt.request_stop(StopReason.TIMEOUT)
            self._spawn(self._terminate(rt))

    async def _terminate(self, rt: Lifecycle, grace: float | None = None) -> None:
        handle = rt.handle
        if handle is None:
            return
        result = await handle.terminate(self._grace if grace is None else grace)
        if result.survivors:
            self._publish(
                ev.EngineWarned(
                    self.run_id,
                    rt.task_id,
                    f"{rt.task_id}: processes {result.survivors} survived SIGKILL",
                    self._clock.now(),
                )
            )

    # ---------------------------------------------------------- metrics, stall

    def _on_sample(
        self, samples: dict[str, ProcessSample], activity: dict[str, LogActivity]
    ) -> None:
        """What the backend saw of the running attempts: publish it, and look for stalls."""
        now = self._clock.now()
        if samples:
            self._publish(ev.MetricsSampled(self.run_id, samples, now))
        for task_id, act in activity.items():
            rt = self._rt.get(task_id)
            if rt is None or rt.run is None or rt.run.handle is None:
                continue
            if act.report is not None:
                self._spawn(self._agent_reported(rt, rt.run.number, act.report))
            out = rt.output
            if act.size != out.last_size or act.report is not None:
                out.last_size = act.size
                out.last_output_at = now
                if out.stalled:
                    out.stalled = False
                    self._publish(ev.WorkstreamStalled(self.run_id, task_id, False, 0.0, now))
                continue
            if rt.state is not WsState.RUNNING:
                out.last_output_at = now  # paused time is not idleness
                continue
            idle = now - out.last_output_at
            if not out.stalled and idle >= rt.ws.stall_minutes * 60:
                out.stalled = True
                self._publish(ev.WorkstreamStalled(self.run_id, task_id, True, idle, now))
                if rt.ws.on_stall is OnStall.KILL:
                    self._spawn(self._stop(rt, StopReason.STALL_KILL))
                elif rt.ws.on_stall is OnStall.RETRY:
                    self._spawn(self._stop(rt, StopReason.STALL_RETRY))


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _minutes(minutes: float) -> str:
    seconds = minutes * 60
    return f"{seconds:.0f}s" if seconds < 120 else f"{minutes:g}m"


__all__ = ["MAX_LOSSES", "Attempts"]
