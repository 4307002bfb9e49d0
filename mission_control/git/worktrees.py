"""A workstream's worktree from birth to clean-up: prepare, reset, commit, push, remove.

Each workstream works in its own linked worktree on branch ``ws/<PHASE>/<WS>``;
the user's own checkout is never checked out, reset, stashed or pulled (every
function that changes files first checks it is in a linked worktree).

Operations that touch the repository's shared worktree list or config run
under the repository's lock (``repo_lock``); everything inside one worktree
(checkout of its files, merges, commits, pushes) runs in parallel. That is why
a new worktree is added with ``--no-checkout`` under the lock and filled
outside it.

The base commit of a workstream (its starting point after dependency merges,
which its work is diffed against) is kept in the repository as
``refs/mission-control/base/<branch>``: a retry or a rerun that re-attaches to a
branch with earlier commits still knows where the work began, and the ref keeps
that commit alive until the branch is cleaned up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import crashpoints
from ..errors import GitError
from ..plan.model import Workstream
from .locks import git_file_target, settle_worktree
from .repo import NETWORK_TIMEOUT as _NETWORK_TIMEOUT
from .repo import (
    DiffStat,
    MergeConflictError,
    PushRejectedError,
    WorktreePathError,
    branch_exists,
    common_git_dir,
    current_branch,
    diffstat,
    fetch_branch,
    git_path,
    has_remote,
    head_commit,
    identity_config,
    is_ancestor,
    is_dirty,
    open_repo,
    ref_exists,
    remote_env,
    repo_lock,
    require_linked_worktree,
    rev_parse,
    run_git,
    set_upstream,
    trim_message,
)

BASE_REF_PREFIX = "refs/mission-control/base/"

__all__ = [
    "BASE_REF_PREFIX",
    "CleanResult",
    "CommitResult",
    "MergeConflictError",
    "PreparedWorktree",
    "PushRejectedError",
    "WorktreeEntry",
    "WorktreePathError",
    "base_ref",
    "commit_message",
    "commit_work",
    "list_worktrees",
    "prepare_worktree",
    "push_branch",
    "remove_worktree",
    "reset_worktree",
]


def base_ref(branch: str) -> str:
    """Where the base commit of ``branch`` is recorded."""
    return BASE_REF_PREFIX + branch


@dataclass(frozen=True, slots=True)
class PreparedWorktree:
    """A worktree ready for a workstream's tool."""

    path: Path
    branch: str
    base_commit: str
    """The commit the tool's work is diffed against (after dependency merges)."""
    start_point: str
    """What a new branch started from (``refs/remotes/origin/main``, ``refs/heads/main``);
    empty when an existing branch was re-attached."""
    created: bool
    """The folder was made by this call."""
    reattached: bool
    """The branch existed already (a retry or a rerun)."""
    merged: tuple[str, ...] = ()
    """Dependency branches merged in by this call (empty when all were merged before)."""
    warnings: tuple[str, ...] = ()
    """Things the user should hear about that did not stop the preparation."""


@dataclass(frozen=True, slots=True)
class WorktreeEntry:
    """One line of ``git worktree list``."""

    path: Path
    head: str | None
    branch: str | None
    """Full ref name (``refs/heads/...``), None when detached or bare."""
    bare: bool = False
    locked: bool = False
    prunable: bool = False
    lock_reason: str = ""


def list_worktrees(repo: Path) -> list[WorktreeEntry]:
    """Every worktree of ``repo``, the main one first."""
    out = run_git(["worktree", "list", "--porcelain", "-z"], repo, what="listing worktrees").stdout
    entries: list[WorktreeEntry] = []
    fields: dict[str, str] = {}
    for item in out.split("\0"):
        if item:
            key, _, value = item.partition(" ")
            fields[key] = value
            continue
        if "worktree" in fields:
            entries.append(
                WorktreeEntry(
                    path=Path(fields["worktree"]),
                    head=fields.get("HEAD"),
                    branch=fields.get("branch"),
                    bare="bare" in fields,
                    locked="locked" in fields,
                    prunable="prunable" in fields,
                    lock_reason=fields.get("locked", ""),
                )
            )
        fields = {}
    return entries


def _same_path(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


# ---------------------------------------------------------------- prepare


def prepare_worktree(ws: Workstream, dependency_branches: list[str]) -> PreparedWorktree:
    """Create or re-attach the worktree of ``ws`` and merge its dependencies in.

    A new branch starts from the remote's copy of the base branch when the
    repository has ``ws.remote`` (fetched first), else from the local base
    branch. An existing branch (a retry or a rerun) is re-attached as it is;
    if only the branch is left, its folder is made again. A folder at the path
    that is not this branch's worktree is refused before anything is made.

    ``dependency_branches`` (empty for ``base: branch``) are merged into the
    worktree in order; already merged ones are skipped, so a retry merges
    nothing. A conflict aborts the merge, leaves the worktree clean where it
    was, and raises ``MergeConflictError`` naming the files.

    Creation is a row of steps (``CREATION_STEPS``), each safe to run again, and
    the worktree's own git dir records how far they got (``STAGE_FILE``): a
    worktree left half-made by a crash is finished before any tool sees it.
    """
    repo = open_repo(ws.repo)
    path = Path(os.path.abspath(ws.worktree_path))
    branch = ws.branch
    warnings: list[str] = []

    start_point = "" if branch_exists(repo, branch) else _start_point(repo, ws, warnings)
    fast_forward: list[str] = []
    if start_point and len(dependency_branches) == 1:
        first = f"refs/heads/{dependency_branches[0]}"
        # Merging the one dependency would be a fast-forward when it holds the start
        # point: the branch starts there instead (same commit, no checkout then merge).
        if ref_exists(repo, first) and is_ancestor(repo, start_point, first):
            start_point, fast_forward = first, dependency_branches[:1]
    # Step "register": the worktree is in git's list, on its branch.
    with repo_lock(repo):
        created, reattached, start_point = _attach(repo, path, branch, start_point, ws, warnings)
    if created:
        _set_stage(path, STAGE_CREATING)
    crashpoints.reach("worktree.added")
    if reattached:
        fast_forward = []
    # Step "check out": every file of HEAD is in the folder (after any git process a
    # killed mission-control left here has ended, and the locks it left are gone).
    settle_worktree(path)
    stage, stage_commit = _stage(path)
    if created:
        _fill_worktree(repo, path, branch, new_branch=not reattached)
        crashpoints.reach("worktree.filled")
    else:
        _finish_checkout(path, stage)

    # Step "merge dependencies".
    head = head_commit(path)
    recorded = rev_parse(path, base_ref(branch))
    kept = reattached and recorded is not None and is_ancestor(path, recorded, head)
    base = recorded if kept and recorded else head
    # A branch that already holds work keeps its old base, so that work still shows;
    # else the base follows the merges (also those made before a crash cut them short).
    follows = base == head or (stage == STAGE_MERGING and stage_commit == base)
    to_merge = dependency_branches[len(fast_forward) :]
    if _needs_merge(path, to_merge) and not is_dirty(path, untracked=False):
        # A merge cut short from here on is ours alone: the tracked files were clean.
        _set_stage(path, STAGE_MERGING, base if follows else "")
    merged_now = merge_dependencies(path, branch, to_merge, before=head)
    if follows:
        base = head_commit(path)
    crashpoints.reach("worktree.merged")
    merged = [*fast_forward, *merged_now]
    # Step "record base", then the worktree is handed over.
    if base != recorded:
        run_git(
            ["update-ref", base_ref(branch), base],
            path,
            what="recording the base commit",
            retry_on_lock=True,
        )
    _set_stage(path, STAGE_READY)
    return PreparedWorktree(
        path=path,
        branch=branch,
        base_commit=base,
        start_point=start_point,
        created=created,
        reattached=reattached,
        merged=tuple(merged),
        warnings=tuple(warnings),
    )


CREATION_STEPS = ("register", "check out", "merge dependencies", "record base")
"""The steps of ``prepare_worktree``, in order; each can be run again after a crash."""

STAGE_FILE = "mission-control-stage"
"""In the worktree's own git dir (``git rev-parse --git-dir``): how far preparing got."""
STAGE_CREATING = "creating"
"""Added, not yet handed to a tool: nothing in its tracked files is anyone's work."""
STAGE_MERGING = "merging"
"""Merging dependencies into a worktree whose tracked files were clean; noted with the
base when the base is to follow the merges."""
STAGE_READY = "ready"
"""Prepared: a tool may work here, and what it leaves is its work."""


def _stage(path: Path) -> tuple[str | None, str]:
    """The recorded stage of the worktree at ``path`` and the commit noted with it.

    The stage is None for none (a worktree made before stages were recorded).
    """
    try:
        words = git_path(path, STAGE_FILE).read_text(encoding="utf-8").split()
    except OSError:
        return None, ""
    return (words[0], words[1] if len(words) > 1 else "") if words else (None, "")


def _set_stage(path: Path, stage: str, commit: str = "") -> None:
    file = git_path(path, STAGE_FILE)
    tmp = file.with_name(f"{file.name}.tmp")
    tmp.write_text(f"{stage} {commit}".strip() + "\n", encoding="utf-8")
    os.replace(tmp, file)  # whole or not at all, even if we are killed here


def _finish_checkout(path: Path, stage: str | None) -> None:
    """Make a re-attached worktree whole: its creation or a merge of ours may have been cut short.

    A worktree still ``creating`` or ``merging`` holds nothing of a tool's in its
    tracked files, so it is put back at HEAD (which also drops a half-done merge).
    One with no stage was made before stages were recorded, or added and cut short
    at once: without an index it never finished its checkout, so the index is read
    from HEAD and the missing files written, never one that is there.
    """
    if stage in (STAGE_CREATING, STAGE_MERGING) or (stage is None and _our_merge_cut_short(path)):
        run_git(
            ["reset", "--hard", "--quiet", "HEAD"],
            path,
            what="finishing the worktree's checkout",
            fix="check the disk space and permissions, then retry",
        )
        return
    if git_path(path, "index").exists():
        return
    run_git(["read-tree", "HEAD"], path, what="rebuilding the worktree's index")
    if stage is None:
        missing = run_git(["ls-files", "-z", "--deleted"], path, what="listing missing files")
        if missing.stdout:
            run_git(
                ["checkout-index", "--quiet", "-z", "--stdin"],
                path,
                input_text=missing.stdout,
                what="checking out the worktree's files",
                fix="check the disk space and permissions, then retry",
            )
    run_git(["update-index", "-q", "--refresh"], path, check=False)


def _our_merge_cut_short(path: Path) -> bool:
    """A merge in progress that ``merge_dependencies`` started (its message says so)."""
    if rev_parse(path, "MERGE_HEAD") is None:
        return False
    try:
        message = git_path(path, "MERGE_MSG").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return message.startswith(_MERGE_SUBJECT)


def _needs_merge(path: Path, dependencies: list[str]) -> bool:
    return any(
        ref_exists(path, f"refs/heads/{d}") and not is_ancestor(path, f"refs/heads/{d}", "HEAD")
        for d in dependencies
    )


def _start_point(repo: Path, ws: Workstream, warnings: list[str]) -> str:
    """The ref a new branch starts from: the remote's base branch if there is one."""
    if has_remote(repo, ws.remote):
        tracking = f"refs/remotes/{ws.remote}/{ws.base_branch}"
        try:
            found = fetch_branch(repo, ws.remote, ws.base_branch)
        except GitError as exc:
            if not ref_exists(repo, tracking):
                raise
            warnings.append(f"{exc} (starting from the last fetched copy instead)")
            return tracking
        if found:
            return tracking
        warnings.append(
            f"{repo}: remote '{ws.remote}' has no branch {ws.base_branch};"
            f" {ws.branch} starts from the local {ws.base_branch}"
        )
    local = f"refs/heads/{ws.base_branch}"
    if ref_exists(repo, local):
        return local
    if rev_parse(repo, ws.base_branch):
        return ws.base_branch  # a tag or a commit
    raise GitError(
        f"{repo}: base branch {ws.base_branch} does not exist (nor on '{ws.remote}')"
        f" — create it, or fix `base_branch:` for {ws.task_id}"
    )


def _attach(
    repo: Path,
    path: Path,
    branch: str,
    start_point: str,
    ws: Workstream,
    warnings: list[str],
) -> tuple[bool, bool, str]:
    """Under the repository lock: find, re-make or add the worktree.

    Returns (created, reattached, start_point).
    """
    if start_point and not os.path.lexists(path) and _add_new(repo, path, branch, start_point):
        return True, False, start_point
    ref = f"refs/heads/{branch}"
    entries = list_worktrees(repo)
    at_path = next((e for e in entries if _same_path(e.path, path)), None)
    holder = next((e for e in entries if e.branch == ref), None)
    stale = [e for e in (at_path, holder) if e is not None and not e.path.exists()]
    if stale:
        # The folder was deleted by hand: forget it so the branch can be checked out again.
        run_git(["worktree", "prune"], repo, what="pruning the worktree list", retry_on_lock=True)
        entries = list_worktrees(repo)
        at_path = next((e for e in entries if _same_path(e.path, path)), None)
        holder = next((e for e in entries if e.branch == ref), None)

    if _clear_cut_short_add(repo, path, at_path, ref):
        entries = list_worktrees(repo)
        at_path = next((e for e in entries if _same_path(e.path, path)), None)
        holder = next((e for e in entries if e.branch == ref), None)

    if at_path is not None:
        if at_path.branch != ref:
            on = at_path.branch.removeprefix("refs/heads/") if at_path.branch else "no branch"
            raise WorktreePathError(
                path,
                f"{path}: this worktree of {repo} is on {on}, not {branch} — switch it back"
                f" with `git -C {path} switch {branch}`, or remove it with"
                f" `git worktree remove {path}`",
            )
        _check_toplevel(repo, path)
        return False, True, start_point
    if holder is not None:
        raise WorktreePathError(
            path,
            f"{repo}: branch {branch} is checked out in another worktree at {holder.path}"
            f" — move it with `git worktree move {holder.path} {path}`, or remove it",
        )
    if path.exists() and not _is_empty_dir(path):
        raise WorktreePathError(
            path,
            f"{path}: a folder that is not the worktree of {branch} is in the way"
            " — move it away, or change `worktree_root`",
        )

    had_branch = branch_exists(repo, branch)
    had_folder = path.exists()
    if had_branch:
        args = ["worktree", "add", "--quiet", "--no-checkout", str(path), branch]
    else:
        if not start_point:  # the branch vanished since we looked: start it now
            start_point = _start_point(repo, ws, warnings)
        args = [
            "worktree",
            "add",
            "--quiet",
            "--no-checkout",
            "--no-track",
            "-b",
            branch,
            str(path),
            start_point,
        ]
    try:
        run_git(
            args,
            repo,
            what=f"adding the worktree of {branch}",
            fix="check the folder's permissions and disk space, then retry",
            retry_on_lock=True,
        )
    except GitError:
        # Leave nothing half-made: no new branch, no new folder, no stale entry.
        if not had_folder and path.exists():
            shutil.rmtree(path, ignore_errors=True)
        run_git(["worktree", "prune"], repo, check=False)
        if not had_branch and branch_exists(repo, branch):
            run_git(["branch", "-D", branch], repo, check=False)
        raise
    return True, had_branch, start_point


_ADDING = "initializing"
"""The lock reason ``git worktree add`` gives a worktree until it is done."""


def _clear_cut_short_add(repo: Path, path: Path, entry: WorktreeEntry | None, ref: str) -> bool:
    """Undo or finish a ``git worktree add`` killed half-way; True when the list changed.

    Such an add leaves the entry locked as "initializing", or, if its record was
    pruned, a folder holding only a ``.git`` file that points at nothing. Only
    those are touched: a folder with any other file is left for the caller to refuse.
    """
    if entry is not None and entry.lock_reason == _ADDING:
        if entry.branch == ref:
            # Registered on the right branch: only the final unlock is missing.
            run_git(["worktree", "unlock", str(path)], repo, check=False, retry_on_lock=True)
            return True
        if path.exists() and not _holds_only_git_file(path):
            return False
        _remove_leftover(repo, path)
        run_git(["worktree", "prune"], repo, check=False, retry_on_lock=True)
        return True
    if entry is None and path.is_dir() and _holds_only_git_file(path):
        admin = git_file_target(path)
        if admin is not None and not admin.exists() and _inside(admin, common_git_dir(repo)):
            shutil.rmtree(path, ignore_errors=True)
            return True
    return False


def _holds_only_git_file(path: Path) -> bool:
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return names == [".git"] and (path / ".git").is_file()


def _inside(path: Path, folder: Path) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(folder) + os.sep)


def _remove_leftover(repo: Path, path: Path) -> None:
    """Remove a cut-short worktree's record and its folder (which holds only a ``.git`` file)."""
    records = common_git_dir(repo) / "worktrees"
    with contextlib.suppress(OSError):
        for record in records.iterdir():
            gitdir = record / "gitdir"
            with contextlib.suppress(OSError):
                if _same_path(Path(gitdir.read_text().strip()).parent, path):
                    shutil.rmtree(record, ignore_errors=True)
    if path.is_dir() and _holds_only_git_file(path):
        shutil.rmtree(path, ignore_errors=True)


def _add_new(repo: Path, path: Path, branch: str, start_point: str) -> bool:
    """The usual case in one git command: a new branch in a folder that is not there.

    Many workstreams start together and queue on the repository lock, so the lock
    is held for the add alone. Anything unusual (an entry left for a deleted folder,
    a branch made meanwhile) makes the add fail; what it made is undone and False
    sends the caller the careful way, which looks at the worktree list first.
    """
    args = ["worktree", "add", "--quiet", "--no-checkout", "--no-track", "-b", branch]
    out = run_git([*args, str(path), start_point], repo, check=False, retry_on_lock=True)
    if out.returncode == 0:
        return True
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    run_git(["worktree", "prune"], repo, check=False)
    if "already exists" not in out.stderr and branch_exists(repo, branch):
        run_git(["branch", "-D", branch], repo, check=False)  # made by the failed add
    return False


def _fill_worktree(repo: Path, path: Path, branch: str, *, new_branch: bool) -> None:
    """Check out the files of a worktree added with ``--no-checkout``, outside the lock.

    If that fails the worktree is removed again (and a branch made for it deleted),
    so a retry starts from scratch instead of re-attaching a half-filled folder.
    """
    try:
        run_git(
            ["reset", "--hard", "--quiet", "HEAD"],
            path,
            what="checking out the worktree's files",
            fix="check the disk space and permissions, then retry",
        )
    except GitError:
        with repo_lock(repo):
            run_git(["worktree", "remove", "--force", str(path)], repo, check=False)
            run_git(["worktree", "prune"], repo, check=False)
            if new_branch:
                run_git(["branch", "-D", branch], repo, check=False)
        raise


def _check_toplevel(repo: Path, path: Path) -> None:
    out = run_git(["rev-parse", "--show-toplevel"], path, check=False)
    if out.returncode != 0 or not _same_path(Path(out.stdout.strip()), path):
        raise WorktreePathError(
            path,
            f"{path}: registered as a worktree of {repo} but git cannot use it"
            f" ({trim_message(out.stderr) if out.returncode else 'wrong top level'})"
            f" — run `git worktree repair {path}`, or remove the folder",
        )


_MERGE_SUBJECT = "Merge dependency "


def merge_dependencies(
    path: Path,
    branch: str,
    dependencies: list[str],
    *,
    before: str,
    ref_prefix: str = "refs/heads/",
) -> list[str]:
    """Merge each dependency's branch (``ref_prefix`` + name) into the worktree at ``path``."""
    merged: list[str] = []
    for dep in dependencies:
        ref = f"{ref_prefix}{dep}"
        if not ref_exists(path, ref):
            raise GitError(
                f"{path}: dependency branch {dep} does not exist — run the dependency"
                " first, or set `base: branch` for this workstream"
            )
        if is_ancestor(path, ref, "HEAD"):
            continue  # merged before (a retry): nothing to do
        if not merged and is_dirty(path, untracked=False):
            raise GitError(
                f"{path}: cannot merge dependency {dep} into {branch}: the worktree has"
                " uncommitted changes — retry fresh, or commit them first"
            )
        out = run_git(
            [
                "merge",
                "--ff",
                "--no-edit",
                "--no-verify",
                "--quiet",
                "-m",
                f"{_MERGE_SUBJECT}{dep} into {branch}",
                ref,
            ],
            path,
            check=False,
            config=[*identity_config(path), "rerere.enabled=false", "merge.autoStash=false"],
        )
        if out.returncode == 0:
            merged.append(dep)
            continue
        files = _unmerged_files(path)
        if rev_parse(path, "MERGE_HEAD"):
            run_git(["merge", "--abort"], path, check=False)
        if head_commit(path) != before or is_dirty(path, untracked=False):
            # Earlier dependencies of this call were merged: go back to where we began.
            run_git(["reset", "--hard", "--quiet", before], path, what="undoing the merge")
        if files:
            raise MergeConflictError(path, branch, dep, files)
        raise GitError(
            f"{path}: merging dependency {dep} into {branch} failed:"
            f" {trim_message(out.stderr, out.stdout)}"
            " — clean the worktree (retry fresh), then retry"
        )
    return merged


def _unmerged_files(path: Path) -> list[str]:
    out = run_git(["ls-files", "--unmerged", "-z"], path, check=False).stdout
    files: list[str] = []
    for item in out.split("\0"):
        name = item.partition("\t")[2]
        if name and name not in files:
            files.append(name)
    return files


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
    if git_path(path, "rebase-merge").exists() or git_path(path, "rebase-apply").exists():
        run_git(["rebase", "--quit"], path, check=False)
    run_git(
        ["reset", "--hard", "--quiet", base_commit],
        path,
        what=f"resetting to {base_commit[:12]}",
        fix="check that the base commit still exists (run the workstream again from scratch)",
    )
    run_git(["clean", "-ffdxq"], path, what="removing new files")


# ---------------------------------------------------------------- commit and push


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What the workstream's branch holds after finishing: the head and its diff to base."""

    head: str
    committed: bool
    """A commit was made of uncommitted changes."""
    changed: bool
    """The branch moved past its base (by our commit, the tool's own commits, or both)."""
    files: int
    insertions: int
    deletions: int

    @property
    def diffstat(self) -> str:
        if not self.changed:
            return "no changes"
        return str(DiffStat(self.files, self.insertions, self.deletions))


def commit_message(ws: Workstream, run_id: str, attempt: int) -> tuple[str, str]:
    """The subject ``[PHASE::WS] <name>`` and a body naming the run, attempt and tool."""
    return (
        f"[{ws.task_id}] {ws.name}",
        f"mission-control run {run_id}, attempt {attempt}, tool {ws.tool}.",
    )


def commit_work(
    path: Path, base_commit: str, message: str, body: str = "", *, verify: bool = True
) -> CommitResult:
    """Stage everything (honouring .gitignore) and commit it; keep the tool's own commits.

    ``changed`` is False ("no changes") when nothing was left to commit and the
    branch is still at ``base_commit``. A fallback identity is used only when
    git has none configured. ``verify=False`` skips the repository's commit hooks.
    """
    path = Path(path)
    require_linked_worktree(path, "a commit")
    settle_worktree(path)  # a killed mission-control's commit may still run here
    run_git(["add", "--all"], path, what="staging the changes", retry_on_lock=True)
    _refuse_emptying(path, base_commit)
    staged = run_git(["diff", "--cached", "--quiet"], path, check=False)
    committed = staged.returncode == 1
    if staged.returncode not in (0, 1):
        raise GitError(f"{path}: reading staged changes failed: {trim_message(staged.stderr)}")
    if committed:
        args = ["commit", "--quiet", "--no-edit", "-m", message]
        if body:
            args += ["-m", body]
        if not verify:
            args.append("--no-verify")
        run_git(
            args,
            path,
            config=identity_config(path),
            what="committing the work",
            fix="see the message (a commit hook may have refused it), then retry",
        )
    head = head_commit(path)
    stat = diffstat(path, base_commit, head) if head != base_commit else DiffStat(0, 0, 0)
    return CommitResult(
        head=head,
        committed=committed,
        changed=head != base_commit,
        files=stat.files,
        insertions=stat.insertions,
        deletions=stat.deletions,
    )


def _refuse_emptying(path: Path, base_commit: str) -> None:
    """Refuse work that deletes every tracked file of a base that had some.

    That is what a worktree whose files were never checked out looks like, not
    what a tool means to do: committed and pushed, it would erase the project.
    """
    tree = run_git(["write-tree"], path, what="reading the staged files").stdout.strip()
    if (
        run_git(["cat-file", "-s", tree], path, what="reading the staged files").stdout.strip()
        != "0"
    ):
        return
    listed = run_git(["ls-tree", "-r", "-z", "--name-only", base_commit], path, check=False)
    count = listed.stdout.count("\0")
    if count:
        raise GitError(
            f"{path}: refusing to commit: the work deletes every tracked file of its base"
            f" ({count} files at {base_commit[:12]}), which is what a worktree whose files were"
            " never checked out looks like — look at the worktree, then retry the workstream"
            " fresh (or commit by hand if emptying the project is the work)"
        )


def push_branch(path: Path, remote: str, branch: str, *, force: bool = False) -> None:
    """Push ``branch`` to ``remote`` and make it the branch's upstream.

    Never prompts. A refusal raises ``PushRejectedError`` carrying git's own
    message; the local branch is left as it is. ``force`` uses
    ``--force-with-lease`` (for a branch rewritten by a fresh retry).
    """
    path = Path(path)
    args = ["push"]
    if force:
        args.append("--force-with-lease")
    args += [remote, f"refs/heads/{branch}:refs/heads/{branch}"]
    out = run_git(args, path, check=False, timeout=_NETWORK_TIMEOUT, env=remote_env(path, remote))
    if out.returncode != 0:
        message = " ".join(trim_message(out.stderr, out.stdout).split())
        raise PushRejectedError(path, remote, branch, message)
    set_upstream(path, branch, remote)


# ---------------------------------------------------------------- clean up


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
        entry = next((e for e in entries if _same_path(e.path, path)), None)
        if entry is not None and entries and entry is entries[0]:
            refusals.append(f"{path}: this is the repository's main checkout — it is never removed")
        elif entry is None:
            if path.exists() and not _is_empty_dir(path):
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
    start_point = _start_point(repo, ws, warnings)
    start = rev_parse(repo, f"{start_point}^{{commit}}")
    assert start is not None  # _start_point found it
    path = Path(os.path.abspath(ws.worktree_path))
    with repo_lock(repo):
        holder = _branch_holder(repo, branch)
        if holder is not None and not _same_path(holder.path, path):
            raise WorktreePathError(
                holder.path,
                f"{repo}: branch {branch} is checked out at {holder.path}, not in its worktree"
                f" {path} — switch that checkout to another branch, then run again",
            )
    keep = tip
    if holder is not None and git_path(path, "index").exists():  # no index: never filled
        keep = _commit_uncommitted(path, tip, branch) or tip
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
