"""Preparing a workstream's worktree: register, check out, merge dependencies, record base.

Each workstream works in its own linked worktree on branch ``ws/<PHASE>/<WS>``;
the user's own checkout is never checked out, reset, stashed or pulled.

Operations on the repository's shared worktree list or config run under its lock
(``repo_lock``); all inside one worktree (checkout, merges) runs in parallel: a new
worktree is registered under the lock, by mission-control itself where it can
(``worktree_record``) and else by ``git worktree add --no-checkout``, and filled outside
it (unless git adds a small tree while nobody else waits for the lock: then the add
checks it out, as a second git process costs more).

The base commit of a workstream (its starting point after dependency merges,
which its work is diffed against) is kept in the repository as
``refs/mission-control/base/<branch>``: a retry or a rerun that re-attaches to a
branch with earlier commits still knows where the work began, and the ref keeps
that commit alive until the branch is cleaned up.

Creation is a row of steps, each safe to run again, and the worktree's own git
dir records how far they got (``STAGE_FILE``): a worktree left half-made by a
crash is finished before any tool sees it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import crashpoints
from ..errors import GitError
from ..plan.model import Workstream
from .ancestry import known_held
from .errors import WorktreePathError
from .index_stamp import remember_checkout
from .locks import git_file_target, settle_worktree
from .merges import MERGE_SUBJECT, merge_dependencies
from .ref_files import is_object_id, write_ref
from .remotes import fetch_branch, has_remote
from .repo import (
    branch_exists,
    common_git_dir,
    git_under_lock,
    head_commit,
    is_ancestor,
    is_dirty,
    open_repo,
    ref_commits,
    ref_exists,
    repo_lock,
    rev_parse,
    run_git,
    trim_message,
    worktree_file,
)
from .start_from import StartFrom, remember_start, resolve_start_from
from .worktree_list import WorktreeEntry, base_ref, is_empty_dir, list_worktrees, same_path
from .worktree_record import (
    ADDING,
    drop_cut_short_record,
    holds_only_git_file,
    is_inside,
    register_worktree,
    remove_leftover,
)


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


def prepare_worktree(
    ws: Workstream,
    dependency_branches: list[str],
    known_holds: Sequence[tuple[str, str]] = (),
) -> PreparedWorktree:
    """Create or re-attach the worktree of ``ws`` and merge its dependencies in.

    A new branch starts from the remote's copy of the base branch when the
    repository has ``ws.remote`` (fetched first), else from the local base
    branch. An existing branch (a retry or a rerun) is re-attached as it is;
    if only the branch is left, its folder is made again. A folder at the path
    that is not this branch's worktree is refused before anything is made.

    ``known_holds``: (commit, a commit it holds) pairs seen made (a dependency's
    head on the commit it was made on), which answer ancestry without git.

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

    first = f"refs/heads/{dependency_branches[0]}" if len(dependency_branches) == 1 else ""
    # What the steps below ask about refs, in one git call.
    refs = ref_commits(
        repo, [f"refs/heads/{branch}", base_ref(branch), f"refs/heads/{ws.base_branch}", first]
    )
    start_point, start_commit = "", None
    start_from: StartFrom | None = None
    if f"refs/heads/{branch}" not in refs:
        if ws.start_from:  # existing work (a PR, a remote branch) instead of the base
            start_from = resolve_start_from(repo, ws)
            start_point = start_from.ref
        else:
            start_point, start_commit = start_point_for(repo, ws, warnings, refs)
    fast_forward: list[str] = []
    # Merging the one dependency would be a fast-forward when it holds the start
    # point: the branch starts there instead (same commit, no checkout then merge).
    if (
        start_point
        and first in refs
        and _holds(repo, refs[first], start_commit, start_point, known_holds)
    ):
        start_point, start_commit = first, refs[first]
        fast_forward = dependency_branches[:1]
    # Step "register": the worktree is in git's list, on its branch.
    new_folder = not os.path.lexists(path)
    created, reattached, start_point, filled = _attach(
        repo, path, branch, start_point, ws, warnings, start_commit or ""
    )
    if created:
        _set_stage(path, STAGE_CREATING)
    if start_from is not None and not reattached:  # for finishing: where the work goes back
        remember_start(path, start_from)
    crashpoints.reach("worktree.added")
    if reattached:
        fast_forward = []
    # Step "check out": every file of HEAD is in the folder (after any git process a
    # killed mission-control left here has ended, and the locks it left are gone: none
    # can be in a folder made just now).
    if not (created and new_folder):
        settle_worktree(path)
    stage, stage_commit = _stage(path)
    if created:
        if not filled:
            _fill_worktree(repo, path, branch, new_branch=not reattached)
        crashpoints.reach("worktree.filled")
    else:
        _finish_checkout(path, stage)

    # Step "merge dependencies".
    # A new branch's head is the commit it was added at (asked of git only otherwise).
    fresh = created and not reattached and start_commit is not None
    head = start_commit if fresh and start_commit else head_commit(path)
    recorded = refs.get(base_ref(branch))
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
        base = head_commit(path) if merged_now else head
    crashpoints.reach("worktree.merged")
    merged = [*fast_forward, *merged_now]
    # Step "record base", then the worktree is handed over.
    if base != recorded and not write_ref(common_git_dir(repo), base_ref(branch), base):
        run_git(
            ["update-ref", base_ref(branch), base],
            path,
            what="recording the base commit",
            retry_on_lock=True,
        )
    _set_stage(path, STAGE_READY)
    if created:  # checked out (and merged) just now: the index is HEAD's tree
        remember_checkout(path)
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


def _holds(
    repo: Path,
    commit: str,
    start_commit: str | None,
    start_point: str,
    known: Sequence[tuple[str, str]],
) -> bool:
    """``commit`` holds the start point: known when a row of commits seen made each on
    the one before leads to it, else asked."""
    if start_commit is not None and start_commit in known_held(commit, known):
        return True
    return is_ancestor(repo, start_commit or start_point, commit)


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
        words = worktree_file(path, STAGE_FILE).read_text(encoding="utf-8").split()
    except OSError:
        return None, ""
    return (words[0], words[1] if len(words) > 1 else "") if words else (None, "")


def _set_stage(path: Path, stage: str, commit: str = "") -> None:
    # Rewritten in place: a new file and a rename cost ten times more here, twice per
    # workstream. A kill between the truncation and the (one, small) write leaves the file
    # empty, which reads as no stage: the careful case, that never resets a worktree.
    text = f"{stage} {commit}".strip() + "\n"
    fd = os.open(worktree_file(path, STAGE_FILE), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


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
    if worktree_file(path, "index").exists():
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
        message = worktree_file(path, "MERGE_MSG").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return message.startswith(MERGE_SUBJECT)


def _needs_merge(path: Path, dependencies: list[str]) -> bool:
    return any(
        ref_exists(path, f"refs/heads/{d}") and not is_ancestor(path, f"refs/heads/{d}", "HEAD")
        for d in dependencies
    )


def start_point_for(
    repo: Path, ws: Workstream, warnings: list[str], known: dict[str, str] | None = None
) -> tuple[str, str | None]:
    """The ref a new branch starts from (the remote's base branch if there is one), and its
    commit when that is known without asking git again.

    ``known``: commits of refs read just before (``ref_commits``); it must cover
    the local base branch, so its absence there means it does not exist.
    """
    if ws.landed_from is not None:
        return _landed_start(repo, ws), None
    local = f"refs/heads/{ws.base_branch}"
    if has_remote(repo, ws.remote):
        tracking = f"refs/remotes/{ws.remote}/{ws.base_branch}"
        try:
            found = fetch_branch(repo, ws.remote, ws.base_branch)
        except GitError as exc:
            if not ref_exists(repo, tracking):
                raise
            warnings.append(f"{exc} (starting from the last fetched copy instead)")
            return tracking, None
        if found:  # the fetch may just have moved it: read it now
            return tracking, ref_commits(repo, [tracking]).get(tracking)
        warnings.append(
            f"{repo}: remote '{ws.remote}' has no branch {ws.base_branch};"
            f" {ws.branch} starts from the local {ws.base_branch}"
        )
    if known is not None:
        if local in known:
            return local, known[local]
    elif ref_exists(repo, local):
        return local, None
    commit = rev_parse(repo, ws.base_branch)
    if commit:
        return ws.base_branch, commit  # a tag or a commit
    raise GitError(
        f"{repo}: base branch {ws.base_branch} does not exist (nor on '{ws.remote}')"
        f" — create it, or fix `base_branch:` for {ws.task_id}"
    )


def _landed_start(repo: Path, ws: Workstream) -> str:
    """``base: landed``: the landing branch of the phase before, as the landing left it
    here (else the remote's copy)."""
    assert ws.landed_from is not None
    local = f"refs/heads/{ws.landed_from}"
    if ref_exists(repo, local):
        return local
    if has_remote(repo, ws.remote) and fetch_branch(repo, ws.remote, ws.landed_from):
        return f"refs/remotes/{ws.remote}/{ws.landed_from}"
    raise GitError(
        f"{repo}: {ws.task_id} starts from {ws.landed_from} (`base: landed`), which does not"
        f" exist — land the phase before (`land: auto` on it, or `mission-control land"
        f" --phase {ws.landed_from.rsplit('/', 1)[-1]}`), then retry"
    )


def _attach(
    repo: Path,
    path: Path,
    branch: str,
    start_point: str,
    ws: Workstream,
    warnings: list[str],
    start_commit: str = "",
) -> tuple[bool, bool, str, bool]:
    """Find, re-make or add the worktree, under the repository's lock.

    A new branch is added at ``start_commit`` when given (the commit ``start_point``
    was read at), so its head is known without asking. Returns (created,
    reattached, start_point, filled): ``filled`` when the add checked the files out.
    """
    start_at = start_commit or start_point
    if start_point and not os.path.lexists(path):
        added = _add_new(repo, path, branch, start_at)
        if added is not None:
            return True, False, start_point, added
    with repo_lock(repo):  # the careful way: look at the worktree list first
        ref = f"refs/heads/{branch}"
        entries = list_worktrees(repo)
        at_path = next((e for e in entries if same_path(e.path, path)), None)
        holder = next((e for e in entries if e.branch == ref), None)
        stale = [e for e in (at_path, holder) if e is not None and not e.path.exists()]
        if stale:
            # The folder was deleted by hand: forget it so the branch can be checked out again.
            run_git(
                ["worktree", "prune"], repo, what="pruning the worktree list", retry_on_lock=True
            )
            entries = list_worktrees(repo)
            at_path = next((e for e in entries if same_path(e.path, path)), None)
            holder = next((e for e in entries if e.branch == ref), None)

        if _clear_cut_short_add(repo, path, at_path, ref):
            entries = list_worktrees(repo)
            at_path = next((e for e in entries if same_path(e.path, path)), None)
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
            return False, True, start_point, False
        if holder is not None:
            raise WorktreePathError(
                path,
                f"{repo}: branch {branch} is checked out in another worktree at {holder.path}"
                f" — move it with `git worktree move {holder.path} {path}`, or remove it",
            )
        if path.exists() and not is_empty_dir(path):
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
                start_point = start_at = start_point_for(repo, ws, warnings)[0]
            args = [
                "worktree",
                "add",
                "--quiet",
                "--no-checkout",
                "--no-track",
                "-b",
                branch,
                str(path),
                start_at,
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
        return True, had_branch, start_point, False


def _clear_cut_short_add(repo: Path, path: Path, entry: WorktreeEntry | None, ref: str) -> bool:
    """Undo or finish a ``git worktree add`` killed half-way; True when the list changed.

    Such an add leaves the entry locked as "initializing", a locked record that does
    not name its folder yet, or, if its record was pruned, a folder holding only a
    ``.git`` file that points at nothing. Only
    those are touched: a folder with any other file is left for the caller to refuse.
    """
    if entry is not None and entry.lock_reason == ADDING:
        if entry.branch == ref:
            # Registered on the right branch: only the final unlock is missing, and its
            # checkout may be cut short too (no tool ever saw it): it is made again.
            run_git(["worktree", "unlock", str(path)], repo, check=False, retry_on_lock=True)
            with contextlib.suppress(OSError):
                _set_stage(path, STAGE_CREATING)
            return True
        if path.exists() and not holds_only_git_file(path):
            return False
        remove_leftover(common_git_dir(repo), path)
        run_git(["worktree", "prune"], repo, check=False, retry_on_lock=True)
        return True
    if entry is not None:
        return False
    # mission-control's own registration, killed before it wrote the record's ``gitdir``.
    dropped = drop_cut_short_record(common_git_dir(repo), path.name)
    if path.is_dir() and holds_only_git_file(path):
        admin = git_file_target(path)
        if admin is not None and not admin.exists() and is_inside(admin, common_git_dir(repo)):
            shutil.rmtree(path, ignore_errors=True)
            return True
    return dropped


SMALL_TREE = 2000
"""Where git must add a worktree (``worktree_record`` cannot): files in the repository's
index up to which ``worktree add`` checks the files out itself, under the lock, when no
other add of this process waits for it: one git process is quicker than two for a
chain's next link. A bigger tree, or any tree while other
workstreams queue on the lock, is checked out outside it, so that the lock is held
for the registration alone."""


def _small_tree(repo: Path) -> bool:
    try:
        with (common_git_dir(repo) / "index").open("rb") as index:
            header = index.read(12)
    except OSError:
        return False
    if len(header) < 12 or header[:4] != b"DIRC":
        return False
    return int.from_bytes(header[8:12], "big") <= SMALL_TREE


def _add_new(repo: Path, path: Path, branch: str, start_point: str) -> bool | None:
    """The usual case: a new branch in a folder that is not there.

    Many workstreams start together and queue on the repository lock, so it is held
    for the registration alone: written by mission-control itself when the start point
    is a commit and the repository is a plain one (``worktree_record``), else by one
    git command (under git's own ``flock`` while others queue, see ``git_under_lock``).
    Anything unusual (an entry left for a deleted folder, a branch made meanwhile)
    makes the add fail; what it made is undone and None sends the caller the careful
    way, which looks at the worktree list first. Else True when the files are
    checked out (git's add of a small tree), False when the caller fills the folder.
    """
    if is_object_id(start_point):
        with repo_lock(repo):
            if register_worktree(common_git_dir(repo), path, branch, start_point):
                return False
    checkout = repo_lock(repo).queued == 0 and _small_tree(repo)
    args = ["worktree", "add", "--quiet", "--no-track", "-b", branch]
    if not checkout:
        args.insert(3, "--no-checkout")
    out = git_under_lock([*args, str(path), start_point], repo, check=False, retry_on_lock=True)
    if out.returncode == 0:
        return checkout
    with repo_lock(repo):
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        run_git(["worktree", "prune"], repo, check=False)
        if "already exists" not in out.stderr and branch_exists(repo, branch):
            run_git(["branch", "-D", branch], repo, check=False)  # made by the failed add
    return None


def _fill_worktree(repo: Path, path: Path, branch: str, *, new_branch: bool) -> None:
    """Check out the files of a worktree registered without them, outside the lock.

    ``checkout --force`` rather than ``reset --hard``: it runs the ``post-checkout``
    hook, as ``git worktree add`` does for the worktrees it checks out itself (the hook
    hears the new head as the previous one too, where ``worktree add`` gives the null id).

    If that fails the worktree is removed again (and a branch made for it deleted),
    so a retry starts from scratch instead of re-attaching a half-filled folder.
    """
    try:
        run_git(
            ["checkout", "--force", "--quiet"],
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
    if out.returncode != 0 or not same_path(Path(out.stdout.strip()), path):
        raise WorktreePathError(
            path,
            f"{path}: registered as a worktree of {repo} but git cannot use it"
            f" ({trim_message(out.stderr) if out.returncode else 'wrong top level'})"
            f" — run `git worktree repair {path}`, or remove the folder",
        )
