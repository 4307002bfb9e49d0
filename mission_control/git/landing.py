"""The git side of landing: the integration worktree and merging one branch into it.

A landing merges finished workstream branches, one at a time, into an
integration branch checked out in a worktree of its own (never the user's
checkout). Each merge is ``--no-ff``, so every landed branch is one merge
commit on the integration branch, and a branch whose head the branch already
holds is not merged again: a landing that is run again (after a stop or a
crash) can always tell from git alone whether a merge happened.

A conflict is left in place in the worktree (``MergeResult.files``), so a tool
or the user can resolve it there; ``undo_merge`` takes the worktree back to a
given commit when it is given up.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import GitError
from .errors import PushRejectedError
from .identity import identity_config
from .locks import settle_worktree
from .merges import unmerged_files
from .remotes import remote_env
from .repo import (
    NETWORK_TIMEOUT,
    branch_exists,
    head_commit,
    is_ancestor,
    repo_lock,
    rev_parse,
    run_git,
    trim_message,
)
from .worktree_list import list_worktrees, same_path
from .worktree_record import holds_only_git_file

MergeOutcome = Literal["merged", "held", "conflict"]

_MARKERS = ("<<<<<<< ", ">>>>>>> ")
_MERGE_CONFIG = ("rerere.enabled=false", "merge.autoStash=false")


@dataclass(frozen=True, slots=True)
class MergeResult:
    outcome: MergeOutcome
    """``merged``: a new merge commit; ``held``: HEAD already held the commit;
    ``conflict``: the merge stopped with ``files`` unmerged, left in place."""
    head: str
    """The worktree's HEAD after the merge (unchanged unless merged)."""
    files: tuple[str, ...] = ()


def checked_out_elsewhere(repo: Path, branch: str, path: Path) -> Path | None:
    """The worktree other than ``path`` that has ``branch`` checked out (the user's, often)."""
    for entry in list_worktrees(repo):
        if entry.branch == f"refs/heads/{branch}" and not same_path(entry.path, path):
            return entry.path
    return None


def open_integration_worktree(
    repo: Path, path: Path, branch: str, start: str, *, detached: bool = False
) -> str:
    """Check out ``branch`` in the worktree at ``path``, made if missing; returns its HEAD.

    A new ``branch`` starts at ``start`` (a commit); an existing one is taken as it
    is. ``detached``: the branch is checked out elsewhere (the user's checkout), so
    the worktree works on a detached HEAD from ``start`` and its result is pushed to
    the remote's branch (``push_head``). A worktree already there (a landing run
    again) is reused after the git processes a killed landing left in it are settled.
    """
    ref = None if detached else f"refs/heads/{branch}"
    with repo_lock(repo):
        entries = list_worktrees(repo)
        for entry in entries:
            if same_path(entry.path, path):
                if entry.branch != ref:
                    raise GitError(
                        f"{path}: the landing's worktree holds {entry.branch or 'a detached HEAD'},"
                        f" not {branch} — remove it (`git worktree remove --force {path}`) and"
                        " run land again"
                    )
                if path.is_dir():
                    settle_worktree(path)
                    return head_commit(path)
                run_git(["worktree", "prune"], repo, check=False)  # its folder was deleted
        for entry in entries:
            if ref is not None and entry.branch == ref and not same_path(entry.path, path):
                raise GitError(
                    f"{repo}: {branch} is checked out in {entry.path}, and a landing never"
                    " changes another checkout — land into another branch (`--into NAME`, or"
                    " the default mc/land/...), or check out another branch there"
                )
        if path.exists():
            if any(path.iterdir()) and not holds_only_git_file(path):
                raise GitError(
                    f"{path}: a folder that is not the landing's worktree is in the way"
                    " — move it away, then run land again"
                )
            shutil.rmtree(path, ignore_errors=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        if detached:
            args = ["worktree", "add", "--quiet", "--detach", str(path), start]
        elif branch_exists(repo, branch):
            args = ["worktree", "add", "--quiet", str(path), branch]
        else:
            args = ["worktree", "add", "--quiet", "--no-track", "-b", branch, str(path), start]
        run_git(args, repo, what=f"making the landing's worktree for {branch}", retry_on_lock=True)
    return head_commit(path)


OLD_REF_PREFIX = "refs/mission-control/old/"
"""Where a branch's old tip is kept when it starts over (as ``--fresh`` keeps workstreams')."""


def retire_branch(repo: Path, branch: str, run_id: str, worktree: Path | None) -> str:
    """Keep ``branch``'s tip under ``refs/mission-control/old/<branch>/<run_id>``, remove the
    earlier landing's ``worktree`` that holds it, and delete the branch; returns the tip."""
    with repo_lock(repo):
        tip = rev_parse(repo, f"refs/heads/{branch}")
        if tip is None:
            raise GitError(f"{repo}: {branch} does not exist — run land again")
        run_git(
            ["update-ref", f"{OLD_REF_PREFIX}{branch}/{run_id}", tip],
            repo,
            what=f"keeping the old tip of {branch}",
        )
        for entry in list_worktrees(repo):
            if worktree is not None and same_path(entry.path, worktree):
                run_git(
                    ["worktree", "remove", "--force", str(entry.path)],
                    repo,
                    what=f"removing the earlier landing's worktree {entry.path}",
                )
        run_git(["branch", "-D", branch], repo, what=f"starting {branch} over")
    return tip


def replaces_old_tip(repo: Path, remote: str, branch: str, head: str) -> bool:
    """The remote's ``branch`` is an old tip a landing started over from (kept by
    ``retire_branch``), not an ancestor of ``head``: the push must replace it."""
    tip = rev_parse(repo, f"refs/remotes/{remote}/{branch}")
    if tip is None or is_ancestor(repo, tip, head):
        return False
    out = run_git(
        ["for-each-ref", "--format=%(refname)", f"--points-at={tip}", f"{OLD_REF_PREFIX}{branch}/"],
        repo,
        what="looking for the old tips of the branch",
    )
    return bool(out.stdout.strip())


def remove_landing_worktree(repo: Path, path: Path) -> bool:
    """Remove a finished landing's worktree (its branch stays); False when it is not there."""
    with repo_lock(repo):
        if not any(same_path(entry.path, path) for entry in list_worktrees(repo)):
            return False
        run_git(
            ["worktree", "remove", "--force", str(path)],
            repo,
            what=f"removing the landing's worktree {path}",
        )
    return True


def push_head(path: Path, remote: str, branch: str) -> None:
    """Push the worktree's HEAD to ``remote``'s ``branch`` (fast-forward only, never forced)."""
    out = run_git(
        ["push", remote, f"HEAD:refs/heads/{branch}"],
        path,
        check=False,
        timeout=NETWORK_TIMEOUT,
        env=remote_env(path, remote),
    )
    if out.returncode != 0:
        message = " ".join(trim_message(out.stderr, out.stdout).split())
        raise PushRejectedError(path, remote, branch, message)


def merge_commit_into(path: Path, commit: str, message: str) -> MergeResult:
    """Merge ``commit`` into the worktree's branch with a merge commit saying ``message``."""
    before = head_commit(path)
    if is_ancestor(path, commit, before):
        return MergeResult("held", before)
    # What the last checks left (not ignored) must not stop the merge or end up in it.
    run_git(["clean", "-fdq"], path, check=False)
    out = run_git(
        ["merge", "--no-ff", "--no-edit", "--no-verify", "--quiet", "-m", message, commit],
        path,
        check=False,
        config=[*identity_config(path), *_MERGE_CONFIG],
    )
    if out.returncode == 0:
        return MergeResult("merged", head_commit(path))
    files = unmerged_files(path)
    if files and rev_parse(path, "MERGE_HEAD"):
        return MergeResult("conflict", before, tuple(files))
    undo_merge(path, before)
    raise GitError(
        f"{path}: merging {commit[:12]} failed: {trim_message(out.stderr, out.stdout)}"
        " — look at the landing's worktree, then run land again"
    )


def undo_merge(path: Path, to: str) -> None:
    """Give up a merge in progress and take the worktree back to commit ``to``."""
    if rev_parse(path, "MERGE_HEAD"):
        run_git(["merge", "--abort"], path, check=False)
    run_git(["reset", "--hard", "--quiet", to], path, what="undoing the merge")
    run_git(["clean", "-fdq"], path, check=False)  # files a resolver left beside the merge


def merge_in_progress(path: Path) -> str | None:
    """The commit being merged when a merge stopped (a conflict), else None."""
    return rev_parse(path, "MERGE_HEAD")


def files_with_markers(path: Path, files: tuple[str, ...] | list[str]) -> list[str]:
    """Those of ``files`` that still hold a conflict marker line."""
    found = []
    for name in files:
        try:
            lines = (path / name).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue  # deleted by the resolution: no markers
        if any(line.startswith(_MARKERS) for line in lines):
            found.append(name)
    return found


def commit_resolution(path: Path, commit: str, message: str, files: tuple[str, ...]) -> str:
    """Commit a resolved merge of ``commit`` (the changes to tracked files); returns HEAD.

    Raises ``GitError`` while a file still holds conflict markers or stays unmerged.
    A resolution the tool committed itself is taken as it is.
    """
    marked = files_with_markers(path, files)
    if marked:
        raise GitError(f"{path}: conflict markers remain in {', '.join(marked)}")
    if not merge_in_progress(path):
        head = head_commit(path)
        if is_ancestor(path, commit, head):
            return head  # committed by whoever resolved it
        raise GitError(f"{path}: the merge of {commit[:12]} is no longer in progress")
    # The tracked files and the conflicted ones: not what checks left beside them.
    run_git(["add", "-u"], path, what="staging the resolution")
    present = [name for name in files if (path / name).exists()]
    if present:
        run_git(["add", "--", *present], path, what="staging the resolution")
    left = unmerged_files(path)
    if left:
        raise GitError(f"{path}: still unmerged: {', '.join(left)}")
    run_git(
        ["commit", "--quiet", "--no-verify", "-m", message],
        path,
        what="committing the resolved merge",
        config=identity_config(path),
    )
    return head_commit(path)
