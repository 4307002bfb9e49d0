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
from .repo import (
    git_path,
    is_ancestor,
    repo_lock,
    rev_parse,
    run_git,
    trim_message,
)
from .worktrees import base_ref, list_worktrees


@dataclass(frozen=True, slots=True)
class Seed:
    """Where a branch stands on the driver: its head, its base, and commits the remote lacks."""

    commit: str
    base: str | None
    bundle: bytes | None


def bundle_bytes(repo: Path, tip: str, exclude: list[str]) -> bytes | None:
    """A bundle of ``tip``'s commits not reachable from ``exclude``; None when there are none."""
    fd, name = tempfile.mkstemp(prefix="mc-", suffix=".bundle")
    os.close(fd)
    try:
        out = run_git(["bundle", "create", "--quiet", name, tip, *exclude], repo, check=False)
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
    if commit is None:
        return None
    base = rev_parse(repo, base_ref(branch))
    if base is not None and not is_ancestor(repo, base, commit):
        base = None
    data = bundle_bytes(repo, f"refs/heads/{branch}", ["--not", f"--remotes={remote}"])
    return Seed(commit, base, data)


def import_branch(repo: Path, data: bytes, branch: str, *, force: bool) -> str | None:
    """Set local ``branch`` to the bundle's copy; returns the head it had (None if new).

    Only a fast-forward unless ``force`` (a fresh retry rewrote the branch on
    purpose). A branch checked out in a worktree here is never moved under it.
    """
    for entry in list_worktrees(repo):
        if entry.branch == branch:
            raise GitError(
                f"{repo}: {branch} is checked out in {entry.path}, so the work made on the"
                f" cluster cannot be put on it — remove that worktree (`mission-control clean`),"
                " then retry"
            )
    old = rev_parse(repo, f"refs/heads/{branch}")
    folder = git_path(repo, "mission-control")
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="incoming-", suffix=".bundle", dir=folder)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    try:
        spec = f"{'+' if force else ''}refs/heads/{branch}:refs/heads/{branch}"
        with repo_lock(repo):
            out = run_git(["fetch", "--quiet", "--no-tags", name, spec], repo, check=False)
        if out.returncode != 0:
            raise GitError(
                f"{repo}: taking the work for {branch} from the cluster failed:"
                f" {trim_message(out.stderr)} — if it was pushed, fetch the remote's copy"
                f" (`git fetch REMOTE {branch}:{branch}`); else retry the workstream"
            )
    finally:
        os.unlink(name)
    return old


def fetch_commits(repo: Path, remote: str, branches: list[str]) -> None:
    """Fetch the remote's ``branches`` (a bundle's prerequisites) into remote-tracking refs."""
    specs = [f"+refs/heads/{b}:refs/remotes/{remote}/{b}" for b in branches]
    run_git(
        ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, *specs],
        repo,
        check=False,
    )


__all__ = ["Seed", "bundle_bytes", "fetch_commits", "import_branch", "seed_for_branch"]
