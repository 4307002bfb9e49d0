"""The engine: runs a plan's workstreams and is the one place that changes their state.

Everything runs on one asyncio loop (the TUI's, or ``asyncio.run`` headless);
blocking work (git, psutil, sqlite, spawning) goes to threads. Every state
change is recorded in the store before it is published on the bus. The main
loop sleeps on an ``asyncio.Event`` that process exits and commands set, so a
dependent starts as soon as its last dependency finishes, with no polling.

The class is assembled from modules that each hold one concern: ``core`` (the
shared state and plumbing), ``finish_report`` (what finishing hands back),
``attempts`` (one workstream's attempts and how they end), ``control`` (the
user's commands, one table), ``resume`` (taking a stored run up again) and this
one: the run itself and its loop (decide, start, wake). Each workstream's life
is its ``lifecycle.Lifecycle``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from ..git import repo
from ..plan.model import Plan, landing_branch
from ..store.runs import RunStore, WorkstreamRow, new_run_id
from . import branches
from . import events as ev
from .backend import AttemptSink, BackendOptions, make_backend
from .bus import EventBus
from .clock import Clock, as_clock
from .core import RunOptions
from .landing import land_phase, landed_phases
from .landing_steps import LandingStep
from .lifecycle import BranchRewrite, Lifecycle
from .projection import snapshot_from_ledger
from .resume import Resume
from .scheduler import Decision, PlanGraph, decide
from .snapshot import RunSnapshot
from .states import ACTIVE, DONE_FOR_DEPENDENTS, WsState
from .supervisor import enable_subreaper


class Engine(Resume):
    """Drives one run of a plan. Implements ``EngineControl`` for the views."""

    def __init__(
        self,
        plan: Plan,
        *,
        state_dir: Path | None = None,
        options: RunOptions | None = None,
        clock: Clock | Callable[[], float] = time.time,
    ) -> None:
        self.plan = plan
        self.options = options or RunOptions()
        self.state_dir = state_dir or plan.path.parent / ".mission-control"
        self._clock = as_clock(clock)
        if self.options.phase is not None:
            plan.phase(self.options.phase)  # KeyError -> caller reports an unknown phase
        self.graph = PlanGraph.from_plan(plan, self.options.phase)
        in_run = {t for p in self.graph.phases for t in p.task_ids}
        # With --fresh, remote copies from earlier runs are replaced (also after resume).
        fresh = self.options.existing_branches == "fresh"
        rewrite = BranchRewrite.REWRITTEN if fresh else BranchRewrite.KEPT
        self._rt = {
            ws.task_id: Lifecycle(ws, rewrite=rewrite)
            for ws in plan.workstreams
            if ws.task_id in in_run
        }
        self._phases = {p.phase_id: p.task_ids for p in self.graph.phases}
        self._states = {task_id: rt.state for task_id, rt in self._rt.items()}
        self._unsettled = set(self._rt)
        self._made_on = {}
        dependents: defaultdict[str, list[str]] = defaultdict(list)
        for task_id, deps in self.graph.deps.items():
            for dep in deps:
                dependents[dep].append(task_id)
        self._dependents = {k: tuple(sorted(v)) for k, v in dependents.items()}
        self.backend = make_backend(
            self.options.backend,
            BackendOptions(self.options.ray_address, self.options.sample_interval),
        )
        self.store = RunStore(self.state_dir)
        self.run_id = self.options.run_id or new_run_id()
        existing = self.store.get_run(self.run_id)
        # A stored run's views start from the ledger's projection, as status and attach see it.
        self.bus = EventBus(
            self._initial_snapshot() if existing is None else self._projected_snapshot()
        )
        self._db_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mc-store")
        self._wake = asyncio.Event()
        self._loop = None
        self._cancelling = False
        self._run_over_budget: str | None = None
        self._detaching = False
        self._outside = {}
        self._landed: set[str] = set()
        self._landing_failed: dict[str, str] = {}
        self._landing: asyncio.Task[None] | None = None
        self._background = set()
        self._states_changed = asyncio.Event()
        self._grace = (
            self.options.grace_seconds
            if self.options.grace_seconds is not None
            else plan.grace_seconds
        )
        self._new_run = existing is None
        if self._new_run and self.options.existing_branches == "refuse":
            try:  # before any view opens: a refused run leaves nothing behind
                branches.refuse_earlier_work([rt.ws for rt in self._rt.values()])
            except BaseException:
                self.store.close()
                raise

    def _projected_snapshot(self) -> RunSnapshot:
        snapshot = snapshot_from_ledger(self.store, self.run_id, self.plan)
        snapshot.workstreams = {
            t: view for t, view in snapshot.workstreams.items() if t in self._rt
        }
        return snapshot

    def connect(self) -> None:
        """Reach the backend's machines now (blocking): a view calls it before it takes
        the screen. ``run`` opens the backend anyway; opening twice does nothing."""
        asyncio.run(self._open_backend())

    async def _open_backend(self) -> None:
        workstreams = [rt.ws for rt in self._rt.values()]
        await self.backend.open(self.plan, workstreams, AttemptSink(self._on_sample, self._publish))

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
        await self._open_backend()
        me = psutil.Process()
        resumed = await self._db(self._open_run)
        await self._db(self.store.claim_owner, self.run_id, os.getpid(), me.create_time())
        self._outside = await asyncio.to_thread(self._resolve_outside)
        self._landed = await asyncio.to_thread(self._landed_phases)
        self._publish(ev.RunStarted(self.run_id, str(self.plan.path), self._clock.now()))
        for task_id, note in restarted:
            self._publish(ev.EngineWarned(self.run_id, task_id, note, self._clock.now()))
        if resumed:
            await self._resume_run()
        try:
            self._watch_restored()
            if resumed:
                await self._check_messages()
            await self._main_loop()
        except asyncio.CancelledError:
            # The view went away (app closed, terminal gone): leave the agents running
            # for `resume` rather than waiting on them or killing them.
            self._detaching = True
            raise
        finally:
            tasks = [rt.task for rt in self._rt.values() if rt.task is not None]
            if self._detaching:
                # Agents keep running; git work in progress is let finish. An attempt
                # still waiting for room on a cluster gives up (``give_up``; resume
                # starts it).
                for rt in self._rt.values():
                    if rt.task is not None and rt.run is not None and rt.run.handle is not None:
                        rt.task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            ok = all(rt.state in DONE_FOR_DEPENDENTS for rt in self._rt.values())
            ok = ok and not self._landing_failed
            if not self._detaching:
                status = "succeeded" if ok else ("cancelled" if self._cancelling else "failed")
                await self._db(self.store.finish_run, self.run_id, status, self._clock.now())
                self._publish(
                    ev.RunFinished(self.run_id, ok, self._clock.now(), cancelled=self._cancelling)
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
                    self._publish(ev.PhaseStarted(self.run_id, current_phase, self._clock.now()))
            if decision.land is not None and self._landing is None and not self._cancelling:
                self._landing = asyncio.create_task(self._land_phase(decision.land))
            if not self._cancelling and self._run_over_budget is None:
                for task_id in decision.queue:
                    await self._set_state(task_id, WsState.QUEUED, "waiting for a parallel slot")
                for task_id in decision.start:
                    rt = self._rt[task_id]
                    rt.task = asyncio.create_task(self._run_workstream(rt), name=task_id)
                    self._unsettled.add(task_id)
            # Looked at only when the run may be over (each look visits every workstream).
            ending = self._cancelling or (
                decision.finished and not decision.start and not self.options.linger
            )
            if ending and self._landing is None and not any(rt.busy for rt in self._rt.values()):
                held = any(rt.held_until > 0 for rt in self._rt.values())
                if self._cancelling or not held:
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
        self._publish(ev.PhaseFinished(self.run_id, phase_id, ok, self._clock.now()))

    def _decide(self) -> Decision:
        now = self._clock.now()
        states = {**self._states, **self._outside}
        ready: set[str] = set()
        settled: list[str] = []
        # Only the workstreams that may be set apart are looked at one by one: a decision
        # is made at every wake, and must not cost more in a plan of hundreds.
        for task_id in self._unsettled:
            rt = self._rt[task_id]
            state = rt.state
            if state in ACTIVE:
                if state is WsState.FINISHING and rt.work_ready:
                    ready.add(task_id)
            elif rt.held_until > now or rt.busy:
                # Backing off, or set back while its task winds down: neither startable
                # nor finished.
                states[task_id] = WsState.PREPARING
            else:
                settled.append(task_id)
        self._unsettled.difference_update(settled)
        return decide(
            self.graph,
            states,
            ready_for_dependents=frozenset(ready),
            max_parallel=self.options.max_parallel,
            keep_going=self.options.keep_going,
            landed=frozenset(self._landed),
            landing_failed=frozenset(self._landing_failed),
        )

    def _outside_deps(self) -> set[str]:
        return {d for rt in self._rt.values() for d in rt.ws.depends_on if d not in self._rt}

    async def land(self, phase_id: str) -> str:
        """Land the phase now (the app's ``L``), as ``land --phase`` does."""
        if phase_id not in self._phases:
            return f"phase {phase_id} is not in this run"
        if self._landing is not None:
            return "a landing is under way: wait for it to end"
        self._landing = asyncio.create_task(self._land_phase(phase_id))
        self._wake.set()
        return f"landing phase {phase_id} into {landing_branch(phase_id)}"

    async def _land_phase(self, phase_id: str) -> None:
        """Land a phase, its steps published as they end; the loop waits for it. Only a
        ``land: auto`` phase's outcome holds the phases after it."""
        loop = asyncio.get_running_loop()

        def report(step: LandingStep) -> None:
            event = ev.PhaseLandingStep(
                self.run_id, phase_id, step.kind, step.ok, step.text, self._clock.now()
            )
            loop.call_soon_threadsafe(self._publish, event)

        try:
            ok, detail = await asyncio.to_thread(
                land_phase, self.plan, self.store, self.run_id, phase_id, self.state_dir, report
            )
        except Exception as err:  # one that cannot start stops the run like one that stops
            ok, detail = False, str(err)
            report(LandingStep("stopped", False, detail))
        if self.plan.phase(phase_id).land_auto:
            if ok:
                self._landed.add(phase_id)
            else:
                self._landing_failed[phase_id] = detail
        self._landing = None
        self._wake.set()

    def _landed_phases(self) -> set[str]:
        """The ``land: auto`` phases this run has landed already (a resumed run)."""
        return landed_phases(self.plan, self.store, self.run_id)

    def _resolve_outside(self) -> dict[str, WsState]:
        """Dependencies outside this run (``--phase``) count as done if their branch exists."""
        found: dict[str, WsState] = {}
        for task_id in self._outside_deps():
            ws = self.plan.workstream(task_id)
            exists = repo.branch_exists(ws.repo, ws.branch)
            found[task_id] = WsState.SUCCEEDED if exists else WsState.FAILED
        return found

    def _open_run(self) -> bool:
        """Create the run in the store, or reopen it; True when it existed (a resume)."""
        existing = self.store.get_run(self.run_id)
        if existing is not None:
            if existing.finished:
                self.store.reopen_run(self.run_id, self._clock.now())
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


__all__ = ["Engine", "RunOptions"]
