"""Where attempts run: the seam between the engine and the machines that do the work.

The engine decides what runs and when, records every change and publishes
events; a backend makes an attempt's workspace, starts its tool, hands back a
handle to pause, resume, stop and wait for it, and does the finishing steps
that must happen where the worktree is. ``local`` runs everything on this
machine (worktrees beside the repository); ``ray`` (in ``mission_control.remote``)
runs each attempt in an actor on a cluster node. The scheduler, the store, the
events and the views are the same for both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import MissionControlError, SetupError
from ..git import diffs, worktrees
from ..plan.model import Plan, ToolSpec, Workstream
from .events import Event, ProcessSample
from .finish import FinishContext, FinishOutcome, finish_workstream
from .metrics import LogActivity
from .supervisor import ExitStatus, TerminateResult, spawn_attempt
from .tools import RenderedCommand, render_command, resolve_executable

SampleSink = Callable[[dict[str, ProcessSample], dict[str, LogActivity]], None]


@dataclass(frozen=True, slots=True)
class AttemptSink:
    """Where a backend that watches its own attempts sends what it sees (on the engine's loop)."""

    on_sample: SampleSink
    publish: Callable[[Event], None]


BACKENDS = ("local", "ray")


class AttemptLost(MissionControlError):
    """The machine or actor running an attempt went away: the attempt is ``interrupted``."""


class AttemptHandle(Protocol):
    """A running attempt, wherever it runs."""

    pid: int
    create_time: float

    @property
    def paused(self) -> bool: ...

    async def wait(self) -> ExitStatus: ...

    def pause(self) -> list[int]:
        """Blocking: call from a worker thread."""
        ...

    def resume(self) -> list[int]:
        """Blocking: call from a worker thread."""
        ...

    async def terminate(self, grace: float) -> TerminateResult: ...


@dataclass(frozen=True, slots=True)
class Workspace:
    """Where an attempt's tool runs: a worktree on this machine or on a node."""

    path: Path
    branch: str
    base_commit: str
    node: str | None = None
    """The node's name when the worktree is not on this machine."""

    @property
    def shown(self) -> str:
        return str(self.path) if self.node is None else f"{self.node}:{self.path}"


@dataclass(frozen=True, slots=True)
class AttemptRequest:
    """What the engine asks a backend to start: one attempt of one workstream."""

    ws: Workstream
    tool: ToolSpec
    run_id: str
    attempt: int
    dependencies: tuple[str, ...]
    """Branches to merge into a new branch (``base: deps``)."""
    fresh: bool
    log_path: Path
    exit_file: Path
    grace_seconds: float = 10.0
    """After SIGTERM, how long a stopped process gets before SIGKILL."""
    stop: asyncio.Event | None = None
    """Set when the workstream is killed or skipped: a backend waiting for room gives up."""


class Backend(Protocol):
    name: str
    runs_here: bool
    """Attempts are processes of this machine: a later mission-control adopts them by pid."""

    def preparing(self, ws: Workstream) -> str:
        """What the views say while an attempt of ``ws`` is being set up."""
        ...

    def connect(self) -> None:
        """Reach the machines (blocking); a view calls it before it takes the screen."""
        ...

    async def open(self, plan: Plan, workstreams: list[Workstream]) -> None:
        """Connect and check what the run needs, before anything starts."""
        ...

    async def close(self, *, keep: bool = False) -> None:
        """Let go of the backend; ``keep`` leaves running attempts running (detach)."""
        ...

    async def adopt(self, request: AttemptRequest, sink: AttemptSink) -> AttemptHandle | None:
        """Take back an attempt a previous mission-control started elsewhere; None if gone."""
        ...

    async def prepare(self, request: AttemptRequest) -> Workspace: ...

    async def render(self, request: AttemptRequest, workspace: Workspace) -> RenderedCommand: ...

    async def spawn(
        self,
        request: AttemptRequest,
        workspace: Workspace,
        command: RenderedCommand,
        sink: AttemptSink,
    ) -> AttemptHandle: ...

    async def finish(self, ctx: FinishContext) -> FinishOutcome:
        """Checks, commit, push, pull request and forecast of the attempt in ``ctx``."""
        ...

    async def release(self, task_id: str) -> None:
        """Drop whatever the attempt holds outside this process (an actor); idempotent."""
        ...

    def diff(self, ws: Workstream, workspace: Workspace) -> str:
        """The workspace's changes against its base (blocking)."""
        ...


class LocalBackend:
    """Attempts in worktrees beside the repository, run by this machine's supervisor."""

    name = "local"
    runs_here = True

    def preparing(self, ws: Workstream) -> str:
        return "creating worktree"

    def connect(self) -> None:
        return None

    async def open(self, plan: Plan, workstreams: list[Workstream]) -> None:
        return None

    async def close(self, *, keep: bool = False) -> None:
        return None

    async def adopt(self, request: AttemptRequest, sink: AttemptSink) -> AttemptHandle | None:
        return None  # local attempts are adopted by pid (engine.recovery)

    async def prepare(self, request: AttemptRequest) -> Workspace:
        ws = request.ws
        await asyncio.to_thread(_check_inputs, ws, request.tool)
        prepared = await asyncio.to_thread(
            worktrees.prepare_worktree, ws, list(request.dependencies)
        )
        if request.fresh:
            await asyncio.to_thread(
                worktrees.reset_worktree, prepared.path, prepared.base_commit, ws.branch
            )
        return Workspace(prepared.path, prepared.branch, prepared.base_commit)

    async def render(self, request: AttemptRequest, workspace: Workspace) -> RenderedCommand:
        return await asyncio.to_thread(  # writes an inline prompt to its file
            render_command,
            request.tool,
            request.ws,
            run_id=request.run_id,
            attempt=request.attempt,
            attempt_dir=request.log_path.parent,
            worktree=workspace.path,
        )

    async def spawn(
        self,
        request: AttemptRequest,
        workspace: Workspace,
        command: RenderedCommand,
        sink: AttemptSink,
    ) -> AttemptHandle:
        return await asyncio.to_thread(
            spawn_attempt,
            command.argv,
            cwd=workspace.path,
            env=command.env,
            log_path=request.log_path,
            stdin_path=command.stdin_path,
            exit_file=request.exit_file,
        )

    async def finish(self, ctx: FinishContext) -> FinishOutcome:
        return await finish_workstream(ctx)

    async def release(self, task_id: str) -> None:
        return None

    def diff(self, ws: Workstream, workspace: Workspace) -> str:
        if not workspace.path.exists():
            return f"{ws.task_id} has no worktree yet"
        return diffs.diff_against(workspace.path, workspace.base_commit)


def make_backend(name: str, ray_address: str | None = None) -> Backend:
    """The backend called ``name``; SetupError naming the fix when it cannot be had."""
    if name == "local":
        return LocalBackend()
    if name == "ray":
        try:
            from ..remote.ray_backend import RayBackend
        except ImportError as err:
            raise SetupError(
                f"--backend ray needs Ray, which is not installed ({err.name or err}):"
                " install it with `pip install 'mission-control[ray]'`"
                " (or `uv sync --extra ray` in a checkout)"
            ) from None
        return RayBackend(ray_address or "auto")
    raise SetupError(f"unknown backend '{name}': use one of {', '.join(BACKENDS)}")


def _check_inputs(ws: Workstream, tool: ToolSpec) -> None:
    """What must exist before a worktree is made (blocking: PATH lookup, a stat)."""
    resolve_executable(ws, tool)
    if ws.prompt_file is not None and not ws.prompt_file.is_file():
        raise SetupError(
            f"{ws.task_id}: prompt file {ws.prompt_file} not found: "
            "create it or fix prompt_file in the plan"
        )


__all__ = [
    "BACKENDS",
    "AttemptHandle",
    "AttemptLost",
    "AttemptRequest",
    "AttemptSink",
    "Backend",
    "LocalBackend",
    "Workspace",
    "make_backend",
]
