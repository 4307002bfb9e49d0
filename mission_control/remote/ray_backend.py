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
abandoned run does not hold the cluster forever. Its work stays on the node:
``resume`` starts an actor on that node (it needs no CPU) that takes the
attempt up from there: a tool that had finished is finished, not run again;
a stopped one gives its uncommitted work back and starts again with it. Which
node that is, a small file beside the attempt's local log says
(``attempt-N.node``), until the attempt's actor is let go of.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

# Under `uv run`, Ray would otherwise copy the current folder (the user's project) to
# the cluster and rebuild its environment on every node; the nodes run their own
# installed mission-control instead.
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

import ray
from ray.exceptions import GetTimeoutError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from .. import crashpoints
from ..engine.backend import (
    Adoption,
    AttemptLost,
    AttemptRequest,
    AttemptSink,
    BackendOptions,
    LeftBehind,
    Prepared,
    Started,
    StillRunning,
    Workspace,
    register_backend,
)
from ..engine.finish import (
    FinishItem,
    FinishOutcome,
    FinishRequest,
    HeadCommitted,
    already_pushed,
    deliver,
    report_step,
)
from ..engine.tools import RenderedCommand, read_prompt
from ..errors import GitError, MissionControlError, SetupError
from ..git import bundles, diffs, remotes, repo
from ..git.untracked_pack import pack_untracked
from ..plan.model import Plan, Price, Workstream
from ..store.logs import file_size
from ..store.private import write_private_text
from .node import NodeAttempt
from .protocol import (
    NodeFinished,
    NodePrepared,
    NodeSpec,
    NodeStarted,
    NodeStatus,
)
from .ray_attempt import LOST as _LOST
from .ray_attempt import RayAttempt
from .ray_attempt import awaitable as _awaitable
from .ray_cluster import NAMESPACE, check_fits, kill_named, real_std_streams, remote_urls

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
    log_path: Path | None = None
    """The attempt's local log: its node file sits beside it."""


class RayBackend:
    """Runs attempts as Ray actors; see the module docstring."""

    name = "ray"

    def __init__(self, address: str = "auto") -> None:
        self.address = address
        self._sink: AttemptSink | None = None
        self._remotes: dict[str, _Remote] = {}
        self._urls: dict[tuple[Path, str], str] = {}
        self._started_ray = False
        self._actor_class: Any = None
        self._orphan_seconds = 3600.0
        self._pricing: dict[str, Price] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def open(self, plan: Plan, workstreams: list[Workstream], sink: AttemptSink) -> None:
        self._sink = sink
        self._pricing = dict(plan.pricing)
        self._urls = await asyncio.to_thread(remote_urls, plan, workstreams)
        await asyncio.to_thread(self._connect)
        await asyncio.to_thread(check_fits, workstreams)
        self._orphan_seconds = orphan_seconds()
        self._actor_class = ray.remote(max_restarts=0, max_task_retries=0)(NodeAttempt)
        if self._heartbeat is not None:
            self._heartbeat.cancel()  # opened before, maybe on another loop (``connect``)
        self._heartbeat = asyncio.ensure_future(self._beat())

    async def _beat(self) -> None:
        """Tell every actor, now and then, that a mission-control still watches it."""
        interval = max(1.0, self._orphan_seconds / 6)
        while True:
            await asyncio.sleep(interval)
            for remote in list(self._remotes.values()):
                remote.actor.touch.remote()  # fire and forget: a lost actor shows elsewhere

    def _connect(self) -> None:
        """Reach the cluster (blocking). Opened before a view takes the screen: Ray's
        own messages while it tries go straight to the terminal."""
        if ray.is_initialized():
            return
        quiet: dict[str, Any] = {
            "namespace": NAMESPACE,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
        }
        try:
            with real_std_streams():
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

    async def prepare(self, request: AttemptRequest) -> Prepared:
        ws = request.ws
        await self.release(ws.task_id)  # an earlier attempt's actor, if any
        seed = None
        if request.fresh:
            await asyncio.to_thread(bundles.drop_wip, ws.repo, ws.branch)
        else:
            seed = await asyncio.to_thread(bundles.seed_for_branch, ws.repo, ws.branch, ws.remote)
        prompt = await asyncio.to_thread(read_prompt, ws)
        deps = tuple(await asyncio.to_thread(_branches_to_merge, ws, request.dependencies))
        # The node cannot see the checkout: the untracked files it needs go with it.
        packed = await asyncio.to_thread(pack_untracked, ws.repo, ws.copy_files, ws.task_id)
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
            follow_up=request.follow_up,
            spent_before=request.spent_before,
            pricing=self._pricing,
            ports=request.ports,
            files=packed.data if packed is not None else None,
            files_paths=packed.paths if packed is not None else (),
            files_notes=packed.notes if packed is not None else (),
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
        await asyncio.to_thread(kill_named, options["name"])
        # Registering a named actor is a synchronous call to the cluster (and pickles the
        # seed bundle): off the loop.
        actor = await asyncio.to_thread(lambda: self._actor_class.options(**options).remote(spec))
        remote = _Remote(actor, dependencies=deps, ws=ws, log_path=request.log_path)
        self._remotes[ws.task_id] = remote
        # The actor may wait for room on the cluster: a kill must not wait with it.
        call = asyncio.ensure_future(self.call(ws.task_id, actor.prepare.remote()))
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
        await asyncio.to_thread(write_private_text, node_file(request.log_path), prepared.node_id)
        if prepared.wip_applied:  # the work is in the new worktree now
            await asyncio.to_thread(bundles.drop_wip, ws.repo, ws.branch)
        command: RenderedCommand = await self.call(ws.task_id, actor.render.remote())
        workspace = Workspace(prepared.path, ws.branch, prepared.base_commit, node=prepared.node)
        return Prepared(workspace, command)

    async def adopt(self, request: AttemptRequest, left: LeftBehind) -> Adoption | None:
        """Find the attempt's actor by name, or take the attempt up from what its node kept;
        None when neither is there (it starts again). Also for an attempt that ended: its
        actor may still hold a node (let go of), or its work (finished through it)."""
        ws = request.ws
        name = actor_name(request.run_id, ws.task_id, request.attempt)
        try:
            actor = await asyncio.to_thread(ray.get_actor, name, NAMESPACE)
        except ValueError:
            actor = await asyncio.to_thread(self._reopen_actor, request)
            if actor is None:
                return None
            describe: Any = actor.reopen
        else:
            describe = actor.describe
        remote = _Remote(actor, ws=ws, log_path=request.log_path)
        self._remotes[ws.task_id] = remote
        try:  # bounded: an actor pinned to a node that just went would wait for it forever
            status: NodeStatus | None = await asyncio.wait_for(
                self.call(ws.task_id, describe.remote()), 120
            )
        except (TimeoutError, AttemptLost, MissionControlError):
            status = None
        if status is None:  # nothing left of it on the node
            remote.node = "?"
            await self.release(ws.task_id)
            return None
        remote.node = status.node
        remote.dependencies = status.dependencies
        # The local log may also hold lines this machine wrote while finishing.
        offset = min(await asyncio.to_thread(file_size, request.log_path), status.log_size)
        started = NodeStarted(status.pid, status.create_time)
        lost = None
        if status.stopped:
            lost = (
                f"{ws.task_id}: stopped on node {status.node} with no mission-control watching"
                " (its uncommitted work is kept for the next attempt)"
            )
        handle = RayAttempt(
            self,
            ws.task_id,
            remote.actor,
            started,
            request.log_path,
            self._sink_(),
            offset,
            lost=lost,
        )
        handle.set_paused(status.paused)
        remote.attempt = handle
        return StillRunning(handle)

    def _reopen_actor(self, request: AttemptRequest) -> Any:
        """An actor on the node that kept the attempt's leftovers (blocking); None if none.

        It asks for no CPU: it only finishes or gives back work already done,
        and must not wait behind the run's own attempts for room.
        """
        try:
            node_id = node_file(request.log_path).read_text(encoding="utf-8").strip()
        except OSError:
            return None
        alive = {n.get("NodeID") for n in ray.nodes() if n.get("Alive")}  # type: ignore[no-untyped-call]
        if not node_id or node_id not in alive:
            return None
        ws = request.ws
        spec = NodeSpec(
            run_id=request.run_id,
            attempt=request.attempt,
            ws=ws,
            tool=request.tool,
            remote_url=self._urls[(ws.repo, ws.remote)],
            dependencies=(),
            prompt_text=None,
            grace_seconds=request.grace_seconds,
            orphan_seconds=self._orphan_seconds,
        )
        return self._actor_class.options(
            num_cpus=0,
            name=actor_name(request.run_id, ws.task_id, request.attempt),
            namespace=NAMESPACE,
            lifetime="detached",
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(spec)

    async def start(self, request: AttemptRequest, prepared: Prepared) -> Started:
        task_id = request.ws.task_id
        remote = self._remote(task_id)
        started: NodeStarted = await self.call(task_id, remote.actor.start.remote(prepared.command))
        attempt = RayAttempt(
            self, task_id, remote.actor, started, request.log_path, self._sink_(), 0
        )
        remote.attempt = attempt
        return Started(attempt, None)  # its pid is the node's, not this machine's

    async def finish(self, request: FinishRequest) -> AsyncIterator[FinishItem]:
        ws = request.ws
        remote = self._remotes.get(ws.task_id)
        if remote is None or remote.attempt is None:
            raise AttemptLost(
                f"{ws.task_id}: its worktree was on a node of the last mission-control's"
                " cluster session"
            )
        stopper = asyncio.ensure_future(_forward_stop(request.stop, remote.actor))
        try:
            done: NodeFinished = await self.call(
                ws.task_id, remote.actor.finish.remote(request.force_push)
            )
        finally:
            stopper.cancel()
        crashpoints.reach("remote.finished")
        await remote.attempt.drained(done.log_size, done.events)
        committed = done.committed
        if committed.commit is not None:
            yield HeadCommitted.of(committed.commit)
        if done.bundle is not None:
            try:
                await asyncio.to_thread(
                    _take_work, ws, remote.dependencies, done.bundle, request.force_push
                )
            except GitError as err:
                yield await report_step(request, "fetch", False, str(err))
                yield FinishOutcome(False, str(err))
                return
        elif committed.commit is not None:
            # Nothing new, but the branch exists here as it would locally (a later
            # `--phase` run looks for it).
            await asyncio.to_thread(_point_branch, ws, committed.commit.head)
        if done.pushed.pushed and committed.commit is not None:
            # The node pushed: this repository's copy of the remote's branch says so too.
            await asyncio.to_thread(
                bundles.note_pushed, ws.repo, ws.remote, ws.branch, committed.commit.head
            )
        crashpoints.reach("remote.work_returned")
        # Forecast and pull request run here, on the branch as it came back.
        local = replace(request, worktree=ws.repo)
        async for item in deliver(local, committed, already_pushed(done.pushed)):
            yield item

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
                if remote.log_path is not None:  # nothing of it is left on the node
                    await asyncio.to_thread(_unlink, node_file(remote.log_path))
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
                self.call(task_id, remote.actor.keep_uncommitted.remote()), 60
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

    def _sink_(self) -> AttemptSink:
        if self._sink is None:
            raise MissionControlError("the ray backend was not opened")
        return self._sink

    def _remote(self, task_id: str) -> _Remote:
        remote = self._remotes.get(task_id)
        if remote is None:
            raise AttemptLost(f"{task_id}: its actor is gone")
        return remote

    async def call(self, task_id: str, ref: Any) -> Any:
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


def node_file(log_path: Path) -> Path:
    """Beside an attempt's local log: the id of the node that ran it (``attempt-N.node``)."""
    return log_path.with_suffix(".node")


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


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
    if repo.rev_parse(ws.repo, head) is None and remotes.has_remote(ws.repo, ws.remote):
        bundles.fetch_commits(ws.repo, ws.remote, [ws.base_branch])
    if repo.rev_parse(ws.repo, head) is None or repo.branch_exists(ws.repo, ws.branch):
        return  # a merge made on the node, or a branch kept from before: leave it
    repo.run_git(["branch", ws.branch, head], ws.repo, what=f"creating {ws.branch}")


def _take_work(ws: Workstream, dependencies: tuple[str, ...], data: bytes, force: bool) -> None:
    """Put the branch that came back on the local branch (blocking)."""
    if remotes.has_remote(ws.repo, ws.remote):
        # The bundle leaves out what the remote's base and dependencies hold.
        bundles.fetch_commits(ws.repo, ws.remote, [ws.base_branch, *dependencies])
    bundles.import_branch(ws.repo, data, ws.branch, force=force)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _last_line(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(err).__name__


def _make(options: BackendOptions) -> RayBackend:
    return RayBackend(options.ray_address or "auto")


register_backend("ray", _make)

__all__ = ["NAMESPACE", "RayAttempt", "RayBackend"]
