"""Workspaces on a machine that cannot see the user's folder: a cached mirror plus a worktree.

A cluster node clones a repository from its remote once into a bare mirror
(``<cache>/<hash>.git``) and refreshes it with one fetch per attempt; each
attempt then gets a linked worktree of that mirror, so the usual commit and
push code (which only ever changes linked worktrees) works unchanged. Many
attempts on one node share a mirror: a file lock serialises fetches and
worktree bookkeeping across processes.

The work a driver already holds for the branch (a retry's earlier commits)
arrives as a git bundle and the branch continues from it; dependencies come
from the remote's copies of their branches.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import GitError
from .identity import identity_config
from .merges import merge_dependencies
from .repo import (
    NETWORK_TIMEOUT,
    head_commit,
    is_dirty,
    rev_parse,
    run_git,
    trim_message,
)

REMOTE = "origin"
_SEED_REF = "refs/mission-control/seed/"
WIP_REF = "refs/mission-control/wip/"
"""Where an attempt's uncommitted work is kept (as a commit) when its node worktree goes."""


@dataclass(frozen=True, slots=True)
class NodeWorktree:
    path: Path
    branch: str
    base_commit: str
    start_point: str
    merged: tuple[str, ...]
    wip_applied: bool = False


def mirror_path(cache: Path, url: str) -> Path:
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache / f"{digest}.git"


@contextlib.contextmanager
def _locked(mirror: Path) -> Iterator[None]:
    mirror.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{mirror}.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def refresh_mirror(cache: Path, url: str) -> Path:
    """The mirror of ``url`` in ``cache``, created or fetched now (every branch, pruned)."""
    mirror = mirror_path(cache, url)
    with _locked(mirror):
        if not (mirror / "HEAD").is_file():
            _create_mirror(mirror, url)
        out = run_git(
            [
                "fetch",
                "--quiet",
                "--prune",
                "--no-tags",
                "--no-write-fetch-head",
                REMOTE,
                f"+refs/heads/*:refs/remotes/{REMOTE}/*",
            ],
            mirror,
            check=False,
            timeout=NETWORK_TIMEOUT,
        )
        if out.returncode != 0:
            raise GitError(
                f"fetching {url} failed on this node: {trim_message(out.stderr)}"
                " — the nodes need git and read access to the remote (keys, tokens)"
            )
    return mirror


def _create_mirror(mirror: Path, url: str) -> None:
    # Made in a temporary folder and renamed: a node that dies half-way leaves no
    # broken mirror behind for the next attempt.
    tmp = Path(tempfile.mkdtemp(prefix=mirror.name + ".", dir=mirror.parent))
    try:
        run_git(["init", "--quiet", "--bare", str(tmp)], mirror.parent, what="creating a mirror")
        run_git(["remote", "add", REMOTE, url], tmp, what="adding the remote")
        if mirror.exists():
            shutil.rmtree(mirror)
        os.rename(tmp, mirror)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def prepare_node_worktree(
    mirror: Path,
    path: Path,
    *,
    branch: str,
    base_branch: str,
    dependencies: list[str],
    seed_commit: str | None = None,
    seed_base: str | None = None,
    seed_bundle: Path | None = None,
    wip_commit: str | None = None,
) -> NodeWorktree:
    """Make a fresh worktree at ``path`` on ``branch`` and merge the dependencies in.

    The branch starts at ``seed_commit`` (the driver's copy of the branch; its
    commits that the remote lacks come in ``seed_bundle``) or else at the
    remote's ``base_branch``. Dependencies are the remote's copies of their
    branches. The base commit is ``seed_base`` for a seeded branch, else where
    the branch stands after the merges. ``wip_commit`` (kept from an earlier
    attempt's uncommitted work, in the bundle too) is put back as uncommitted
    changes; ``NodeWorktree.wip_applied`` says whether it went in cleanly.
    """
    with _locked(mirror):
        _drop_stale(mirror, branch, path)
        if seed_bundle is not None:
            specs = [f"+refs/heads/{branch}:{_SEED_REF}{branch}"] if seed_commit else []
            if wip_commit is not None:
                specs.append(f"+{WIP_REF}{branch}:{WIP_REF}{branch}")
            run_git(
                ["fetch", "--quiet", str(seed_bundle), *specs],
                mirror,
                what=f"reading the work sent for {branch}",
                fix="retry fresh to start the branch again from its base",
            )
        if seed_commit is not None:
            start = seed_commit
            if rev_parse(mirror, start) is None:
                raise GitError(
                    f"{branch}: commit {start[:12]} is neither on the remote nor in the work sent"
                    " — push the base branch, or retry fresh"
                )
        else:
            start = f"refs/remotes/{REMOTE}/{base_branch}"
            if rev_parse(mirror, start) is None:
                raise GitError(
                    f"the remote has no branch {base_branch} — push it, or fix `base_branch:`"
                )
        path.parent.mkdir(parents=True, exist_ok=True)
        run_git(
            ["worktree", "add", "--quiet", "--no-track", "-B", branch, str(path), start],
            mirror,
            what=f"creating the worktree of {branch}",
        )
    head = head_commit(path)
    missing = [d for d in dependencies if rev_parse(mirror, f"refs/remotes/{REMOTE}/{d}") is None]
    if missing:
        raise GitError(
            f"dependency branch {missing[0]} is not on the remote — the ray backend merges"
            " dependencies from the remote: let them push (push: true)"
        )
    merged = merge_dependencies(
        path, branch, dependencies, before=head, ref_prefix=f"refs/remotes/{REMOTE}/"
    )
    base = seed_base if seed_commit is not None and seed_base else head_commit(path)
    applied = wip_commit is not None and apply_uncommitted(path, wip_commit)
    return NodeWorktree(path, branch, base, start, tuple(merged), applied)


def save_uncommitted(path: Path, branch: str) -> str | None:
    """Keep the worktree's uncommitted changes as a commit at ``WIP_REF``; None if clean.

    Only for a worktree about to be removed: HEAD is detached first, so the
    branch itself does not move.
    """
    if not is_dirty(path):
        return None
    run_git(["checkout", "--quiet", "--detach"], path, what="detaching HEAD")
    run_git(["add", "--all"], path, what="staging the uncommitted work")
    run_git(
        ["commit", "--quiet", "--no-verify", "-m", f"Uncommitted work on {branch}"],
        path,
        config=identity_config(path),
        what="keeping the uncommitted work",
    )
    head = head_commit(path)
    run_git(["update-ref", f"{WIP_REF}{branch}", head], path, what="recording the work")
    return head


def apply_uncommitted(path: Path, commit: str) -> bool:
    """Put a kept commit's changes back as uncommitted changes; False if they conflict."""
    out = run_git(
        ["cherry-pick", "--no-commit", "--allow-empty", commit],
        path,
        check=False,
        config=identity_config(path),
    )
    if out.returncode != 0:
        run_git(["cherry-pick", "--abort"], path, check=False)
        run_git(["reset", "--hard", "--quiet", "HEAD"], path, check=False)
        return False
    run_git(["reset", "--quiet"], path, what="unstaging the work taken back")
    return True


def _drop_stale(mirror: Path, branch: str, path: Path) -> None:
    """Forget worktrees an earlier attempt left (a killed node process never cleaned up)."""
    run_git(["worktree", "prune"], mirror, check=False)
    listing = run_git(["worktree", "list", "--porcelain"], mirror, check=False).stdout
    current: str | None = None
    for line in listing.splitlines():
        if line.startswith("worktree "):
            current = line.removeprefix("worktree ")
        elif line == f"branch refs/heads/{branch}" and current is not None:
            run_git(["worktree", "remove", "--force", current], mirror, check=False)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
        run_git(["worktree", "prune"], mirror, check=False)


def remove_node_worktree(mirror: Path, path: Path) -> None:
    """Remove an attempt's worktree (its work is pushed or sent back by then)."""
    with _locked(mirror):
        run_git(["worktree", "remove", "--force", str(path)], mirror, check=False)
        shutil.rmtree(path, ignore_errors=True)
        run_git(["worktree", "prune"], mirror, check=False)


__all__ = [
    "NodeWorktree",
    "mirror_path",
    "prepare_node_worktree",
    "refresh_mirror",
    "remove_node_worktree",
]
