"""One attempt on a cluster node: workspace, supervised tool, log stream, checks, commit, push.

This class is the body of a Ray actor (``ray_backend`` wraps it), one actor
per attempt. It runs the same code a local attempt runs: the supervisor for
the tool's process tree (pause, resume, TERM then KILL, no leftovers), the
finishing steps for checks and commit, the usual push. What differs is where
things live: the repository comes from its remote into a node-local mirror,
the log is written on the node and streamed back in chunks as it grows
(inotify, no polling), and the work goes back as a git bundle.

Every process the attempt starts (tool and checks) carries a mark in its
environment; a watchdog started before anything else sweeps marked processes
away if the actor dies without cleaning up.

What a later mission-control needs to take the attempt back after its actor
is gone (it stopped itself with no mission-control watching) stays on the
node: the worktree, the log, the tool's exit status and a small state file.
``reopen`` in a new actor on the same node picks them up, so a tool that
finished unwatched is finished, not run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from ..agents.report import read_report
from ..engine import events as ev
from ..engine.clock import Clock, LoopClock, Timer
from ..engine.finish import (
    Committed,
    FinishItem,
    FinishRequest,
    Pushed,
    StepDone,
    append_log,
    check_and_commit,
    push_work,
)
from ..engine.metrics import LogActivity, MetricsSampler
from ..engine.ports import port_env
from ..engine.recovery import exit_file_for
from ..engine.supervisor import (
    AttemptProcess,
    ExitStatus,
    TerminateResult,
    enable_subreaper,
    read_exit_file,
    spawn_attempt,
)
from ..engine.tools import RenderedCommand, render_command, resolve_executable
from ..engine.worktree_setup import set_up_worktree
from ..errors import MissionControlError
from ..git import mirrors
from ..git.bundles import bundle_bytes
from ..git.untracked_pack import unpack_untracked
from ..store.logs import attempt_log_path, file_size, report_path
from ..store.private import write_private_bytes
from ..store.watch import shared_watcher
from .node_files import (
    node_dir,
    node_id,
    node_name,
    read_at,
    read_state,
    remove_empty,
    write_state,
)
from .protocol import (
    CHUNK_BYTES,
    Chunk,
    NodeEnded,
    NodeFinished,
    NodePrepared,
    NodeSpec,
    NodeStarted,
    NodeStatus,
)
from .watchdog import start_watchdog

MARK_VAR = "MC_NODE_ATTEMPT"
"""Environment mark of every process a node-side attempt starts (what the watchdog sweeps)."""

CLOSED_EXIT_SECONDS = 10.0
"""A closed attempt's actor waits this long to be killed before it exits by itself."""


class NodeAttempt:
    """The node's side of one attempt; every public method is called remotely."""

    def __init__(self, spec: NodeSpec, clock: Clock | None = None) -> None:
        self.spec = spec
        self._clock = clock
        """Where the no-driver timers run (the actor's loop unless a test gives one)."""
        self.mark = uuid.uuid4().hex
        # Before the subreaper flag: the watchdog must not end up as our child.
        self._watchdog = start_watchdog(MARK_VAR, self.mark, spec.grace_seconds)
        enable_subreaper()
        root = node_dir()
        self._cache = root / "mirrors"
        self._root = root
        ws = spec.ws
        work_root = root / "work" / f"{spec.run_id}-{ws.phase_id}-{ws.id}-{spec.attempt}"
        self._work_root = work_root
        # The workstream as the node sees it: its worktree here, the prompt inline,
        # the remote called origin, and the mark in every process's environment.
        self.ws = ws.model_copy(
            update={
                "worktree_root": work_root,
                "prompt_file": None,
                "prompt": spec.prompt_text,
                "remote": mirrors.REMOTE,
                "env": {**ws.env, MARK_VAR: self.mark},
            }
        )
        self.log_path = attempt_log_path(root, spec.run_id, ws.phase_id, ws.id, spec.attempt)
        self._state_path = self.log_path.with_suffix(".state.json")
        self._mirror: Path | None = None
        self._kept: NodeStatus | None = None
        """Set by ``reopen``: the attempt as its node kept it, its tool long ended."""
        self._base_commit = ""
        self._proc: AttemptProcess | None = None
        self._events: list[ev.Event] = []
        self._events_made = 0
        self._streams = 0
        self._sample: tuple[ev.ProcessSample, LogActivity] | None = None
        self._changed = asyncio.Event()
        self._closed = False
        self._stop_finishing = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unwatch_log: Callable[[], None] | None = None
        self._sampler: MetricsSampler | None = None
        self._orphan_timer: Timer | None = None
        self._orphaning: asyncio.Future[None] | None = None
        # Until ``prepare`` arms the loop's timer: an actor placed after its
        # mission-control died (it waited for room) is never called at all.
        self._unclaimed = threading.Timer(spec.orphan_seconds, self._never_claimed)
        self._unclaimed.daemon = True
        self._unclaimed.start()

    # ----------------------------------------------------------------- steps

    async def prepare(self) -> NodePrepared:
        """Mirror the repository, make the branch's worktree, merge the dependencies."""
        self._loop = asyncio.get_running_loop()
        self._unclaimed.cancel()
        self._touch()
        spec = self.spec
        # A missing tool is reported before anything is cloned.
        await asyncio.to_thread(resolve_executable, self.ws, spec.tool)
        self._mirror = await asyncio.to_thread(mirrors.refresh_mirror, self._cache, spec.remote_url)
        bundle: Path | None = None
        if spec.seed_bundle is not None:
            bundle = self.log_path.with_suffix(".seed.bundle")
            await asyncio.to_thread(write_private_bytes, bundle, spec.seed_bundle)
        seeded = (spec.seed_commit is not None or spec.wip_commit is not None) and not spec.fresh
        prepared = await asyncio.to_thread(
            mirrors.prepare_node_worktree,
            self._mirror,
            self.ws.worktree_path,
            branch=self.ws.branch,
            base_branch=self.ws.base_branch,
            dependencies=list(spec.dependencies),
            seed_commit=spec.seed_commit if seeded else None,
            seed_base=spec.seed_base if seeded else None,
            seed_bundle=bundle if seeded else None,
            wip_commit=spec.wip_commit if seeded else None,
        )
        self._base_commit = prepared.base_commit
        if seeded and spec.wip_commit is not None:
            note = (
                "──── an earlier attempt's uncommitted work is back in the worktree\n"
                if prepared.wip_applied
                else "──── an earlier attempt's uncommitted work conflicts with the branch now:"
                f" left out (it is kept as {mirrors.WIP_REF}{self.ws.branch})\n"
            )
            await asyncio.to_thread(append_log, self.log_path, note)
        if spec.files is not None:  # the checkout's untracked files, packed by the driver
            notes = [*spec.files_notes]
            notes += await asyncio.to_thread(
                unpack_untracked, spec.files, prepared.path, spec.files_paths
            )
            await asyncio.to_thread(append_log, self.log_path, "".join(f"{n}\n" for n in notes))
        # A node's worktree is new for each attempt: its set-up runs every time.
        env = {**self.ws.env, "MC_RUN_ID": spec.run_id, "MC_WORKTREE": str(prepared.path)}
        await set_up_worktree(
            self.ws,
            prepared.path,
            fresh=True,
            env={**env, **port_env(spec.ports)},
            ports=spec.ports,
            log_path=self.log_path,
            stop=None,
            grace=spec.grace_seconds,
            bring_files=False,
        )
        return NodePrepared(
            node_name(),
            prepared.path,
            prepared.base_commit,
            prepared.merged,
            prepared.wip_applied,
            node_id(),
        )

    async def reopen(self) -> NodeStatus | None:
        """Take up an attempt whose actor is gone from what the node kept; None if nothing is.

        The tool ended (or was stopped) while no mission-control watched; its
        worktree, log and exit status are still here, so the attempt finishes
        (or gives its work back) from them instead of running its tool again.
        """
        self._loop = asyncio.get_running_loop()
        self._unclaimed.cancel()
        self._touch()
        state = await asyncio.to_thread(read_state, self._state_path)
        if state is None or not self.ws.worktree_path.is_dir():
            return None
        mirror = Path(state["mirror"])
        if not (mirror / "HEAD").is_file():
            return None
        self._mirror = mirror
        self._base_commit = str(state["base_commit"])
        stopped = bool(state.get("stopped", False))
        status = await asyncio.to_thread(read_exit_file, exit_file_for(self.log_path))
        if status is None:  # killed with its actor before its wrapper could say how
            status, stopped = ExitStatus(None, None), True
        self._kept = NodeStatus(
            node_name(),
            int(state["pid"]),
            float(state["create_time"]),
            False,
            True,
            tuple(state["dependencies"]),
            await asyncio.to_thread(file_size, self.log_path),
            status,
            stopped,
        )
        return self._kept

    async def keep_uncommitted(self) -> bytes | None:
        """The worktree's uncommitted work as a bundle, before the worktree goes; None if clean."""
        path = self.ws.worktree_path
        if self._mirror is None or not path.exists():
            return None
        kept = await asyncio.to_thread(mirrors.save_uncommitted, path, self.ws.branch)
        if kept is None:
            return None
        exclude = [f"^refs/remotes/{mirrors.REMOTE}/{self.ws.base_branch}"]
        exclude += [f"^refs/remotes/{mirrors.REMOTE}/{d}" for d in self.spec.dependencies]
        return await asyncio.to_thread(
            bundle_bytes, path, f"{mirrors.WIP_REF}{self.ws.branch}", exclude
        )

    async def render(self) -> RenderedCommand:
        """The attempt's argv, stdin and environment, with this node's paths."""
        spec = self.spec
        return await asyncio.to_thread(
            render_command,
            spec.tool,
            self.ws,
            run_id=spec.run_id,
            attempt=spec.attempt,
            attempt_dir=self.log_path.parent,
            worktree=self.ws.worktree_path,
            follow_up=spec.follow_up,
            pricing=spec.pricing,
            spent_before=spec.spent_before,
            ports=spec.ports,
        )

    async def start(self, command: RenderedCommand) -> NodeStarted:
        """Start the tool under supervision."""
        proc = await asyncio.to_thread(
            spawn_attempt,
            command.argv,
            cwd=self.ws.worktree_path,
            env=command.env,
            log_path=self.log_path,
            stdin_path=command.stdin_path,
            exit_file=exit_file_for(self.log_path),
        )
        self._proc = proc
        state = {
            "mirror": str(self._mirror),
            "base_commit": self._base_commit,
            "dependencies": list(self.spec.dependencies),
            "pid": proc.pid,
            "create_time": proc.create_time,
        }
        await asyncio.to_thread(write_state, self._state_path, state)
        self._watch_log()
        self._sampler = MetricsSampler(1.0, self._on_sample_thread)
        self._sampler.watch("attempt", proc, self.log_path)
        self._sampler.start()
        return NodeStarted(proc.pid, proc.create_time)

    async def wait(self) -> NodeEnded:
        """Wait for the tool's end (its whole tree)."""
        if self._kept is not None and self._kept.status is not None:
            return NodeEnded(self._kept.status, await asyncio.to_thread(file_size, self.log_path))
        proc = self._require()
        status = await proc.wait()
        if self._sampler is not None:
            self._sampler.stop()
        report = await asyncio.to_thread(read_report, report_path(self.log_path))
        return NodeEnded(status, await asyncio.to_thread(file_size, self.log_path), report)

    async def pause(self) -> list[int]:
        return await asyncio.to_thread(self._require().pause)

    async def resume(self) -> list[int]:
        return await asyncio.to_thread(self._require().resume)

    async def terminate(self, grace: float) -> TerminateResult:
        self._stop_finishing.set()
        if self._kept is not None:
            return TerminateResult((), (), (), self._kept.status)  # nothing runs any more
        return await self._require().terminate(grace)

    async def stop_finishing(self) -> None:
        """Stop a running check (the workstream was killed or skipped)."""
        self._stop_finishing.set()

    async def finish(self, force_push: bool) -> NodeFinished:
        """Checks and commit in the worktree, then the push; the work comes back as a bundle."""
        spec = self.spec
        req = FinishRequest(
            ws=self.ws,
            run_id=spec.run_id,
            attempt=spec.attempt,
            worktree=self.ws.worktree_path,
            base_commit=self._base_commit,
            log_path=self.log_path,
            grace_seconds=spec.grace_seconds,
            stop=self._stop_finishing,
            force_push=force_push,
            ports=spec.ports,
        )
        committed: Committed | None = None
        async for item in check_and_commit(req):
            if isinstance(item, Committed):
                committed = item
            else:
                self._report(spec, item)
        assert committed is not None
        done = committed.outcome
        # Work that changed nothing is pushed too (its branch sits at the base, plus any
        # dependency merges): dependents on other nodes take it from the remote.
        unchanged_ok = done is not None and done.ok and committed.commit is not None
        pushed: Pushed | None = None
        if done is None or unchanged_ok:
            async for step in push_work(req):
                if isinstance(step, Pushed):
                    pushed = step
                else:
                    self._report(spec, step)
        bundle = None
        if committed.commit is not None:
            exclude = [f"^refs/remotes/{mirrors.REMOTE}/{self.ws.base_branch}"]
            exclude += [f"^refs/remotes/{mirrors.REMOTE}/{d}" for d in spec.dependencies]
            bundle = await asyncio.to_thread(
                bundle_bytes, self.ws.worktree_path, f"refs/heads/{self.ws.branch}", exclude
            )
        return NodeFinished(
            committed,
            pushed or Pushed(False),
            bundle,
            await asyncio.to_thread(file_size, self.log_path),
            self._events_made,
        )

    async def touch(self) -> None:
        """A mission-control still watches: push the orphan deadline back."""
        self._touch()

    def _timers(self) -> Clock:
        """The clock of the no-driver timers: the given one, else the actor's loop."""
        if self._clock is None:
            self._loop = self._loop or asyncio.get_running_loop()
            return LoopClock(loop=self._loop)
        return self._clock

    def _orphan(self) -> None:
        self._orphaning = asyncio.ensure_future(self._orphaned())  # kept: not collected

    def _touch(self) -> None:
        if self._closed:
            return  # a closed attempt keeps its short timer: nothing to wait for
        if self._orphan_timer is not None:
            self._orphan_timer.cancel()
        self._orphan_timer = self._timers().call_later(self.spec.orphan_seconds, self._orphan)

    async def describe(self) -> NodeStatus:
        """What a mission-control taking the attempt over needs to know."""
        self._touch()
        if self._kept is not None:
            return self._kept
        proc = self._require()
        return NodeStatus(
            node_name(),
            proc.pid,
            proc.create_time,
            proc.paused,
            proc.status is not None,
            self.spec.dependencies,
            await asyncio.to_thread(file_size, self.log_path),
        )

    async def stream(self, offset: int) -> AsyncIterator[Chunk]:
        """Log bytes from ``offset`` on, finishing events and samples, as they come.

        One stream at a time: a newer call (a mission-control that took the
        attempt over) ends the older one, whose reader is gone, before it could
        swallow events meant for the new reader.
        """
        self._loop = asyncio.get_running_loop()
        self._streams += 1
        me = self._streams
        self._changed.set()  # wakes an older stream so that it ends
        self._watch_log()
        offset = min(offset, await asyncio.to_thread(file_size, self.log_path))
        while True:
            self._changed.clear()
            data = await asyncio.to_thread(read_at, self.log_path, offset, CHUNK_BYTES)
            if me != self._streams:
                return
            events, self._events = tuple(self._events), []
            sample, self._sample = self._sample, None
            if data or events or sample is not None:
                yield Chunk(
                    offset,
                    data,
                    events,
                    sample[0] if sample else None,
                    sample[1].size if sample else 0,
                    sample[1].report if sample else None,
                    self._events_made,
                )
                offset += len(data)
                if len(data) == CHUNK_BYTES:
                    continue  # more is waiting: no need to sleep first
            elif self._closed:
                return
            await self._changed.wait()
            if me != self._streams:
                return

    async def close(self) -> None:
        """End the stream, remove the worktree and the attempt's files, let the watchdog sweep.

        The actor is killed next; should its mission-control die first, the
        no-driver timer (shortened now) still ends it.
        """
        self._closed = True
        self._changed.set()
        if self._orphan_timer is not None:
            self._orphan_timer.cancel()
        wait = min(self.spec.orphan_seconds, CLOSED_EXIT_SECONDS)
        self._orphan_timer = self._timers().call_later(wait, self._orphan)
        if self._sampler is not None:
            self._sampler.stop()
        if self._unwatch_log is not None:
            self._unwatch_log()
            self._unwatch_log = None
        if self._mirror is not None:
            await asyncio.to_thread(
                mirrors.remove_node_worktree, self._mirror, self.ws.worktree_path
            )
        await asyncio.to_thread(self._remove_files)
        with contextlib.suppress(OSError):
            os.close(self._watchdog)

    def _remove_files(self) -> None:
        """Forget the attempt on this node: its work folder, its log and state (all sent back)."""
        shutil.rmtree(self._work_root, ignore_errors=True)
        folder = self.log_path.parent
        for path in folder.glob(f"{self.log_path.stem}.*"):
            with contextlib.suppress(OSError):
                path.unlink()
        if not any(folder.glob("attempt-*")):  # the workstream's last attempt here
            with contextlib.suppress(OSError):
                (folder / "prompt.txt").unlink()
        remove_empty(folder, self._root / "runs")
        remove_empty(self._work_root.parent, self._root)

    def _never_claimed(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._watchdog)
        os._exit(0)  # nothing was started: Ray marks the actor dead, its room is freed

    async def _orphaned(self) -> None:
        """No mission-control for ``orphan_seconds``: stop the tool, keep its work, go away.

        The actor is detached (it outlives a crashed mission-control so that
        ``resume`` can take the attempt back); this is what keeps one that is
        never taken back from holding its node forever. The worktree stays on
        the node's disk with whatever the tool did.
        """
        if self._closed:
            with contextlib.suppress(OSError):
                os.close(self._watchdog)
            os._exit(0)  # closed and never killed: its mission-control died just before
        minutes = self.spec.orphan_seconds / 60
        # With nobody waiting on it, an ended tool has no status here yet: its
        # wrapper's exit file says whether it ended by itself.
        ended = await asyncio.to_thread(read_exit_file, exit_file_for(self.log_path))
        running = (self._proc is None or self._proc.status is None) and ended is None
        what = "attempt stopped" if running else "its tool had ended"
        note = (
            f"\n──── no mission-control for {minutes:g} min: {what};"
            f" its work stays in {self.ws.worktree_path} on {node_name()}"
            " until a mission-control resumes the run\n"
        )
        await asyncio.to_thread(append_log, self.log_path, note)
        if running:
            # Said before the stop: a resume then knows the tool did not end by itself.
            state = await asyncio.to_thread(read_state, self._state_path)
            if state is not None:
                state["stopped"] = True
                await asyncio.to_thread(write_state, self._state_path, state)
            if self._proc is not None:
                await self._proc.terminate(self.spec.grace_seconds)
        if self._sampler is not None:
            self._sampler.stop()
        with contextlib.suppress(OSError):
            os.close(self._watchdog)
        os._exit(0)  # Ray marks the detached actor dead; the watchdog sweeps what is left

    # ------------------------------------------------------------- plumbing

    def _require(self) -> AttemptProcess:
        if self._proc is None:
            raise MissionControlError(f"{self.spec.ws.task_id}: the tool has not started")
        return self._proc

    def _watch_log(self) -> None:
        if self._unwatch_log is None:
            self._unwatch_log = shared_watcher().watch(
                self.log_path, lambda _grew: self._wake_thread()
            )

    def _wake_thread(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._changed.set)

    def _report(self, spec: NodeSpec, item: FinishItem) -> None:
        """A finishing step's end, as an event in the attempt's stream. The driver
        records the commit from what ``finish`` returns; forecasts run there too."""
        if isinstance(item, StepDone):
            self._publish(
                ev.FinishStepDone(
                    spec.run_id, self.ws.task_id, item.step, item.ok, item.detail, time.time()
                )
            )

    def _publish(self, event: ev.Event) -> None:
        self._events.append(event)
        self._events_made += 1
        self._changed.set()

    def _on_sample_thread(
        self, samples: dict[str, ev.ProcessSample], activity: dict[str, LogActivity]
    ) -> None:
        loop = self._loop
        if "attempt" in samples and "attempt" in activity and loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(
                    self._take_sample, samples["attempt"], activity["attempt"]
                )

    def _take_sample(self, sample: ev.ProcessSample, activity: LogActivity) -> None:
        if activity.report is None and self._sample is not None and self._sample[1].report:
            # A report not yet sent is not dropped by a newer sample without one.
            activity = LogActivity(activity.size, activity.mtime, self._sample[1].report)
        self._sample = (sample, activity)
        self._changed.set()


__all__ = ["MARK_VAR", "NodeAttempt", "node_dir"]
