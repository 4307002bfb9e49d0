"""Moving a branch's commits between machines as git bundles (bytes), not through a remote.

The driver sends a node the commits of a branch that the remote lacks (a
retry continues from them) and the node sends back what an attempt committed,
pushed or not: work that failed a check is never pushed, yet must not stay
behind on a node that will forget it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import GitError
from .mirrors import WIP_REF
from .remotes import remote_env
from .repo import git_path, is_ancestor, repo_lock, rev_parse, run_git, trim_message
from .worktree_list import base_ref, list_worktrees


@dataclass(frozen=True, slots=True)
class Seed:
    """Where a branch stands on the driver: its head, its base, and commits the remote lacks."""

    commit: str | None
    """None when only kept uncommitted work exists (the branch was never made here)."""
    base: str | None
    bundle: bytes | None
    wip: str | None = None
    """A kept commit of an earlier attempt's uncommitted work (``mirrors.WIP_REF``)."""


def bundle_bytes(repo: Path, tip: str | list[str], exclude: list[str]) -> bytes | None:
    """A bundle of the tips' commits not reachable from ``exclude``; None when there are none."""
    tips = [tip] if isinstance(tip, str) else tip
    fd, name = tempfile.mkstemp(prefix="mc-", suffix=".bundle")
    os.close(fd)
    try:
        out = run_git(["bundle", "create", "--quiet", name, *tips, *exclude], repo, check=False)
        if out.returncode != 0:
            if "empty bundle" in out.stderr:
                return None
            raise GitError(f"{repo}: bundling {tip} failed: {trim_message(out.stderr)}")
        return Path(name).read_bytes()
    finally:
        os.unlink(name)


def seed_for_branch(repo: Path, branch: str, remote: str) -> Seed | None:
    """The driver's copy of ``branch`` for a node to continue from; None if there is none."""
    commit = rev_parse(repo, f"refs/heads/{branch}")
    wip = rev_parse(repo, f"{WIP_REF}{branch}")
    if commit is None and wip is None:
        return None
    base = rev_parse(repo, base_ref(branch)) if commit else None
    if base is not None and commit is not None and not is_ancestor(repo, base, commit):
        base = None
    tips = [f"refs/heads/{branch}"] if commit else []
    tips += [f"{WIP_REF}{branch}"] if wip else []
    data = bundle_bytes(repo, tips, ["--not", f"--remotes={remote}"])
    return Seed(commit, base, data, wip)


def keep_wip(repo: Path, data: bytes, branch: str) -> None:
    """Store an attempt's kept uncommitted work here, for the next attempt (blocking)."""
    _fetch_bundle(repo, data, f"+{WIP_REF}{branch}:{WIP_REF}{branch}", f"work kept for {branch}")


def drop_wip(repo: Path, branch: str) -> None:
    """Forget kept uncommitted work (taken back by an attempt, or a fresh retry)."""
    run_git(["update-ref", "-d", f"{WIP_REF}{branch}"], repo, check=False)


def import_branch(repo: Path, data: bytes, branch: str, *, force: bool) -> str | None:
    """Set local ``branch`` to the bundle's copy; returns the head it had (None if new).

    Only a fast-forward unless ``force`` (a fresh retry rewrote the branch on
    purpose). A branch checked out in a worktree here is never moved under it.
    """
    for entry in list_worktrees(repo):
        if entry.branch == f"refs/heads/{branch}":
            raise GitError(
                f"{repo}: {branch} is checked out in {entry.path}, so the work made on the"
                f" cluster cannot be put on it — remove that worktree (`mission-control clean`),"
                " then retry"
            )
    old = rev_parse(repo, f"refs/heads/{branch}")
    spec = f"{'+' if force else ''}refs/heads/{branch}:refs/heads/{branch}"
    _fetch_bundle(repo, data, spec, f"the work for {branch}")
    return old


def _fetch_bundle(repo: Path, data: bytes, spec: str, what: str) -> None:
    folder = git_path(repo, "mission-control")
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="incoming-", suffix=".bundle", dir=folder)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    try:
        with repo_lock(repo):
            out = run_git(["fetch", "--quiet", "--no-tags", name, spec], repo, check=False)
        if out.returncode != 0:
            raise GitError(
                f"{repo}: taking {what} from the cluster failed: {trim_message(out.stderr)}"
                " — if it was pushed, fetch the remote's copy; else retry the workstream"
            )
    finally:
        os.unlink(name)


def note_pushed(repo: Path, remote: str, branch: str, commit: str) -> None:
    """Record here that ``remote`` has ``branch`` at ``commit`` (another machine pushed it).

    ``clean --branches`` and ``git status`` judge a branch by this
    remote-tracking ref; the commit must be here already (the work came back).
    """
    if rev_parse(repo, commit) is None:
        return
    run_git(
        ["update-ref", f"refs/remotes/{remote}/{branch}", commit],
        repo,
        check=False,  # a stale tracking ref is no reason to fail the work
    )


def fetch_commits(repo: Path, remote: str, branches: list[str]) -> None:
    """Fetch the remote's ``branches`` (a bundle's prerequisites) into remote-tracking refs."""
    specs = [f"+refs/heads/{b}:refs/remotes/{remote}/{b}" for b in branches]
    run_git(
        ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, *specs],
        repo,
        check=False,
        env=remote_env(repo, remote),
    )


__all__ = [
    "Seed",
    "bundle_bytes",
    "fetch_commits",
    "import_branch",
    "note_pushed",
    "seed_for_branch",
]
