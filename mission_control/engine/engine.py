"""The engine: runs a plan's workstreams and is the one place that changes their state.

Everything runs on one asyncio loop (the TUI's, or ``asyncio.run`` headless);
blocking work (git, psutil, sqlite, spawning) goes to threads. Every state
change is recorded in the store before it is published on the bus. The main
loop sleeps on an ``asyncio.Event`` that process exits and commands set, so a
dependent starts as soon as its last dependency finishes, with no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

from ..errors import MissionControlError, SetupError
from ..git import conflicts, repo
from ..plan.model import BaseMode, OnStall, Plan, Workstream
from ..store.logs import attempt_log_path
from ..store.runs import RunStore, WorkstreamRow, new_run_id
from . import branches
from . import events as ev
from .backend import (
    AttemptHandle,
    AttemptLost,
    AttemptRequest,
    AttemptSink,
    Backend,
    Workspace,
    make_backend,
)
from .branches import ExistingBranches
from .bus import EventBus
from .events import Event, ProcessSample
from .finish import FinishContext
from .metrics import LogActivity, MetricsSampler
from .recovery import Restored, exit_file_for, restore_run
from .scheduler import Decision, PlanGraph, decide
from .snapshot import PhaseView, RunSnapshot, WorkstreamView
from .states import ACTIVE, DONE_FOR_DEPENDENTS, FAILED_STATES, TERMINAL, WsState
from .supervisor import AttemptProcess, ExitStatus, enable_subreaper

T = TypeVar("T")

MAX_LOSSES = 3
"""How many times an attempt lost with its machine is started again before it fails."""

_RETRYABLE = frozenset(
    {
        WsState.FAILED,
        WsState.TIMED_OUT,
        WsState.KILLED,
        WsState.INTERRUPTED,
        WsState.SUCCEEDED,
        WsState.SKIPPED,
    }
)


@dataclass(frozen=True, slots=True)
class RunOptions:
    phase: str | None = None
    max_parallel: int | None = None
    keep_going: bool = False
    run_id: str | None = None
    """Continue this run (resume) instead of starting a new one."""
    linger: bool = False
    """Keep serving commands once all work has ended (the TUI); ``cancel`` ends ``run``."""
    grace_seconds: float | None = None
    retry_backoff_seconds: float = 5.0
    sample_interval: float = 1.0
    backend: str = "local"
    """Where attempts run: ``local`` or ``ray``."""
    ray_address: str | None = None
    """The Ray cluster to use (``auto``: a running local one, else one started for the run)."""
    existing_branches: ExistingBranches = "refuse"
    """A new run meeting branches with earlier runs' commits: stop, build on them, or
    start them again from the base (``engine.branches``). Kept with the run."""


@dataclass(slots=True)
class _Runtime:
    """The engine's private, mutable record of one workstream."""

    ws: Workstream
    state: WsState = WsState.PENDING
    attempt: int = 0
    retries_left: int = 0
    task: asyncio.Task[None] | None = None
    proc: AttemptHandle | None = None
    stop_as: WsState | None = None
    """Set by kill/timeout/cancel: the state the attempt ends in."""
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    """Set with ``stop_as``: wakes a finishing step that waits on a check."""
    retry_after_stop: bool = False
    fresh: bool = False
    work_ready: bool = False
    """Checked and committed while still finishing: dependents may start."""
    rewrote: bool = False
    """A fresh retry reset the branch: its next push must replace the remote's copy."""
    held_until: float = 0.0
    worktree: Path | None = None
    base_commit: str | None = None
    log_path: Path | None = None
    timer: asyncio.TimerHandle | None = None
    remaining: float = 0.0
    deadline: float = 0.0
    last_size: int = -1
    last_output_at: float = 0.0
    stalled: bool = False
    adopted: AttemptHandle | None = None
    conflicts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    ended: ExitStatus | None = None
    """An attempt that ended while no mission-control watched it (resume)."""
    request: AttemptRequest | None = None
    workspace: Workspace | None = None
    attempt_open: bool = False
    """The attempt is recorded as started but not yet as ended."""
    losses: int = 0
    """Attempts lost with their machine or actor, each started again."""
    forecast_base: str | None = None
    """The base commit this branch's conflicts with the base were last forecast against."""


class Engine:
    """Drives one run of a plan. Implements ``EngineControl`` for the views."""

    def __init__(
        self,
        plan: Plan,
        *,
        state_dir: Path | None = None,
        options: RunOptions | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.plan = plan
        self.options = options or RunOptions()
        self.state_dir = state_dir or plan.path.parent / ".mission-control"
        self._clock = clock
        if self.options.phase is not None:
            plan.phase(self.options.phase)  # KeyError -> caller reports an unknown phase
        self.graph = PlanGraph.from_plan(plan, self.options.phase)
        in_run = {t for p in self.graph.phases for t in p.task_ids}
        self._rt: dict[str, _Runtime] = {
            ws.task_id: _Runtime(ws=ws, retries_left=ws.retries)
            for ws in plan.workstreams
            if ws.task_id in in_run
        }
        self.backend: Backend = make_backend(self.options.backend, self.options.ray_address)
        self.store = RunStore(self.state_dir)
        self.run_id = self.options.run_id or new_run_id()
        self.bus = EventBus(self._initial_snapshot())
        self._db_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mc-store")
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancelling = False
        self._detaching = False
        self._sampler: MetricsSampler | None = None
        self._outside: dict[str, WsState] = {}
        self._background: set[asyncio.Future[None]] = set()
        self._states_changed = asyncio.Event()
        """Set (and replaced) at every state change: wakes what waits on other workstreams."""
        self._grace = (
            self.options.grace_seconds
            if self.options.grace_seconds is not None
            else plan.grace_seconds
        )
        if self.options.existing_branches == "fresh":
            for rt in self._rt.values():
                rt.rewrote = True  # remote copies from earlier runs are replaced
        self._new_run = self.store.get_run(self.run_id) is None
        if self._new_run and self.options.existing_branches == "refuse":
            try:  # before any view opens: a refused run leaves nothing behind
                branches.refuse_earlier_work([rt.ws for rt in self._rt.values()])
            except BaseException:
                self.store.close()
                raise

    # ----------------------------------------------------------------- views

    def snapshot(self) -> RunSnapshot:
        return self.bus.snapshot()

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        return self.bus.subscribe(callback)

    def subscribe_with_snapshot(
        self, callback: Callable[[Event], None]
    ) -> tuple[RunSnapshot, Callable[[], None]]:
        return self.bus.subscribe_with_snapshot(callback)

    def diff(self, task_id: str) -> str:
        """The worktree's diff against its base (blocking: call from a thread)."""
        rt = self._rt[task_id]
        workspace = rt.workspace
        if workspace is None and rt.worktree is not None and rt.base_commit is not None:
            workspace = Workspace(rt.worktree, rt.ws.branch, rt.base_commit)  # restored
        if workspace is None:
            return f"{task_id} has no worktree yet"
        return self.backend.diff(rt.ws, workspace)

    # ------------------------------------------------------------------ run

    async def run(self) -> bool:
        """Run until every workstream in scope has ended (or ``cancel``); True if all succeeded."""
        self._loop = asyncio.get_running_loop()
        enable_subreaper()
        restarted: list[tuple[str, str]] = []
        if self._new_run and self.options.existing_branches == "fresh":
            restarted = await asyncio.to_thread(
                branches.start_afresh, [rt.ws for rt in self._rt.values()], self.run_id
            )
        # Connected and checked before the run is recorded: a cluster that cannot be
        # reached leaves nothing behind.
        await self.backend.open(self.plan, [rt.ws for rt in self._rt.values()])
        me = psutil.Process()
        resumed = await self._db(self._open_run)
        await self._db(self.store.claim_owner, self.run_id, os.getpid(), me.create_time())
        self._outside = await asyncio.to_thread(self._resolve_outside)
        self._publish(ev.RunStarted(self.run_id, str(self.plan.path), self._clock()))
        for task_id, note in restarted:
            self._publish(ev.EngineWarned(self.run_id, task_id, note, self._clock()))
        if resumed:
            restored = await asyncio.to_thread(
                restore_run, self.store, self.run_id, local=self.backend.runs_here
            )
            await self._adopt_remote(restored)
            await self._apply_restored(restored)
        self._sampler = MetricsSampler(self.options.sample_interval, self._on_sample_thread)
        self._sampler.start()
        try:
            await self._adopt_survivors()
            await self._main_loop()
        except asyncio.CancelledError:
            # The view went away (app closed, terminal gone): leave the agents running
            # for `resume` rather than waiting on them or killing them.
            self._detaching = True
            raise
        finally:
            self._sampler.stop()
            tasks = [rt.task for rt in self._rt.values() if rt.task is not None]
            if self._detaching:
                # Agents keep running; git work in progress is let finish. An attempt
                # still waiting for room on a cluster is given up (resume starts it).
                for rt in self._rt.values():
                    waiting = (
                        not self.backend.runs_here
                        and rt.state is WsState.PREPARING
                        and not rt.attempt_open
                    )
                    if rt.task is not None and (rt.proc is not None or waiting):
                        rt.task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            ok = all(rt.state in DONE_FOR_DEPENDENTS for rt in self._rt.values())
            if not self._detaching:
                status = "succeeded" if ok else ("cancelled" if self._cancelling else "failed")
                await self._db(self.store.finish_run, self.run_id, status, self._clock())
                self._publish(
                    ev.RunFinished(self.run_id, ok, self._clock(), cancelled=self._cancelling)
                )
            await self._db(self.store.release_owner, self.run_id, os.getpid())
            with contextlib.suppress(Exception):
                await self.backend.close(keep=self._detaching)
            self._db_pool.shutdown(wait=True)
            self.store.close()
        return ok

    async def _main_loop(self) -> None:
        current_phase: str | None = None
        while True:
            self._wake.clear()
            if self._detaching:
                return
            decision = self._decide()
            for task_id, dep in decision.block.items():
                await self._set_state(task_id, WsState.BLOCKED, f"dependency {dep} did not succeed")
            if decision.phase != current_phase:
                self._phase_finished(current_phase)
                current_phase = decision.phase
                if current_phase is not None:
                    self._publish(ev.PhaseStarted(self.run_id, current_phase, self._clock()))
            if not self._cancelling:
                for task_id in decision.queue:
                    await self._set_state(task_id, WsState.QUEUED, "waiting for a parallel slot")
                for task_id in decision.start:
                    rt = self._rt[task_id]
                    rt.task = asyncio.create_task(self._run_workstream(rt), name=task_id)
            busy = any(rt.task is not None and not rt.task.done() for rt in self._rt.values())
            held = any(rt.held_until > 0 for rt in self._rt.values())
            all_done = decision.finished and not decision.start and not held
            if not busy and (self._cancelling or (all_done and not self.options.linger)):
                self._phase_finished(current_phase)
                return
            await self._wake.wait()

    def _phase_finished(self, phase_id: str | None) -> None:
        if phase_id is None:
            return
        ok = all(
            self._rt[t].state in DONE_FOR_DEPENDENTS
            for p in self.graph.phases
            if p.phase_id == phase_id
            for t in p.task_ids
        )
        self._publish(ev.PhaseFinished(self.run_id, phase_id, ok, self._clock()))

    def _decide(self) -> Decision:
        now = self._clock()
        states: dict[str, WsState] = {}
        for task_id, rt in self._rt.items():
            state = rt.state
            if rt.held_until > now:
                state = WsState.PREPARING  # backing off: neither startable nor finished
            elif rt.task is not None and not rt.task.done() and state not in ACTIVE:
                state = WsState.PREPARING
            states[task_id] = state
        states.update(self._outside)
        return decide(
            self.graph,
            states,
            ready_for_dependents=frozenset(
                t for t, rt in self._rt.items() if rt.work_ready and rt.state is WsState.FINISHING
            ),
            max_parallel=self.options.max_parallel,
            keep_going=self.options.keep_going,
        )

    def _outside_deps(self) -> set[str]:
        return {d for rt in self._rt.values() for d in rt.ws.depends_on if d not in self._rt}

    def _resolve_outside(self) -> dict[str, WsState]:
        """Dependencies outside this run (``--phase``) count as done if their branch exists."""
        found: dict[str, WsState] = {}
        for task_id in self._outside_deps():
            ws = self.plan.workstream(task_id)
            exists = repo.branch_exists(ws.repo, ws.branch)
            found[task_id] = WsState.SUCCEEDED if exists else WsState.FAILED
        return found

    # ------------------------------------------------------------ one workstream

    async def _run_workstream(self, rt: _Runtime) -> None:
        task_id = rt.ws.task_id
        try:
            if rt.adopted is not None:
                proc, rt.adopted = rt.adopted, None
                await self._supervise(rt, proc)
            elif rt.ended is not None:
                status, rt.ended = rt.ended, None
                await self._after_exit(rt, status)
            else:
                await self._prepare_and_run(rt)
        except AttemptLost as err:
            await self._lost(rt, str(err))
        except MissionControlError as err:
            if rt.stop_as is not None:  # stopped on purpose: the error is the stop's doing
                await self._end_stopped(rt)
            else:
                await self._end_failed(rt, WsState.FAILED, str(err))
        except asyncio.CancelledError:
            if not self._detaching:
                raise
        except Exception as err:  # a bug must fail one workstream, not the run
            await self._end_failed(rt, WsState.FAILED, f"internal error: {err!r}")
        finally:
            rt.proc = None
            self._disarm(rt)
            if self._sampler is not None:
                self._sampler.unwatch(task_id)
            if not self._detaching or not rt.attempt_open:  # a detached run's agents go on
                with contextlib.suppress(Exception):
                    await self.backend.release(task_id)
            self._wake.set()

    async def _prepare_and_run(self, rt: _Runtime) -> None:
        ws = rt.ws
        preparing = self.backend.preparing(ws)
        if unsettled := self._unsettled_dependencies(rt):
            preparing += f"; its tool starts once {', '.join(unsettled)} succeeded"
        await self._set_state(ws.task_id, WsState.PREPARING, preparing)
        attempt = rt.attempt + 1
        log_path = attempt_log_path(self.state_dir, self.run_id, ws.phase_id, ws.id, attempt)
        request = AttemptRequest(
            ws=ws,
            tool=self.plan.tools[ws.tool],
            run_id=self.run_id,
            attempt=attempt,
            dependencies=tuple(self._dependency_branches(ws)),
            fresh=rt.fresh,
            log_path=log_path,
            exit_file=exit_file_for(log_path),
            grace_seconds=self._grace,
            stop=rt.stop_requested,
        )
        rt.request = request
        workspace = await self.backend.prepare(request)
        rt.workspace = workspace
        rt.worktree = workspace.path
        rt.base_commit = workspace.base_commit
        if rt.fresh:
            rt.fresh = False
            rt.rewrote = True
        if self._detaching:
            await self._set_state(ws.task_id, WsState.PENDING, "")
            return
        if self._cancelling or rt.stop_as is not None:
            await self._end_stopped(rt)
            return
        if not await self._dependencies_succeeded(rt):
            return
        rt.attempt = attempt
        rt.work_ready = False
        rt.log_path = log_path
        command = await self.backend.render(request, workspace)
        started = self._clock()
        # Recorded before the spawn: a crash in between leaves an attempt with no pid,
        # which resume finds by its MC_* environment instead of starting a twin.
        await self._db(
            self.store.start_attempt,
            self.run_id,
            ws.task_id,
            rt.attempt,
            pid=None,
            pid_create_time=None,
            log_path=str(log_path),
            worktree=workspace.shown,
            branch=workspace.branch,
            base_commit=workspace.base_commit,
            argv=list(command.argv),
            env_names=sorted(command.env_names),
            started_at=started,
        )
        rt.attempt_open = True
        proc = await self.backend.spawn(
            request, workspace, command, AttemptSink(self._on_sample, self._publish)
        )
        now = self._clock()
        if self.backend.runs_here:
            await self._db(
                self.store.update_attempt_pid,
                self.run_id,
                ws.task_id,
                rt.attempt,
                proc.pid,
                proc.create_time,
                now,
            )
        self._publish(
            ev.AttemptStarted(
                self.run_id,
                ws.task_id,
                rt.attempt,
                proc.pid,
                str(log_path),
                tuple(command.argv),
                now,
            )
        )
        rt.remaining = ws.timeout_seconds
        await self._supervise(rt, proc)

    def _unsettled_dependencies(self, rt: _Runtime) -> list[str]:
        """The dependencies of ``rt`` that have not (yet) succeeded."""
        return [
            dep
            for dep in rt.ws.depends_on
            if (self._rt[dep].state if dep in self._rt else self._outside.get(dep))
            not in DONE_FOR_DEPENDENTS
        ]

    async def _dependencies_succeeded(self, rt: _Runtime) -> bool:
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
                await self._set_state(rt.ws.task_id, WsState.PENDING, "")
                return False
            if self._cancelling or rt.stop_as is not None:
                await self._end_stopped(rt)
                return False
            for dep in unsettled:
                other = self._rt.get(dep)
                if other is None or not (other.work_ready and other.state is WsState.FINISHING):
                    state = other.state.value if other is not None else "not done"
                    detail = f"waiting: dependency {dep} is {state}"
                    await self._set_state(rt.ws.task_id, WsState.PENDING, detail)
                    return False
            stopping = asyncio.ensure_future(rt.stop_requested.wait())
            waiting = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait({stopping, waiting}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                waiting.cancel()
        return True

    def _dependency_branches(self, ws: Workstream) -> list[str]:
        if ws.base is not BaseMode.DEPS:
            return []
        return [self.plan.workstream(d).branch for d in ws.depends_on]

    async def _supervise(self, rt: _Runtime, proc: AttemptHandle) -> None:
        """Watch a running attempt to its end, then finish or fail it."""
        ws = rt.ws
        rt.proc = proc
        rt.last_size = -1
        rt.last_output_at = self._clock()
        rt.stalled = False
        if rt.state is not WsState.PAUSED:
            await self._set_state(ws.task_id, WsState.RUNNING, f"pid {proc.pid}")
            self._arm(rt)
        if (
            self._sampler is not None
            and rt.log_path is not None
            and isinstance(proc, AttemptProcess)
        ):
            self._sampler.watch(ws.task_id, proc, rt.log_path)
        status = await proc.wait()
        self._disarm(rt)
        if self._sampler is not None:
            self._sampler.unwatch(ws.task_id)
        rt.proc = None
        await self._after_exit(rt, status)

    async def _after_exit(self, rt: _Runtime, status: ExitStatus) -> None:
        """Record an attempt's end, then finish the workstream or fail it."""
        ws = rt.ws
        stopped = rt.stop_as
        attempt_status = (
            stopped.value
            if stopped is not None
            else ("exited" if status.exit_code == 0 else WsState.FAILED.value)
        )
        await self._record_end(rt, status, attempt_status)
        if stopped is not None:
            await self._end_stopped(rt)
            return
        if status.exit_code != 0:
            await self._end_failed(rt, WsState.FAILED, f"tool '{ws.tool}' {status.describe()}")
            return
        await self._set_state(ws.task_id, WsState.FINISHING, "checks, commit, push")
        assert rt.worktree is not None and rt.base_commit is not None and rt.log_path is not None
        outcome = await self.backend.finish(
            FinishContext(
                ws=ws,
                run_id=self.run_id,
                attempt=rt.attempt,
                worktree=rt.worktree,
                base_commit=rt.base_commit,
                log_path=rt.log_path,
                grace_seconds=self._grace,
                publish=self._publish,
                record_result=self._record_result,
                finished_branches=self._finished_branches,
                on_conflicts=self._on_conflicts,
                stop_requested=rt.stop_requested,
                clock=self._clock,
                force_push=rt.rewrote,
                work_ready=lambda: self._work_ready(rt),
                on_base_forecast=self._on_base_forecast,
            )
        )
        if outcome.ok:
            rt.rewrote = False
        if rt.stop_as is not None:
            await self._end_stopped(rt)
        elif outcome.ok:
            await self._set_state(ws.task_id, WsState.SUCCEEDED, outcome.detail)
        else:
            await self._end_failed(rt, WsState.FAILED, outcome.detail)

    async def _record_end(self, rt: _Runtime, status: ExitStatus, attempt_status: str) -> None:
        """Record the attempt's end in the store, then tell the views."""
        now = self._clock()
        await self._db(
            self.store.end_attempt,
            self.run_id,
            rt.ws.task_id,
            rt.attempt,
            exit_code=status.exit_code,
            signal=status.signal,
            status=attempt_status,
            ended_at=now,
        )
        rt.attempt_open = False
        self._publish(
            ev.AttemptEnded(
                self.run_id, rt.ws.task_id, rt.attempt, status.exit_code, status.signal, now
            )
        )

    async def _lost(self, rt: _Runtime, detail: str) -> None:
        """An attempt's machine or actor went away: record it, then start it again (bounded)."""
        ws = rt.ws
        if rt.attempt_open:
            await self._record_end(rt, ExitStatus(None, None), WsState.INTERRUPTED.value)
        if rt.stop_as is not None:
            await self._end_stopped(rt)
            return
        rt.losses += 1
        if self._cancelling:
            await self._set_state(ws.task_id, WsState.INTERRUPTED, detail)
            return
        if rt.losses > MAX_LOSSES:
            # Not interrupted: that state is started again by itself, and this would never end.
            again = f"{detail} ({MAX_LOSSES + 1} times in a row): retry it by hand"
            await self._set_state(ws.task_id, WsState.FAILED, again)
            return
        await self._set_state(
            ws.task_id, WsState.QUEUED, f"{detail}: starting it again ({rt.losses}/{MAX_LOSSES})"
        )

    async def _work_ready(self, rt: _Runtime) -> None:
        rt.work_ready = True
        self._wake.set()

    def _finished_branches(self, ws: Workstream) -> list[tuple[str, str]]:
        """(task id, branch) of the other finished workstreams of the phase, same repo."""
        return [
            (other.ws.task_id, other.ws.branch)
            for other in self._rt.values()
            if other.ws.phase_id == ws.phase_id
            and other.ws.task_id != ws.task_id
            and other.ws.repo == ws.repo
            and other.state in (WsState.SUCCEEDED, WsState.FINISHING)
        ]

    async def _on_conflicts(
        self, ws: Workstream, pairs: tuple[tuple[str, tuple[str, ...]], ...]
    ) -> None:
        """Record a forecast on both sides of each pair: the older branch hears of it too."""
        rt = self._rt[ws.task_id]
        rt.conflicts = dict(pairs)
        await self._publish_conflicts(rt)
        for other_id, files in pairs:
            other = self._rt.get(other_id)
            if other is not None and other.conflicts.get(ws.task_id) != files:
                other.conflicts[ws.task_id] = files
                await self._publish_conflicts(other)
        for other in self._rt.values():  # a pair that no longer conflicts is dropped
            if (
                other is not rt
                and ws.task_id in other.conflicts
                and other.ws.task_id not in rt.conflicts
            ):
                del other.conflicts[ws.task_id]
                await self._publish_conflicts(other)

    async def _on_base_forecast(self, ws: Workstream, base_ref: str, base_head: str) -> None:
        """A forecast used ``base_head``: forecast the phase's finished branches again
        against it if they last were against another commit (the base moved)."""
        self._rt[ws.task_id].forecast_base = base_head
        for other in self._rt.values():
            theirs = other.ws
            if (
                other.forecast_base == base_head
                or (theirs.phase_id, theirs.repo, theirs.remote, theirs.base_branch)
                != (ws.phase_id, ws.repo, ws.remote, ws.base_branch)
                # A branch still finishing is left to its own forecast.
                or not (
                    other.state is WsState.SUCCEEDED
                    or (other.state is WsState.FINISHING and other.forecast_base is not None)
                )
            ):
                continue
            other.forecast_base = base_head  # tried once per base, also when it fails
            try:
                found = await asyncio.to_thread(
                    conflicts.forecast_conflicts, theirs.repo, theirs.branch, [], base_ref
                )
            except MissionControlError as err:
                self._publish(ev.EngineWarned(self.run_id, theirs.task_id, str(err), self._clock()))
                continue
            key = f"base:{theirs.base_branch}"
            files = next((tuple(f) for ref, f in found if ref == base_ref), None)
            if other.conflicts.get(key) == files:
                continue
            if files is None:
                del other.conflicts[key]
            else:
                other.conflicts[key] = files
            await self._publish_conflicts(other)

    async def _publish_conflicts(self, rt: _Runtime) -> None:
        pairs = tuple(rt.conflicts.items())
        await self._record_result(rt.ws, {"conflicts": [[o, list(f)] for o, f in pairs]})
        self._publish(ev.ConflictsForecast(self.run_id, rt.ws.task_id, pairs, self._clock()))

    async def _record_result(self, ws: Workstream, fields: dict[str, Any]) -> None:
        await self._db(self.store.update_result, self.run_id, ws.task_id, **fields)

    async def _end_stopped(self, rt: _Runtime) -> None:
        state = rt.stop_as or WsState.INTERRUPTED
        _clear_stop(rt)
        if rt.retry_after_stop:
            # A stall retry is a retry like any other: it counts and it backs off.
            rt.retry_after_stop = False
            ws = rt.ws
            quiet = f"no output for {_minutes(ws.stall_minutes)}"
            given_up = (
                f"{quiet}, {rt.attempt} attempt{'s' if rt.attempt != 1 else ''}"
                f" (on_stall: retry, retries: {ws.retries})"
            )
            await self._end_failed(rt, WsState.FAILED, quiet, given_up=given_up)
            return
        if state is WsState.TIMED_OUT:
            detail = f"timed out after {_minutes(rt.ws.timeout_minutes)}"
            await self._end_failed(rt, state, detail)
            return
        await self._set_state(rt.ws.task_id, state, _STOP_DETAIL.get(state, ""))
        if state is WsState.SKIPPED:
            await self._unblock_dependents(rt.ws.task_id)

    async def _end_failed(
        self, rt: _Runtime, state: WsState, detail: str, *, given_up: str | None = None
    ) -> None:
        """Fail the workstream, or queue an automatic retry with backoff while retries remain.

        ``given_up``: the detail when no retry is left (``detail`` otherwise)."""
        if (
            rt.retries_left > 0
            and not self._cancelling
            and state
            in (
                WsState.FAILED,
                WsState.TIMED_OUT,
            )
        ):
            used = rt.ws.retries - rt.retries_left
            rt.retries_left -= 1
            delay = min(self.options.retry_backoff_seconds * (2**used), 300.0)
            rt.held_until = self._clock() + delay
            await self._set_state(
                rt.ws.task_id,
                WsState.QUEUED,
                f"{detail}; retry {used + 1}/{rt.ws.retries} in {delay:.0f}s",
            )
            assert self._loop is not None
            self._loop.call_later(delay, self._release_hold, rt)
            return
        await self._set_state(rt.ws.task_id, state, given_up or detail)

    def _release_hold(self, rt: _Runtime) -> None:
        rt.held_until = 0.0
        self._wake.set()

    # ------------------------------------------------------------- timeouts

    def _arm(self, rt: _Runtime) -> None:
        assert self._loop is not None
        self._disarm(rt)
        rt.deadline = self._loop.time() + rt.remaining
        rt.timer = self._loop.call_at(rt.deadline, self._on_timeout, rt)

    def _disarm(self, rt: _Runtime) -> None:
        if rt.timer is not None:
            assert self._loop is not None
            rt.remaining = max(0.0, rt.deadline - self._loop.time())
            rt.timer.cancel()
            rt.timer = None

    def _on_timeout(self, rt: _Runtime) -> None:
        rt.timer = None
        rt.remaining = 0.0
        if rt.proc is not None and rt.stop_as is None:
            _request_stop(rt, WsState.TIMED_OUT)
            self._spawn(self._terminate(rt))

    async def _terminate(self, rt: _Runtime, grace: float | None = None) -> None:
        proc = rt.proc or rt.adopted
        if proc is None:
            return
        result = await proc.terminate(self._grace if grace is None else grace)
        if result.survivors:
            self._publish(
                ev.EngineWarned(
                    self.run_id,
                    rt.ws.task_id,
                    f"{rt.ws.task_id}: processes {result.survivors} survived SIGKILL",
                    self._clock(),
                )
            )

    # -------------------------------------------------------------- commands

    async def pause(self, task_id: str) -> None:
        await self._on_loop(self._pause(task_id))

    async def resume(self, task_id: str) -> None:
        await self._on_loop(self._resume(task_id))

    async def kill(self, task_id: str) -> None:
        await self._on_loop(self._stop(task_id, WsState.KILLED))

    async def skip(self, task_id: str) -> None:
        await self._on_loop(self._skip(task_id))

    async def retry(self, task_id: str, fresh: bool = False) -> None:
        await self._on_loop(self._retry(task_id, fresh))

    async def cancel(self, kill: bool = False) -> None:
        await self._on_loop(self._cancel(kill))

    async def detach(self) -> None:
        """Stop supervising but leave every agent running; ``resume`` adopts them again."""
        await self._on_loop(self._detach())

    async def _on_loop(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a command on the engine's loop, whichever loop or thread asks."""
        loop = self._loop
        if loop is None or loop is asyncio.get_running_loop():
            await coro
            return
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        await asyncio.wrap_future(future)

    def _get(self, task_id: str) -> _Runtime:
        try:
            return self._rt[task_id]
        except KeyError:
            raise SetupError(f"no workstream {task_id} in this run") from None

    async def _pause(self, task_id: str) -> None:
        rt = self._get(task_id)
        # An adopted agent shows as running a moment before its supervisor takes it.
        proc = rt.proc or rt.adopted
        if rt.state is not WsState.RUNNING or proc is None:
            raise SetupError(f"{task_id} is {rt.state.value}: only a running workstream pauses")
        await asyncio.to_thread(proc.pause)
        self._disarm(rt)
        await self._set_state(task_id, WsState.PAUSED, "paused by the user")

    async def _resume(self, task_id: str) -> None:
        rt = self._get(task_id)
        proc = rt.proc or rt.adopted
        if rt.state is not WsState.PAUSED or proc is None:
            raise SetupError(f"{task_id} is {rt.state.value}: only a paused workstream resumes")
        await asyncio.to_thread(proc.resume)
        rt.last_output_at = self._clock()
        await self._set_state(task_id, WsState.RUNNING, f"pid {proc.pid}")
        self._arm(rt)

    async def _stop(self, task_id: str, as_state: WsState) -> None:
        rt = self._get(task_id)
        if rt.state in TERMINAL and as_state is not WsState.SKIPPED:
            raise SetupError(f"{task_id} is already {rt.state.value}")
        if rt.task is not None and not rt.task.done():
            _request_stop(rt, as_state)
            await self._terminate(rt)
            return
        await self._set_state(task_id, as_state, _STOP_DETAIL[as_state])
        self._wake.set()

    async def _skip(self, task_id: str) -> None:
        rt = self._get(task_id)
        if rt.state in (WsState.SUCCEEDED, WsState.SKIPPED):
            raise SetupError(f"{task_id} is already {rt.state.value}")
        rt.held_until = 0.0
        if rt.task is not None and not rt.task.done():
            await self._stop(task_id, WsState.SKIPPED)
            return
        await self._set_state(task_id, WsState.SKIPPED, "skipped by the user")
        await self._unblock_dependents(task_id)
        self._wake.set()

    async def _retry(self, task_id: str, fresh: bool) -> None:
        rt = self._get(task_id)
        if rt.state is WsState.BLOCKED:
            raise SetupError(f"{task_id} is blocked: retry or skip the dependency that failed")
        if rt.state not in _RETRYABLE or (rt.task is not None and not rt.task.done()):
            raise SetupError(f"{task_id} is {rt.state.value}: kill it first to retry it")
        rt.fresh = fresh
        rt.losses = 0
        rt.held_until = 0.0
        _clear_stop(rt)
        await self._set_state(task_id, WsState.QUEUED, "retry (fresh)" if fresh else "retry")
        await self._unblock_dependents(task_id)
        self._wake.set()

    async def _unblock_dependents(self, task_id: str) -> None:
        for other in sorted(self.graph.dependents(task_id)):
            rt = self._rt.get(other)
            if rt is not None and rt.state is WsState.BLOCKED:
                await self._set_state(other, WsState.PENDING, "")

    async def _cancel(self, kill: bool) -> None:
        self._cancelling = True
        stops = []
        for rt in self._rt.values():
            if rt.task is not None and not rt.task.done():
                if rt.stop_as is None:
                    _request_stop(rt, WsState.INTERRUPTED)
                if rt.proc is not None:
                    stops.append(self._terminate(rt, 0.0 if kill else None))
            elif rt.state is WsState.QUEUED:
                await self._set_state(rt.ws.task_id, WsState.PENDING, "run cancelled")
        self._wake.set()
        await asyncio.gather(*stops)

    async def _detach(self) -> None:
        self._detaching = True
        self._wake.set()
        self._notify_state_change()

    def _notify_state_change(self) -> None:
        self._states_changed.set()
        self._states_changed = asyncio.Event()

    # ---------------------------------------------------------- metrics, stall

    def _on_sample_thread(
        self, samples: dict[str, ProcessSample], activity: dict[str, LogActivity]
    ) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_sample, samples, activity)

    def _on_sample(
        self, samples: dict[str, ProcessSample], activity: dict[str, LogActivity]
    ) -> None:
        now = self._clock()
        if samples:
            self._publish(ev.MetricsSampled(self.run_id, samples, now))
        for task_id, act in activity.items():
            rt = self._rt.get(task_id)
            if rt is None or rt.proc is None:
                continue
            if act.size != rt.last_size:
                rt.last_size = act.size
                rt.last_output_at = now
                if rt.stalled:
                    rt.stalled = False
                    self._publish(ev.WorkstreamStalled(self.run_id, task_id, False, 0.0, now))
                continue
            if rt.state is not WsState.RUNNING:
                rt.last_output_at = now  # paused time is not idleness
                continue
            idle = now - rt.last_output_at
            if not rt.stalled and idle >= rt.ws.stall_minutes * 60:
                rt.stalled = True
                self._publish(ev.WorkstreamStalled(self.run_id, task_id, True, idle, now))
                if rt.ws.on_stall is OnStall.KILL:
                    self._spawn(self._stop_quietly(task_id, WsState.KILLED))
                elif rt.ws.on_stall is OnStall.RETRY:
                    rt.retry_after_stop = True
                    self._spawn(self._stop_quietly(task_id, WsState.KILLED))

    async def _stop_quietly(self, task_id: str, state: WsState) -> None:
        with contextlib.suppress(MissionControlError):
            await self._stop(task_id, state)

    # ----------------------------------------------------------- adoption

    async def _apply_restored(self, restored: dict[str, Restored]) -> None:
        now = self._clock()
        for task_id, r in restored.items():
            rt = self._rt.get(task_id)
            if rt is None:
                continue
            rt.attempt = r.attempt
            rt.worktree = r.worktree
            rt.base_commit = r.base_commit
            rt.log_path = r.log_path
            rt.adopted = r.adopted
            rt.attempt_open = r.adopted is not None
            rt.ended = r.ended
            if r.record is not None:
                rec = r.record
                rt.conflicts = dict(rec.conflicts)
                if rec.head_commit is not None:
                    self._publish(
                        ev.WorkstreamResultUpdated(
                            self.run_id,
                            task_id,
                            rec.head_commit,
                            rec.files_changed,
                            rec.insertions,
                            rec.deletions,
                            rec.pr_url,
                            now,
                        )
                    )
                if rec.conflicts:
                    self._publish(ev.ConflictsForecast(self.run_id, task_id, rec.conflicts, now))
            if r.adopted is not None and r.log_path is not None:
                started = r.started_at or now
                rt.remaining = max(0.0, rt.ws.timeout_seconds - (now - started))
                self._publish(
                    ev.AttemptStarted(
                        self.run_id,
                        task_id,
                        rt.attempt,
                        r.adopted.pid,
                        str(r.log_path),
                        (),
                        started,
                    )
                )
            last = r.last_attempt
            if r.adopted is None and last is not None:
                # Finished attempts: the views show their number, time and log.
                self._publish(
                    ev.AttemptStarted(
                        self.run_id,
                        task_id,
                        last.attempt,
                        last.pid or 0,
                        last.log_path,
                        tuple(last.argv),
                        last.started_at,
                    )
                )
                if last.ended_at is not None:
                    self._publish(
                        ev.AttemptEnded(
                            self.run_id,
                            task_id,
                            last.attempt,
                            last.exit_code,
                            last.signal,
                            last.ended_at,
                        )
                    )
            if r.state is not rt.state:
                await self._set_state(task_id, r.state, r.detail)

    async def _adopt_remote(self, restored: dict[str, Restored]) -> None:
        """On resume: find attempts of a remote backend that outlived the last mission-control."""
        for task_id, r in restored.items():
            rt = self._rt.get(task_id)
            # A crash just after a workstream ended may leave its actor holding a node.
            last = r.last_attempt
            ended = r.state in TERMINAL and last is not None and not self.backend.runs_here
            if rt is None or not (r.remote or ended) or r.log_path is None:
                continue
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
                handle = await self.backend.adopt(
                    request, AttemptSink(self._on_sample, self._publish)
                )
            except MissionControlError as err:
                self._publish(ev.EngineWarned(self.run_id, task_id, str(err), self._clock()))
                handle = None
            if ended:
                if handle is not None:
                    await self.backend.release(task_id)
                if last is not None and last.ended_at is None:
                    await self._end_row(task_id, r.attempt, r.state)
                continue
            if handle is None and r.ended is None:
                await self._end_row(task_id, r.attempt, WsState.INTERRUPTED)  # started again
            if handle is None or r.ended is not None:
                continue  # gone: started again; or ended: finished through its actor
            r.adopted = handle
            r.paused = handle.paused
            r.state = WsState.PAUSED if handle.paused else WsState.RUNNING
            r.detail = f"adopted pid {handle.pid} on its node"

    async def _end_row(self, task_id: str, attempt: int, state: WsState) -> None:
        """End the ledger row of an attempt that ended while no mission-control watched."""
        await self._db(
            self.store.end_attempt,
            self.run_id,
            task_id,
            attempt,
            exit_code=None,
            signal=None,
            status=state.value,
            ended_at=self._clock(),
        )

    async def _adopt_survivors(self) -> None:
        """On resume: take back attempts whose processes outlived the last mission-control."""
        for rt in self._rt.values():
            if rt.adopted is not None or rt.ended is not None:
                rt.task = asyncio.create_task(self._run_workstream(rt), name=rt.ws.task_id)

    # ------------------------------------------------------------ plumbing

    def _open_run(self) -> bool:
        """Create the run in the store, or reopen it; True when it existed (a resume)."""
        existing = self.store.get_run(self.run_id)
        if existing is not None:
            if existing.finished:
                self.store.reopen_run(self.run_id, self._clock())
            return True
        rows = [WorkstreamRow.from_workstream(rt.ws) for rt in self._rt.values()]
        self.store.create_run(
            self.run_id,
            str(self.plan.path),
            self.plan.name,
            {
                "phase": self.options.phase,
                "max_parallel": self.options.max_parallel,
                "keep_going": self.options.keep_going,
                "backend": self.options.backend,
                "ray_address": self.options.ray_address,
                "existing_branches": self.options.existing_branches,
            },
            rows,
        )
        return False

    async def _set_state(self, task_id: str, state: WsState, detail: str = "") -> None:
        rt = self._rt[task_id]
        old = rt.state
        if old is state and state is not WsState.QUEUED:
            return
        rt.state = state
        now = self._clock()
        await self._db(self.store.record_state, self.run_id, task_id, state, detail, now)
        self._publish(ev.WorkstreamStateChanged(self.run_id, task_id, old, state, now, detail))
        self._notify_state_change()
        if state in FAILED_STATES or state in DONE_FOR_DEPENDENTS:
            self._wake.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a command in the background, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(self._warn_if_failed)

    def _warn_if_failed(self, task: asyncio.Future[None]) -> None:
        # Nobody awaits a background command: without this its error would vanish.
        if not task.cancelled() and (err := task.exception()) is not None:
            message = f"background command failed: {err!r}"
            self._publish(ev.EngineWarned(self.run_id, None, message, self._clock()))

    def _publish(self, event: Event) -> None:
        self.bus.publish(event)

    async def _db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_pool, lambda: fn(*args, **kwargs))

    def _initial_snapshot(self) -> RunSnapshot:
        phases = [
            PhaseView(p.phase_id, self.plan.phase(p.phase_id).name, p.max_parallel, p.task_ids)
            for p in self.graph.phases
        ]
        snapshot = RunSnapshot(
            run_id=self.run_id,
            plan_path=str(self.plan.path),
            plan_name=self.plan.name,
            started_at=self._clock(),
            phases=phases,
            backend=self.backend.name,
        )
        for rt in self._rt.values():
            ws = rt.ws
            snapshot.workstreams[ws.task_id] = WorkstreamView(
                task_id=ws.task_id,
                phase_id=ws.phase_id,
                ws_id=ws.id,
                name=ws.name,
                tool=ws.tool,
                depends_on=tuple(ws.depends_on),
                timeout_seconds=ws.timeout_seconds,
                branch=ws.branch,
                worktree=str(ws.worktree_path),
                state=rt.state,
            )
        return snapshot


_STOP_DETAIL = {
    WsState.KILLED: "killed by the user",
    WsState.SKIPPED: "skipped by the user",
    WsState.INTERRUPTED: "stopped with the run: resume to start it again",
}


def _request_stop(rt: _Runtime, state: WsState) -> None:
    rt.stop_as = state
    rt.stop_requested.set()


def _clear_stop(rt: _Runtime) -> None:
    rt.stop_as = None
    rt.stop_requested.clear()


def _minutes(minutes: float) -> str:
    seconds = minutes * 60
    return f"{seconds:.0f}s" if seconds < 120 else f"{minutes:g}m"


__all__ = ["Engine", "RunOptions"]
