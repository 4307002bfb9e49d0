"""The ``ray`` backend: each attempt runs in a Ray actor on some node of a cluster.

The nodes cannot see the user's folder, so an attempt clones the repository
from its remote (see ``git.mirrors``), starts from the base branch and the
dependencies' pushed branches (or from the commits this machine already holds
for the branch, sent as a bundle), and pushes its branch when it is done. Its
log streams back in chunks that are appended to the same local log file a
local attempt writes, so the app, ``logs`` and ``status`` work unchanged; its
commits come back as a bundle, so the local branch, the diff, the conflict
forecast and the pull request all happen here as for a local attempt.

A lost actor or node ends the attempt as ``interrupted`` (``AttemptLost``) and
the engine starts it again. Actors are detached and named after their run,
workstream and attempt, so an agent outlives a crash of mission-control (or a
detached run) and ``resume`` takes it back. A heartbeat tells each actor that a
mission-control still watches; one that hears nothing for ``orphan_seconds``
(``MC_RAY_ORPHAN_MINUTES``, default 60) stops its tool and goes away, so an
abandoned run does not hold the cluster forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# Under `uv run`, Ray would otherwise copy the current folder (the user's project) to
# the cluster and rebuild its environment on every node; the nodes run their own
# installed mission-control instead.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError, WorkerCrashedError

from ..engine.backend import AttemptLost, AttemptRequest, AttemptSink, Workspace
from ..engine.finish import FinishContext, FinishOutcome, Pushed, deliver, report_step
from ..engine.metrics import LogActivity
from ..engine.supervisor import ExitStatus, TerminateResult
from ..engine.tools import RenderedCommand, read_prompt
from ..errors import GitError, MissionControlError, SetupError
from ..git import bundles, diffs, repo
from ..git.worktrees import list_worktrees
from ..plan.model import Plan, Workstream
from ..store.logs import file_size
from ..store.private import append_private
from .node import NodeAttempt
from .protocol import (
    Chunk,
    NodeEnded,
    NodeFinished,
    NodePrepared,
    NodeSpec,
    NodeStarted,
    NodeStatus,
)

_LOST = (RayActorError, WorkerCrashedError)
NAMESPACE = "mission-control"
ORPHAN_MINUTES_VAR = "MC_RAY_ORPHAN_MINUTES"


def actor_name(run_id: str, task_id: str, attempt: int) -> str:
    return f"mc/{run_id}/{task_id}/{attempt}"


def orphan_seconds() -> float:
    """How long an actor waits for word from a mission-control before it stops itself."""
    raw = os.environ.get(ORPHAN_MINUTES_VAR, "")
    try:
        minutes = float(raw) if raw else 60.0
    except ValueError:
        raise SetupError(
            f"{ORPHAN_MINUTES_VAR}={raw!r} is not a number of minutes: set it to e.g. 60"
        ) from None
    return max(minutes, 0.05) * 60


@dataclass(slots=True)
class _Remote:
    """This process's record of one attempt's actor."""

    actor: Any
    node: str | None = None
    """Known once the actor answered: until then it may still wait for room."""
    attempt: RayAttempt | None = None
    dependencies: tuple[str, ...] = ()
    ws: Workstream | None = None


class RayBackend:
    """Runs attempts as Ray actors; see the module docstring."""

    name = "ray"
    runs_here = False

    def preparing(self, ws: Workstream) -> str:
        return f"starting on the ray cluster (cpus {ws.resources.cpus:g})"

    def __init__(self, address: str = "auto") -> None:
        self.address = address
        self._remotes: dict[str, _Remote] = {}
        self._urls: dict[tuple[Path, str], str] = {}
        self._started_ray = False
        self._actor_class: Any = None
        self._orphan_seconds = 3600.0
        self._heartbeat: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def open(self, plan: Plan, workstreams: list[Workstream]) -> None:
        self._urls = await asyncio.to_thread(_remote_urls, plan, workstreams)
        await asyncio.to_thread(self.connect)
        await asyncio.to_thread(_check_fits, workstreams)
        self._orphan_seconds = orphan_seconds()
        self._actor_class = ray.remote(max_restarts=0, max_task_retries=0)(NodeAttempt)
        self._heartbeat = asyncio.ensure_future(self._beat())

    async def _beat(self) -> None:
        """Tell every actor, now and then, that a mission-control still watches it."""
        interval = max(1.0, self._orphan_seconds / 6)
        while True:
            await asyncio.sleep(interval)
            for remote in list(self._remotes.values()):
                remote.actor.touch.remote()  # fire and forget: a lost actor shows elsewhere

    def connect(self) -> None:
        """Reach the cluster (blocking). Call it before a view takes the screen: Ray's
        own messages while it tries go straight to the terminal."""
        if ray.is_initialized():
            return
        quiet: dict[str, Any] = {
            "namespace": NAMESPACE,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
        }
        try:
            with _real_std_streams():
                self._init(quiet)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise SetupError(
                f"cannot reach the Ray cluster at {self.address}: {_first_line(err)}"
                " — start it (`ray start --head`) or fix --ray-address; a cluster with token"
                " authentication also needs RAY_AUTH_MODE=token and its token here"
                " (RAY_AUTH_TOKEN or ~/.ray/auth_token)"
            ) from None
        self._started_ray = True

    def _init(self, quiet: dict[str, Any]) -> None:
        if self.address == "auto":
            try:
                ray.init(address="auto", **quiet)
            except ConnectionError:
                # No cluster running here: start one for this run.
                ray.init(include_dashboard=False, **quiet)
        else:
            ray.init(address=self.address, **quiet)

    async def close(self, *, keep: bool = False) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if keep:
            for remote in self._remotes.values():
                if remote.attempt is not None:
                    remote.attempt.stop_pump()
            self._remotes.clear()
        for task_id in list(self._remotes):
            await self.release(task_id)
        if self._started_ray:
            await asyncio.to_thread(ray.shutdown)
            self._started_ray = False

    # ------------------------------------------------------------- attempts

    async def prepare(self, request: AttemptRequest) -> Workspace:
        ws = request.ws
        await self.release(ws.task_id)  # an earlier attempt's actor, if any
        seed = None
        if request.fresh:
            await asyncio.to_thread(bundles.drop_wip, ws.repo, ws.branch)
        else:
            seed = await asyncio.to_thread(bundles.seed_for_branch, ws.repo, ws.branch, ws.remote)
        prompt = await asyncio.to_thread(read_prompt, ws)
        deps = tuple(await asyncio.to_thread(_branches_to_merge, ws, request.dependencies))
        spec = NodeSpec(
            run_id=request.run_id,
            attempt=request.attempt,
            ws=ws,
            tool=request.tool,
            remote_url=self._urls[(ws.repo, ws.remote)],
            dependencies=deps,
            prompt_text=prompt,
            grace_seconds=request.grace_seconds,
            seed_commit=seed.commit if seed else None,
            seed_base=seed.base if seed else None,
            seed_bundle=seed.bundle if seed else None,
            fresh=request.fresh,
            wip_commit=seed.wip if seed else None,
            orphan_seconds=self._orphan_seconds,
        )
        res = ws.resources
        options: dict[str, Any] = {
            "num_cpus": res.cpus,
            "name": actor_name(request.run_id, ws.task_id, request.attempt),
            "namespace": NAMESPACE,
            "lifetime": "detached",
            "get_if_exists": False,
        }
        if res.memory_bytes is not None:
            options["memory"] = res.memory_bytes
        if res.custom:
            options["resources"] = dict(res.custom)
        # A crash between making an actor and starting its tool leaves one by this name.
        await asyncio.to_thread(_kill_named, options["name"])
        # Registering a named actor is a synchronous call to the cluster (and pickles the
        # seed bundle): off the loop.
        actor = await asyncio.to_thread(lambda: self._actor_class.options(**options).remote(spec))
        remote = _Remote(actor, dependencies=deps, ws=ws)
        self._remotes[ws.task_id] = remote
        # The actor may wait for room on the cluster: a kill must not wait with it.
        call = asyncio.ensure_future(self._call(ws.task_id, actor.prepare.remote()))
        if request.stop is not None:
            stopping = asyncio.ensure_future(request.stop.wait())
            await asyncio.wait({call, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not call.done():
                call.cancel()
                await self.release(ws.task_id)
                raise MissionControlError(f"{ws.task_id}: stopped before it started on a node")
        try:
            prepared: NodePrepared = await call
        except MissionControlError:
            remote.node = "?"  # it answered: let release clean up what it made
            raise
        remote.node = prepared.node
        if prepared.wip_applied:  # the work is in the new worktree now
            await asyncio.to_thread(bundles.drop_wip, ws.repo, ws.branch)
        return Workspace(prepared.path, ws.branch, prepared.base_commit, node=prepared.node)

    async def adopt(self, request: AttemptRequest, sink: AttemptSink) -> RayAttempt | None:
        """Find the attempt's actor by name; None when it is gone (it starts again)."""
        ws = request.ws
        name = actor_name(request.run_id, ws.task_id, request.attempt)
        try:
            actor = await asyncio.to_thread(ray.get_actor, name, NAMESPACE)
        except ValueError:
            return None
        remote = _Remote(actor, ws=ws)
        self._remotes[ws.task_id] = remote
        try:
            status: NodeStatus = await self._call(ws.task_id, actor.describe.remote())
        except (AttemptLost, MissionControlError):
            await self.release(ws.task_id)
            return None
        remote.node = status.node
        remote.dependencies = status.dependencies
        # The local log may also hold lines this machine wrote while finishing.
        offset = min(await asyncio.to_thread(file_size, request.log_path), status.log_size)
        started = NodeStarted(status.pid, status.create_time)
        handle = RayAttempt(self, ws.task_id, remote, started, request.log_path, sink, offset)
        handle.set_paused(status.paused)
        remote.attempt = handle
        return handle

    async def render(self, request: AttemptRequest, workspace: Workspace) -> RenderedCommand:
        remote = self._remote(request.ws.task_id)
        command: RenderedCommand = await self._call(
            request.ws.task_id, remote.actor.render.remote()
        )
        return command

    async def spawn(
        self,
        request: AttemptRequest,
        workspace: Workspace,
        command: RenderedCommand,
        sink: AttemptSink,
    ) -> RayAttempt:
        task_id = request.ws.task_id
        remote = self._remote(task_id)
        started: NodeStarted = await self._call(task_id, remote.actor.start.remote(command))
        attempt = RayAttempt(self, task_id, remote, started, request.log_path, sink, 0)
        remote.attempt = attempt
        return attempt

    async def finish(self, ctx: FinishContext) -> FinishOutcome:
        ws = ctx.ws
        remote = self._remotes.get(ws.task_id)
        if remote is None or remote.attempt is None:
            raise AttemptLost(
                f"{ws.task_id}: its worktree was on a node of the last mission-control's"
                " cluster session"
            )
        stopper = asyncio.ensure_future(_forward_stop(ctx.stop_requested, remote.actor))
        try:
            done: NodeFinished = await self._call(
                ws.task_id, remote.actor.finish.remote(ctx.force_push)
            )
        finally:
            stopper.cancel()
        await remote.attempt.drained(done.log_size, done.events)
        committed = done.committed
        if committed.commit is not None:
            c = committed.commit
            await ctx.record_result(
                ws,
                {
                    "head_commit": c.head,
                    "files_changed": c.files,
                    "insertions": c.insertions,
                    "deletions": c.deletions,
                },
            )
        if done.bundle is not None:
            try:
                await asyncio.to_thread(
                    _take_work, ws, remote.dependencies, done.bundle, ctx.force_push
                )
            except GitError as err:
                await report_step(ctx, "fetch", False, str(err))
                return FinishOutcome(False, str(err))
        elif committed.commit is not None:
            # Nothing new, but the branch exists here as it would locally (a later
            # `--phase` run looks for it).
            await asyncio.to_thread(_point_branch, ws, committed.commit.head)
        # Forecast and pull request run here, on the branch as it came back.
        local = replace(ctx, worktree=ws.repo)

        async def pushed() -> Pushed:
            return done.pushed

        return await deliver(local, committed, pushed)

    async def release(self, task_id: str) -> None:
        remote = self._remotes.pop(task_id, None)
        if remote is None:
            return
        if remote.attempt is not None:
            remote.attempt.stop_pump()
            await self._keep_uncommitted(task_id, remote)
        if remote.node is not None:  # an actor still waiting for room has nothing to clean
            with contextlib.suppress(*_LOST, RayTaskError, asyncio.TimeoutError):
                await asyncio.wait_for(_awaitable(remote.actor.close.remote()), 60)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(ray.kill, remote.actor)

    async def _keep_uncommitted(self, task_id: str, remote: _Remote) -> None:
        """Bring back what a stopped or failed attempt left uncommitted, for its next attempt.

        A local worktree keeps it for a retry; a node's worktree is about to go.
        """
        ws = remote.ws
        if ws is None:
            return
        with contextlib.suppress(MissionControlError, GitError, asyncio.TimeoutError):
            data = await asyncio.wait_for(
                self._call(task_id, remote.actor.keep_uncommitted.remote()), 60
            )
            if data is not None:
                await asyncio.to_thread(bundles.keep_wip, ws.repo, data, ws.branch)

    def diff(self, ws: Workstream, workspace: Workspace) -> str:
        head = repo.rev_parse(ws.repo, f"refs/heads/{ws.branch}")
        if head is None or repo.rev_parse(ws.repo, workspace.base_commit) is None:
            return (
                f"{ws.task_id} runs on {workspace.node}: its changes show here once its work"
                " comes back (after the commit)"
            )
        return diffs.diff_between(ws.repo, workspace.base_commit, head)

    # ------------------------------------------------------------- plumbing

    def _remote(self, task_id: str) -> _Remote:
        remote = self._remotes.get(task_id)
        if remote is None:
            raise AttemptLost(f"{task_id}: its actor is gone")
        return remote

    async def _call(self, task_id: str, ref: Any) -> Any:
        """Await a remote call; a lost actor becomes ``AttemptLost``, a node's error ours."""
        try:
            return await _awaitable(ref)
        except (*_LOST, RayTaskError) as err:
            raise self._ours(task_id, err) from None

    def call_blocking(self, task_id: str, ref: Any) -> Any:
        """``_call`` for a worker thread (pause and resume are blocking in the engine)."""
        try:
            return ray.get(ref, timeout=60)
        except GetTimeoutError:
            raise MissionControlError(
                f"{task_id}: its Ray actor did not answer within 60 s — is its node reachable?"
            ) from None
        except (*_LOST, RayTaskError) as err:
            raise self._ours(task_id, err) from None

    def _ours(self, task_id: str, err: Exception) -> MissionControlError:
        """A Ray error as one of ours: a lost actor, an actor that cannot start, a node's error."""
        if isinstance(err, RayTaskError):
            cause = getattr(err, "cause", None)
            if isinstance(cause, MissionControlError):
                return MissionControlError(str(cause))
            return MissionControlError(f"{task_id}: failed on its node: {_last_line(err)}")
        if "creation task" in str(err):
            # Not a lost node: the actor cannot start there (and never will).
            return MissionControlError(
                f"{task_id}: its Ray actor could not start: {_last_line(err)} — every node"
                " needs mission-control[ray] installed, the same version as here"
            )
        remote = self._remotes.get(task_id)
        node = remote.node if remote is not None and remote.node else "?"
        return AttemptLost(f"{task_id}: lost its Ray actor on node {node} ({_first_line(err)})")


class RayAttempt:
    """The engine's handle on an attempt running in an actor; its log streams in as it grows."""

    def __init__(
        self,
        backend: RayBackend,
        task_id: str,
        remote: _Remote,
        started: NodeStarted,
        log_path: Path,
        sink: AttemptSink,
        offset: int,
    ) -> None:
        self.pid = started.pid
        self.create_time = started.create_time
        self._backend = backend
        self._task_id = task_id
        self._actor = remote.actor
        self._log_path = log_path
        self._sink = sink
        self._paused = False
        self._position = offset
        """How far into the node's log this machine's copy goes."""
        self._events = 0
        self._progress = asyncio.Event()
        self._pump_ended = False
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mc-ray-log")
        self._pump = asyncio.ensure_future(self._run_pump())

    @property
    def paused(self) -> bool:
        return self._paused

    def set_paused(self, paused: bool) -> None:
        self._paused = paused

    async def wait(self) -> ExitStatus:
        ended: NodeEnded = await self._backend._call(self._task_id, self._actor.wait.remote())
        await self.drained(ended.log_size, None)
        return ended.status

    def pause(self) -> list[int]:
        pids: list[int] = self._backend.call_blocking(self._task_id, self._actor.pause.remote())
        self._paused = True
        return pids

    def resume(self) -> list[int]:
        pids: list[int] = self._backend.call_blocking(self._task_id, self._actor.resume.remote())
        self._paused = False
        return pids

    async def terminate(self, grace: float) -> TerminateResult:
        try:
            result: TerminateResult = await self._backend._call(
                self._task_id, self._actor.terminate.remote(grace)
            )
        except AttemptLost:
            return TerminateResult((), (), (), None)  # the actor and its tree are gone
        self._paused = False
        return result

    async def drained(self, log_size: int, events: int | None) -> None:
        """Wait until the local log holds ``log_size`` bytes and ``events`` events came."""
        while not self._pump_ended and (
            self._position < log_size or (events is not None and self._events < events)
        ):
            self._progress.clear()
            await self._progress.wait()

    def stop_pump(self) -> None:
        self._pump.cancel()
        self._writer.shutdown(wait=False)

    async def _run_pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for ref in self._actor.stream.remote(self._position):
                chunk: Chunk = await ref
                if chunk.data:
                    await loop.run_in_executor(self._writer, _append, self._log_path, chunk.data)
                    self._position = chunk.offset + len(chunk.data)
                for event in chunk.events:
                    self._sink.publish(event)
                self._events = chunk.events_total
                if chunk.sample is not None:
                    activity = LogActivity(chunk.log_size, None)
                    self._sink.on_sample({self._task_id: chunk.sample}, {self._task_id: activity})
                self._progress.set()
        except (*_LOST, RayTaskError):
            pass  # ``wait`` reports the loss
        finally:
            self._pump_ended = True
            self._progress.set()


@contextlib.contextmanager
def _real_std_streams() -> Iterator[None]:
    """Give Ray's start-up standard streams with file descriptors.

    Ray hands ``sys.stdout.fileno()`` to the processes it starts, and an app
    that captures output (Textual) replaces the streams with objects that have
    none. Ray's start-up chatter goes to /dev/null rather than onto the screen.
    """
    try:
        usable = sys.stdout.fileno() >= 0 and sys.stderr.fileno() >= 0
    except (AttributeError, OSError, ValueError):
        usable = False
    if usable:
        yield
        return
    with open(os.devnull, "w") as null:
        saved = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = null
        try:
            yield
        finally:
            sys.stdout, sys.stderr = saved


def _append(path: Path, data: bytes) -> None:
    append_private(path, data)


async def _awaitable(ref: Any) -> Any:
    return await ref


async def _forward_stop(stop: asyncio.Event, actor: Any) -> None:
    await stop.wait()
    with contextlib.suppress(*_LOST, RayTaskError):
        await _awaitable(actor.stop_finishing.remote())


def _branches_to_merge(ws: Workstream, dependencies: tuple[str, ...]) -> list[str]:
    """The dependencies a node must merge: not those whose work the base already holds.

    A dependency that succeeded without changes has a local branch at (an
    ancestor of) the remote's base and was never pushed; there is nothing of it
    to merge, and the node would not find it on the remote.
    """
    base = f"refs/remotes/{ws.remote}/{ws.base_branch}"
    if repo.rev_parse(ws.repo, base) is None:
        return list(dependencies)
    return [
        dep
        for dep in dependencies
        if not (
            repo.rev_parse(ws.repo, f"refs/heads/{dep}") is not None
            and repo.is_ancestor(ws.repo, f"refs/heads/{dep}", base)
        )
    ]


def _point_branch(ws: Workstream, head: str) -> None:
    """Make the local branch for work that changed nothing (blocking)."""
    if repo.rev_parse(ws.repo, head) is None and repo.has_remote(ws.repo, ws.remote):
        bundles.fetch_commits(ws.repo, ws.remote, [ws.base_branch])
    if repo.rev_parse(ws.repo, head) is None or repo.branch_exists(ws.repo, ws.branch):
        return  # a merge made on the node, or a branch kept from before: leave it
    repo.run_git(["branch", ws.branch, head], ws.repo, what=f"creating {ws.branch}")


def _take_work(ws: Workstream, dependencies: tuple[str, ...], data: bytes, force: bool) -> None:
    """Put the branch that came back on the local branch (blocking)."""
    if repo.has_remote(ws.repo, ws.remote):
        # The bundle leaves out what the remote's base and dependencies hold.
        bundles.fetch_commits(ws.repo, ws.remote, [ws.base_branch, *dependencies])
    bundles.import_branch(ws.repo, data, ws.branch, force=force)


def _kill_named(name: str) -> None:
    """Kill the actor called ``name`` if there is one, and wait until the name is free."""
    try:
        ray.kill(ray.get_actor(name, namespace=NAMESPACE))
    except ValueError:
        return  # none: the usual case
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # rare (after a crash), and bounded
        try:
            ray.get_actor(name, namespace=NAMESPACE)
        except ValueError:
            return
        time.sleep(0.1)


def _remote_urls(plan: Plan, workstreams: list[Workstream]) -> dict[tuple[Path, str], str]:
    """The URL each repository's remote has, as the nodes will clone it (blocking).

    Also refuses what would fail only after a node did its work: a merged
    dependency that never pushes, and a branch checked out in a worktree here
    (the work that comes back could not be put on it).
    """
    urls: dict[tuple[Path, str], str] = {}
    in_run = {ws.task_id for ws in workstreams}
    checked_out: dict[Path, dict[str, Path]] = {}
    for ws in workstreams:
        if ws.repo not in checked_out:
            checked_out[ws.repo] = {
                e.branch.removeprefix("refs/heads/"): e.path
                for e in list_worktrees(ws.repo)
                if e.branch
            }
        where = checked_out[ws.repo].get(ws.branch)
        if where is not None:
            raise SetupError(
                f"{ws.task_id}: {ws.branch} is checked out in {where}, and the work made on the"
                " cluster comes back onto that branch — remove the worktree (`mission-control"
                " clean`, or `git worktree remove`) or run with --backend local"
            )
        key = (ws.repo, ws.remote)
        if key not in urls:
            out = repo.run_git(["remote", "get-url", ws.remote], ws.repo, check=False)
            url = out.stdout.strip()
            if out.returncode != 0 or not url:
                raise SetupError(
                    f"{ws.task_id}: {ws.repo} has no remote '{ws.remote}', and the ray backend's"
                    f" nodes clone from it — add one (`git -C {ws.repo} remote add {ws.remote}"
                    " URL`) or run with --backend local"
                )
            urls[key] = _absolute(url, ws.repo)
        for dep in ws.depends_on:
            other = plan.workstream(dep)
            if other.task_id in in_run and not other.push and ws.base.value == "deps":
                raise SetupError(
                    f"{ws.task_id} merges {dep}, which has push: false; with the ray backend"
                    f" dependencies reach the nodes through '{other.remote}' — set push: true"
                    f" on {dep}, or `base: branch` on {ws.task_id}"
                )
    return urls


def _absolute(url: str, base: Path) -> str:
    """A remote given as a relative path means the same folder from anywhere."""
    if "://" in url or (":" in url and not url.startswith((".", "/"))):
        return url
    return os.path.abspath(base / url)


def _check_fits(workstreams: list[Workstream]) -> None:
    """Refuse a workstream that no node of the cluster could ever run (it would wait forever)."""
    alive = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    nodes = [n.get("Resources", {}) for n in alive]
    for ws in workstreams:
        res = ws.resources
        needs: dict[str, float] = {"CPU": res.cpus, **res.custom}
        if res.memory_bytes is not None:
            needs["memory"] = float(res.memory_bytes)
        if not any(all(node.get(k, 0.0) >= v for k, v in needs.items()) for node in nodes):
            wanted = ", ".join(f"{k} {v:g}" for k, v in needs.items())
            raise SetupError(
                f"{ws.task_id} needs {wanted}, which no node of the Ray cluster has"
                " — lower `resources:` in the plan, or add such a node"
            )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _last_line(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(err).__name__


__all__ = ["NAMESPACE", "RayAttempt", "RayBackend"]
