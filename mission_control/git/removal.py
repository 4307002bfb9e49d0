"""Cleaning up: removing a finished workstream's worktree and, when safe, its branch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .repo import (
    branch_exists,
    is_ancestor,
    is_dirty,
    open_repo,
    ref_exists,
    repo_lock,
    run_git,
    trim_message,
)
from .worktree_list import base_ref, is_empty_dir, list_worktrees, same_path


@dataclass(frozen=True, slots=True)
class CleanResult:
    """What removing a finished workstream's worktree (and branch) did, or why not."""

    path: Path
    branch: str
    worktree_removed: bool
    """No worktree is left at ``path`` (removed now, or already gone)."""
    branch_deleted: bool
    refusals: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.refusals


def remove_worktree(
    repo: Path,
    path: Path,
    branch: str,
    *,
    delete_branch: bool = False,
    force: bool = False,
    remote: str = "origin",
    base_branch: str | None = None,
) -> CleanResult:
    """Remove a workstream's worktree and, with ``delete_branch``, its branch.

    Refuses (a reason in ``refusals``, nothing raised) a worktree with
    uncommitted changes, and a branch that is neither pushed to ``remote`` nor
    merged into ``base_branch``, unless ``force``. A folder that is not a
    worktree of ``repo`` is never touched. Prunes git's worktree list at the end.
    """
    repo = open_repo(repo)
    path = Path(os.path.abspath(path))
    refusals: list[str] = []
    removed = deleted = False
    with repo_lock(repo):
        entries = list_worktrees(repo)
        entry = next((e for e in entries if same_path(e.path, path)), None)
        if entry is not None and entries and entry is entries[0]:
            refusals.append(f"{path}: this is the repository's main checkout — it is never removed")
        elif entry is None:
            if path.exists() and not is_empty_dir(path):
                refusals.append(
                    f"{path}: not a worktree of {repo}, left alone — remove it by hand if it is"
                    " yours"
                )
            else:
                removed = True  # already gone
        elif not path.exists():
            removed = True  # deleted by hand; the prune below forgets it
        elif is_dirty(path) and not force:
            refusals.append(
                f"{path}: has uncommitted changes — commit them, or pass --force to discard them"
            )
        else:
            args = ["worktree", "remove"]
            if force:
                args += ["--force", "--force"]
            out = run_git([*args, str(path)], repo, check=False, retry_on_lock=True)
            if out.returncode == 0:
                removed = True
            else:
                refusals.append(
                    f"{path}: git would not remove it: {trim_message(out.stderr)}"
                    " — pass --force, or remove it with `git worktree remove`"
                )
        run_git(["worktree", "prune"], repo, what="pruning the worktree list", retry_on_lock=True)

        if delete_branch and branch_exists(repo, branch):
            checked_out = any(e.branch == f"refs/heads/{branch}" for e in list_worktrees(repo))
            if checked_out:
                refusals.append(f"{repo}: branch {branch} kept: its worktree is still there")
            elif not force and not _is_safe_to_delete(repo, branch, remote, base_branch):
                into = f" nor merged into {base_branch}" if base_branch else ""
                refusals.append(
                    f"{repo}: branch {branch} is not pushed to {remote}{into} — push it,"
                    " or pass --force to delete it anyway"
                )
            else:
                run_git(
                    ["branch", "-D", branch],
                    repo,
                    what=f"deleting branch {branch}",
                    retry_on_lock=True,
                )
                deleted = True
        gone = delete_branch and not branch_exists(repo, branch)
        if gone and ref_exists(repo, base_ref(branch)):
            run_git(["update-ref", "-d", base_ref(branch)], repo, check=False, retry_on_lock=True)
    return CleanResult(path, branch, removed, deleted, tuple(refusals))


def _is_safe_to_delete(repo: Path, branch: str, remote: str, base_branch: str | None) -> bool:
    """Every commit of ``branch`` is on the remote's copy of it, or in the base branch."""
    ref = f"refs/heads/{branch}"
    candidates = [f"refs/remotes/{remote}/{branch}"]
    if base_branch:
        candidates += [f"refs/heads/{base_branch}", f"refs/remotes/{remote}/{base_branch}"]
    return any(ref_exists(repo, c) and is_ancestor(repo, ref, c) for c in candidates)
