"""Where attempts run: the seam between the engine and the machines that do the work.

The engine decides what runs and when, records every change and publishes
events; a backend makes an attempt's workspace, starts its tool, hands back a
handle to pause, resume, stop and wait for it, takes back attempts an earlier
mission-control left running, and does the finishing steps that must happen
where the worktree is. Each of these returns a result (finishing yields its
steps one by one) that the engine records and publishes: a backend never calls
into the engine, and the engine never asks which backend it has.

Backends are found by name (``make_backend``): ``local`` runs everything on
this machine (``engine.local_backend``); others live in their own modules and
register themselves when imported (``ray``: ``mission_control.remote``), so
the engine never imports them.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import MissionControlError, SetupError
from ..plan.model import Plan, ToolSpec, Workstream
from ..store.watch import LogWatcher
from .backend_names import BACKEND_MODULES, BACKENDS
from .events import Event, ProcessSample
from .finish import FinishItem, FinishRequest
from .metrics import LogActivity
from .supervisor import ExitStatus, TerminateResult
from .tools import FollowUp, RenderedCommand

SampleSink = Callable[[dict[str, ProcessSample], dict[str, LogActivity]], None]


@dataclass(frozen=True, slots=True)
class AttemptSink:
    """Where a backend streams what it sees of running attempts (on the engine's loop):
    process samples and log activity, and the events an attempt elsewhere made."""

    on_sample: SampleSink
    publish: Callable[[Event], None]


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
class Prepared:
    """A prepared attempt: its workspace and the command its tool will run."""

    workspace: Workspace
    command: RenderedCommand


@dataclass(frozen=True, slots=True)
class Started:
    """A started attempt: its handle, and how the ledger knows its process."""

    handle: AttemptHandle
    local_pid: tuple[int, float] | None
    """(pid, start time) a later mission-control on this machine adopts it by; None
    when the process is not this machine's."""


@dataclass(frozen=True, slots=True)
class LeftBehind:
    """What the ledger knows of an attempt an earlier mission-control started."""

    pid: int | None
    pid_create_time: float | None
    ended: bool
    """Its end is recorded: only what it still holds elsewhere is looked for."""


@dataclass(frozen=True, slots=True)
class StillRunning:
    """Adopted: the attempt's tool still runs and is watched again."""

    handle: AttemptHandle


@dataclass(frozen=True, slots=True)
class EndedUnwatched:
    """The attempt's tool ended while nobody watched; ``status`` is how."""

    status: ExitStatus


Adoption = StillRunning | EndedUnwatched


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
    """Set when the workstream is stopped or the run detached: a backend waiting for
    room gives up (``prepare`` raises)."""
    ports: tuple[int, ...] = ()
    """The attempt's ports (``MC_PORT``, ``{port}``), claimed by the engine."""
    port_locks: tuple[int, ...] = ()
    """The open lock files of those ports (``engine.ports``): a tool started on this
    machine inherits them, so its ports stay held while it runs, whatever becomes of
    this process."""
    follow_up: FollowUp | None = None
    """The user's message that this attempt continues the agent's conversation with."""
    spent_before: tuple[int, float] = (0, 0.0)
    """Tokens and USD the workstream's earlier attempts used: its budget covers them all."""
    known_holds: tuple[tuple[str, str], ...] = ()
    """(commit, a commit it holds) pairs the engine saw made: ancestry questions they
    answer need no git."""


class Backend(Protocol):
    name: str

    async def open(self, plan: Plan, workstreams: list[Workstream], sink: AttemptSink) -> None:
        """Reach the machines and check what the run needs, before anything starts.
        Idempotent: a view may open it before it takes the screen."""
        ...

    async def close(self, *, keep: bool = False) -> None:
        """Let go of the backend; ``keep`` leaves running attempts running (detach)."""
        ...

    async def prepare(self, request: AttemptRequest) -> Prepared:
        """The attempt's workspace (worktree, branch, merges) and its rendered command."""
        ...

    async def start(self, request: AttemptRequest, prepared: Prepared) -> Started: ...

    async def adopt(self, request: AttemptRequest, left: LeftBehind) -> Adoption | None:
        """Take back an attempt an earlier mission-control started; None if nothing is left."""
        ...

    def finish(self, request: FinishRequest) -> AsyncIterator[FinishItem]:
        """Checks, commit, push, pull request and forecast: each result as it comes,
        the last one a ``FinishOutcome``."""
        ...

    async def release(self, task_id: str) -> None:
        """Drop whatever the attempt holds outside this process (an actor); idempotent."""
        ...

    def diff(self, ws: Workstream, workspace: Workspace) -> str:
        """The workspace's changes against its base (blocking)."""
        ...


@dataclass(frozen=True, slots=True)
class BackendOptions:
    ray_address: str | None = None
    sample_interval: float = 1.0
    log_watcher: LogWatcher | None = None
    """Where log growth is heard; None: the process's shared watcher."""


BackendFactory = Callable[[BackendOptions], Backend]

_FACTORIES: dict[str, BackendFactory] = {}


_NOT_INSTALLED = {
    "ray": "--backend ray needs Ray, which is not installed ({missing}):"
    " install it with `pip install 'mission-control[ray]'`"
    " (or `uv sync --extra ray` in a checkout)",
}


def register_backend(name: str, factory: BackendFactory) -> None:
    _FACTORIES[name] = factory


def make_backend(name: str, options: BackendOptions | None = None) -> Backend:
    """The backend called ``name``; SetupError naming the fix when it cannot be had."""
    if name not in BACKEND_MODULES and name not in _FACTORIES:
        raise SetupError(f"unknown backend '{name}': use one of {', '.join(BACKENDS)}")
    if name not in _FACTORIES:
        try:
            importlib.import_module(BACKEND_MODULES[name])
        except ImportError as err:
            text = _NOT_INSTALLED.get(name, "--backend {name} cannot be loaded ({missing})")
            raise SetupError(text.format(name=name, missing=err.name or err)) from None
    return _FACTORIES[name](options or BackendOptions())


__all__ = [
    "BACKENDS",
    "Adoption",
    "AttemptHandle",
    "AttemptLost",
    "AttemptRequest",
    "AttemptSink",
    "Backend",
    "BackendOptions",
    "EndedUnwatched",
    "LeftBehind",
    "Prepared",
    "Started",
    "StillRunning",
    "Workspace",
    "make_backend",
    "register_backend",
]
