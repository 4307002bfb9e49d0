"""Starting again: a worktree reset to its base, a branch put back for a new run.

Nothing an earlier run made is lost: an old tip is kept under
``refs/mission-control/old/`` before its branch moves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..plan.model import Workstream
from .errors import WorktreePathError
from .identity import identity_config
from .locks import settle_worktree
from .prepare import start_point_for
from .repo import (
    current_branch,
    is_dirty,
    open_repo,
    ref_exists,
    repo_lock,
    require_linked_worktree,
    rev_parse,
    run_git,
    worktree_file,
)
from .worktree_list import WorktreeEntry, base_ref, list_worktrees, same_path

# ---------------------------------------------------------------- retry fresh


def reset_worktree(path: Path, base_commit: str, branch: str | None = None) -> None:
    """Put the worktree back at ``base_commit``: discard every change and new file.

    Only a linked worktree is ever reset. With ``branch``, a tool that switched
    branches or detached HEAD is first put back on the workstream's branch, so
    the reset moves that branch and nothing else.
    """
    path = Path(path)
    require_linked_worktree(path, "a reset")
    settle_worktree(path)
    if branch is not None and current_branch(path) != branch:
        run_git(
            ["checkout", "--force", "--quiet", branch],
            path,
            what=f"switching back to {branch}",
            fix=f"check that branch {branch} exists",
        )
    if worktree_file(path, "rebase-merge").exists() or worktree_file(path, "rebase-apply").exists():
        run_git(["rebase", "--quit"], path, check=False)
    run_git(
        ["reset", "--hard", "--quiet", base_commit],
        path,
        what=f"resetting to {base_commit[:12]}",
        fix="check that the base commit still exists (run the workstream again from scratch)",
    )
    run_git(["clean", "-ffdxq"], path, what="removing new files")


# ---------------------------------------------------------------- a new run's branches

OLD_REF_PREFIX = "refs/mission-control/old/"
"""Where ``start_branch_afresh`` keeps a branch's old tip: nothing an earlier run made is lost."""


@dataclass(frozen=True, slots=True)
class EarlierWork:
    """A workstream's branch as an earlier run left it."""

    branch: str
    tip: str
    commits: int
    """Commits of the branch on neither copy of its base (the remote's, the local one)."""
    base: str
    """The base they were counted against, as the user calls it (``origin/main``)."""


def earlier_work(ws: Workstream) -> EarlierWork | None:
    """What the branch of ``ws`` already holds; None when it does not exist.

    Reads only (no fetch): the commits are counted against the copies of the
    base this repository has, so a branch merged into the base holds none.
    """
    repo = open_repo(ws.repo)
    tip = rev_parse(repo, f"refs/heads/{ws.branch}")
    if tip is None:
        return None
    bases = [
        ref
        for ref in (f"refs/remotes/{ws.remote}/{ws.base_branch}", f"refs/heads/{ws.base_branch}")
        if ref_exists(repo, ref)
    ]
    if not bases:  # no base at all: preparing the worktree says so
        return EarlierWork(ws.branch, tip, 0, ws.base_branch)
    out = run_git(
        ["rev-list", "--count", tip, "--not", *bases],
        repo,
        what=f"counting the commits of {ws.branch}",
    )
    shown = bases[0].removeprefix("refs/remotes/").removeprefix("refs/heads/")
    return EarlierWork(ws.branch, tip, int(out.stdout.strip() or 0), shown)


@dataclass(frozen=True, slots=True)
class FreshStart:
    """What ``start_branch_afresh`` did to one branch."""

    branch: str
    start_point: str
    """Where the branch stands now (``refs/remotes/origin/main``, ...)."""
    kept: str | None
    """The ref holding the old tip (with any uncommitted work as a commit on top);
    None when the branch was at its start point already, clean."""
    worktree_reset: bool
    """The branch's worktree was put back at the start point too."""
    warnings: tuple[str, ...] = ()


def start_branch_afresh(ws: Workstream, keep_as: str) -> FreshStart | None:
    """Put the existing branch of ``ws`` back at its base for a new run (``--fresh``).

    Nothing is lost: the old tip is kept at ``refs/mission-control/old/<branch>/<keep_as>``
    first, with the uncommitted changes of the branch's worktree as a commit on
    top when it has some (ignored files excepted). Then the branch's worktree is
    reset to the base (or, with no worktree, the branch moved there), and its
    recorded base commit is dropped, so the run starts as from a new branch. A
    branch checked out somewhere other than the workstream's worktree (the user's
    own checkout) is refused. None when the branch does not exist.
    """
    repo = open_repo(ws.repo)
    branch = ws.branch
    tip = rev_parse(repo, f"refs/heads/{branch}")
    if tip is None:
        return None
    warnings: list[str] = []
    if ws.landed_from is not None:
        return _start_landed_afresh(repo, ws, tip, keep_as)
    start_point = start_point_for(repo, ws, warnings)[0]
    start = rev_parse(repo, f"{start_point}^{{commit}}")
    assert start is not None  # _start_point found it
    path = Path(os.path.abspath(ws.worktree_path))
    holder, keep = _holder_and_tip_to_keep(repo, branch, path, tip)
    kept = None
    if keep != start:
        kept = _unused_ref(repo, f"{OLD_REF_PREFIX}{branch}/{keep_as}")
        run_git(["update-ref", kept, keep], repo, what=f"keeping the old tip of {branch}")
    if holder is not None:
        reset_worktree(path, start, branch)
    else:
        run_git(
            ["update-ref", f"refs/heads/{branch}", start, tip],
            repo,
            what=f"moving {branch} to {start_point}",
            retry_on_lock=True,
        )
    run_git(["update-ref", "-d", base_ref(branch)], repo, check=False, retry_on_lock=True)
    _set_aside_wip(repo, branch, kept or f"{OLD_REF_PREFIX}{branch}/{keep_as}")
    return FreshStart(branch, start_point, kept, holder is not None, tuple(warnings))


def _start_landed_afresh(repo: Path, ws: Workstream, tip: str, keep_as: str) -> FreshStart:
    """``base: landed``: the branch starts from a landing this run has yet to make, so it
    is kept aside and removed with its worktree; preparing makes it anew from the landing."""
    branch = ws.branch
    path = Path(os.path.abspath(ws.worktree_path))
    holder, keep = _holder_and_tip_to_keep(repo, branch, path, tip)
    kept = _unused_ref(repo, f"{OLD_REF_PREFIX}{branch}/{keep_as}")
    run_git(["update-ref", kept, keep], repo, what=f"keeping the old tip of {branch}")
    with repo_lock(repo):
        if holder is not None:
            run_git(
                ["worktree", "remove", "--force", str(path)],
                repo,
                what=f"removing the worktree of {branch}",
            )
        run_git(["branch", "-D", branch], repo, what=f"starting {branch} over", retry_on_lock=True)
    run_git(["update-ref", "-d", base_ref(branch)], repo, check=False, retry_on_lock=True)
    _set_aside_wip(repo, branch, kept)
    assert ws.landed_from is not None
    return FreshStart(branch, ws.landed_from, kept, holder is not None)


def _holder_and_tip_to_keep(
    repo: Path, branch: str, path: Path, tip: str
) -> tuple[WorktreeEntry | None, str]:
    """The workstream's worktree holding ``branch`` (None if none), and the commit to keep
    of it: ``tip``, with the worktree's uncommitted changes on top when it has some.

    A branch checked out anywhere else (the user's own checkout) is refused."""
    with repo_lock(repo):
        holder = _branch_holder(repo, branch)
        if holder is not None and not same_path(holder.path, path):
            raise WorktreePathError(
                holder.path,
                f"{repo}: branch {branch} is checked out at {holder.path}, not in its worktree"
                f" {path} — switch that checkout to another branch, then run again",
            )
    keep = tip
    if holder is not None and worktree_file(path, "index").exists():  # no index: never filled
        keep = _commit_uncommitted(path, tip, branch) or tip
    return holder, keep


def _branch_holder(repo: Path, branch: str) -> WorktreeEntry | None:
    """The worktree that has ``branch`` checked out (forgetting folders deleted by hand)."""
    ref = f"refs/heads/{branch}"
    holder = next((e for e in list_worktrees(repo) if e.branch == ref), None)
    if holder is not None and not holder.path.exists():
        run_git(["worktree", "prune"], repo, what="pruning the worktree list", retry_on_lock=True)
        holder = next((e for e in list_worktrees(repo) if e.branch == ref), None)
    return holder


def _commit_uncommitted(path: Path, head: str, branch: str) -> str | None:
    """A commit (on no branch) of the worktree's uncommitted changes; None when clean."""
    if not is_dirty(path):
        return None
    run_git(["add", "--all"], path, what="staging the uncommitted work", retry_on_lock=True)
    tree = run_git(["write-tree"], path, what="keeping the uncommitted work").stdout.strip()
    out = run_git(
        ["commit-tree", tree, "-p", head, "-m", f"Uncommitted work on {branch}"],
        path,
        config=identity_config(path),
        what="keeping the uncommitted work",
    )
    return out.stdout.strip()


def _unused_ref(repo: Path, ref: str) -> str:
    """``ref``, or ``ref-2``, ``ref-3``... when it is taken."""
    candidate, n = ref, 1
    while ref_exists(repo, candidate):
        n += 1
        candidate = f"{ref}-{n}"
    return candidate


def _set_aside_wip(repo: Path, branch: str, kept: str) -> None:
    """Move work a remote attempt kept for ``branch`` out of the way of a fresh start."""
    from .mirrors import WIP_REF  # mirrors builds on this module

    wip = rev_parse(repo, f"{WIP_REF}{branch}")
    if wip is None:
        return
    run_git(["update-ref", _unused_ref(repo, f"{kept}-wip"), wip], repo, what="keeping work")
    run_git(["update-ref", "-d", f"{WIP_REF}{branch}"], repo, check=False)


def local_branches(repo: Path) -> frozenset[str]:
    """The names of every local branch of ``repo``, in one git call."""
    out = run_git(
        ["for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads/"],
        open_repo(repo),
        what="listing the branches",
    )
    return frozenset(out.stdout.split())
