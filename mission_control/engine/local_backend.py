"""The ``local`` backend: attempts in worktrees beside the repository, on this machine.

It owns what only this machine can do: the supervisor's process trees, the
metrics sampler that watches them (its samples stream to the engine through
the ``AttemptSink``), and the adoption of processes an earlier mission-control
started, by pid and start time:
- its agent still runs (same pid, same start time): it is watched again;
- its agent ended while nobody watched: the exit status its wrapper left says how;
- an attempt recorded without a pid (a crash between record and spawn) may have
  a process nobody learned of: it is found by its ``MC_*`` environment and
  stopped, so two agents never share a worktree.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping

from ..errors import SetupError
from ..git import diffs, worktrees
from ..plan.model import Plan, Price, ToolSpec, Workstream
from .backend import (
    Adoption,
    AttemptRequest,
    AttemptSink,
    BackendOptions,
    EndedUnwatched,
    LeftBehind,
    Prepared,
    Started,
    StillRunning,
    Workspace,
    register_backend,
)
from .events import ProcessSample
from .finish import FinishItem, FinishRequest, finish_workstream
from .metrics import LogActivity, MetricsSampler
from .process_tree import is_alive, processes_with_env, signal_all
from .supervisor import (
    AttemptProcess,
    ExitStatus,
    TerminateResult,
    adopt,
    read_exit_file,
    spawn_attempt,
)
from .tools import RenderedCommand, render_command, resolve_executable
from .worktree_setup import has_include_file, set_up_worktree


class LocalBackend:
    """Attempts in worktrees beside the repository, run by this machine's supervisor."""

    name = "local"

    def __init__(self, options: BackendOptions | None = None) -> None:
        options = options or BackendOptions()
        self._interval = options.sample_interval
        self._log_watcher = options.log_watcher
        self._sampler: MetricsSampler | None = None
        self._sink: AttemptSink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pricing: Mapping[str, Price] = {}

    async def open(self, plan: Plan, workstreams: list[Workstream], sink: AttemptSink) -> None:
        self._sink = sink
        self._pricing = plan.pricing
        self._loop = asyncio.get_running_loop()
        if self._sampler is None:
            self._sampler = MetricsSampler(
                self._interval, self._on_sample_thread, self._log_watcher
            )
            self._sampler.start()

    async def close(self, *, keep: bool = False) -> None:
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None

    async def prepare(self, request: AttemptRequest) -> Prepared:
        ws = request.ws
        # One trip to a worker thread: each trip costs the dependent's start time.
        workspace, command, included = await asyncio.to_thread(self._prepare_here, request)
        await set_up_worktree(
            ws,
            workspace.path,
            fresh=request.fresh,
            env=command.env,
            ports=request.ports,
            log_path=request.log_path,
            stop=request.stop,
            grace=request.grace_seconds,
            included=included,
        )
        return Prepared(workspace, command)

    def _prepare_here(self, request: AttemptRequest) -> tuple[Workspace, RenderedCommand, bool]:
        """The worktree, its branch and merges, the rendered command, and whether the
        repository has a ``.worktreeinclude`` (blocking)."""
        ws = request.ws
        _check_inputs(ws, request.tool)
        made = worktrees.prepare_worktree(ws, list(request.dependencies), request.known_holds)
        if request.fresh:
            worktrees.reset_worktree(made.path, made.base_commit, ws.branch)
        workspace = Workspace(made.path, made.branch, made.base_commit)
        command = render_command(  # writes an inline prompt to its file
            request.tool,
            ws,
            run_id=request.run_id,
            attempt=request.attempt,
            attempt_dir=request.log_path.parent,
            worktree=workspace.path,
            ports=request.ports,
            follow_up=request.follow_up,
            pricing=self._pricing,
            spent_before=request.spent_before,
        )
        return workspace, command, has_include_file(ws)

    async def start(self, request: AttemptRequest, prepared: Prepared) -> Started:
        command = prepared.command
        proc = await asyncio.to_thread(
            spawn_attempt,
            command.argv,
            cwd=prepared.workspace.path,
            env=command.env,
            log_path=request.log_path,
            stdin_path=command.stdin_path,
            exit_file=request.exit_file,
            inherit=request.port_locks,
        )
        handle = self._watch(request, proc)
        return Started(handle, (proc.pid, proc.create_time))

    async def adopt(self, request: AttemptRequest, left: LeftBehind) -> Adoption | None:
        if left.ended:
            return None  # nothing of an ended local attempt outlives it
        ws = request.ws
        if left.pid is None:
            await asyncio.to_thread(stop_strays, request.run_id, ws.task_id, request.attempt)
        else:
            proc = await asyncio.to_thread(
                adopt, left.pid, left.pid_create_time or 0.0, request.exit_file
            )
            if proc is not None:
                return StillRunning(self._watch(request, proc))
        status = await asyncio.to_thread(read_exit_file, request.exit_file)
        return EndedUnwatched(status) if status is not None else None

    def finish(self, request: FinishRequest) -> AsyncIterator[FinishItem]:
        return finish_workstream(request)

    async def release(self, task_id: str) -> None:
        self._unwatch(task_id)

    def diff(self, ws: Workstream, workspace: Workspace) -> str:
        if not workspace.path.exists():
            return f"{ws.task_id} has no worktree yet"
        return diffs.diff_against(workspace.path, workspace.base_commit)

    def _watch(self, request: AttemptRequest, proc: AttemptProcess) -> LocalAttempt:
        task_id = request.ws.task_id
        if self._sampler is not None:
            self._sampler.watch(task_id, proc, request.log_path)
        return LocalAttempt(proc, lambda: self._unwatch(task_id))

    def _unwatch(self, task_id: str) -> None:
        if self._sampler is not None:
            self._sampler.unwatch(task_id)

    def _on_sample_thread(
        self, samples: dict[str, ProcessSample], activity: dict[str, LogActivity]
    ) -> None:
        loop, sink = self._loop, self._sink
        if loop is not None and sink is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(sink.on_sample, samples, activity)


class LocalAttempt:
    """A process tree of this machine; its sampling stops when it ends."""

    def __init__(self, proc: AttemptProcess, unwatch: Callable[[], None]) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.create_time = proc.create_time
        self._unwatch = unwatch

    @property
    def paused(self) -> bool:
        return self.proc.paused

    async def wait(self) -> ExitStatus:
        try:
            return await self.proc.wait()
        finally:
            self._unwatch()

    def pause(self) -> list[int]:
        return self.proc.pause()

    def resume(self) -> list[int]:
        return self.proc.resume()

    async def terminate(self, grace: float) -> TerminateResult:
        return await self.proc.terminate(grace)


def stop_strays(run_id: str, task_id: str, attempt: int) -> list[int]:
    """Kill processes of an attempt that was never recorded with a pid (blocking)."""
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


def _check_inputs(ws: Workstream, tool: ToolSpec) -> None:
    """What must exist before a worktree is made (blocking: PATH lookup, a stat)."""
    resolve_executable(ws, tool)
    if ws.prompt_file is not None and not ws.prompt_file.is_file():
        raise SetupError(
            f"{ws.task_id}: prompt file {ws.prompt_file} not found: "
            "create it or fix prompt_file in the plan"
        )


register_backend("local", LocalBackend)

__all__ = ["LocalAttempt", "LocalBackend", "stop_strays"]
