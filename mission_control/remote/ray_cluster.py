"""Reaching a Ray cluster and checking, before anything starts, that the run fits it.

Everything here is blocking (Ray's client calls, git): the backend calls it
from worker threads. A run the cluster could never serve is refused with the
fix, rather than left waiting: a workstream no node has room for, a remote the
nodes cannot clone, a branch this machine could not take the work back onto.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import ray

from ..errors import SetupError
from ..git import repo
from ..git.worktrees import list_worktrees
from ..plan.model import Plan, Workstream

NAMESPACE = "mission-control"


@contextlib.contextmanager
def real_std_streams() -> Iterator[None]:
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


def kill_named(name: str) -> None:
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


def refuse_local_only(ws: Workstream) -> None:
    """Links into this machine's checkout and ``from:`` are not done on a node yet: refuse
    them before anything runs rather than run an agent in a worktree they did not set up."""
    settings = {
        "link": ws.link_files,
        "from": ws.start_from,
    }
    named = [f"`{key}:`" for key, value in settings.items() if value]
    if named:
        raise SetupError(
            f"{ws.task_id}: {', '.join(named)} work only with the local backend for now:"
            " run with --backend local, or leave them out of the plan for a Ray run"
        )


def remote_urls(plan: Plan, workstreams: list[Workstream]) -> dict[tuple[Path, str], str]:
    """The URL each repository's remote has, as the nodes will clone it (blocking).

    Also refuses what would fail only after a node did its work: a merged
    dependency that never pushes, and a branch checked out in a worktree here
    (the work that comes back could not be put on it).
    """
    urls: dict[tuple[Path, str], str] = {}
    in_run = {ws.task_id for ws in workstreams}
    checked_out: dict[Path, dict[str, Path]] = {}
    for ws in workstreams:
        refuse_local_only(ws)
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
            urls[key] = absolute_url(url, ws.repo)
        for dep in ws.depends_on:
            other = plan.workstream(dep)
            if other.task_id in in_run and not other.push and ws.base.value != "branch":
                raise SetupError(
                    f"{ws.task_id} merges {dep}, which has push: false; with the ray backend"
                    f" dependencies reach the nodes through '{other.remote}' — set push: true"
                    f" on {dep}, or `base: branch` on {ws.task_id}"
                )
    return urls


def absolute_url(url: str, base: Path) -> str:
    """A remote given as a relative path means the same folder from anywhere."""
    if "://" in url or (":" in url and not url.startswith((".", "/"))):
        return url
    return os.path.abspath(base / url)


def check_fits(workstreams: list[Workstream]) -> None:
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


__all__ = [
    "NAMESPACE",
    "absolute_url",
    "check_fits",
    "kill_named",
    "real_std_streams",
    "remote_urls",
]
