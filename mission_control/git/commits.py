"""Finishing a workstream's worktree: commit everything it left, push the branch."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import GitError
from ..plan.model import Workstream
from .diffs import DiffStat, diff_changes
from .errors import PushRejectedError
from .identity import identity_config
from .index_stamp import untouched_since_checkout
from .locks import clear_stale_locks, settle_worktree
from .remotes import remote_env, set_upstream
from .repo import NETWORK_TIMEOUT as _NETWORK_TIMEOUT
from .repo import (
    head_commit,
    head_from_files,
    hooks_dir,
    require_linked_worktree,
    run_git,
    trim_message,
    worktree_file,
)
from .touched_paths import diffing, remember_changes
from .untracked import brought_not_ignored


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
    holds: str = ""
    """A commit ``head`` holds for certain (the one our commit was made on), or empty."""

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


@dataclass(frozen=True, slots=True)
class MadeCommit:
    """What committing left: the head, and the head before it."""

    head: str
    before: str
    committed: bool
    """A commit was made (``head`` was made on ``before``)."""
    told: tuple[DiffStat, tuple[tuple[str, str], ...]] | None = None
    """What the commit changed, as ``git add`` and ``git commit`` told it (see
    ``_told_changes``); None where a diff must be asked."""


def commit_work(
    path: Path, base_commit: str, message: str, body: str = "", *, verify: bool = True
) -> CommitResult:
    """Stage everything (honouring .gitignore) and commit it; keep the tool's own commits.

    ``changed`` is False ("no changes") when nothing was left to commit and the
    branch is still at ``base_commit``. A fallback identity is used only when
    git has none configured. ``verify=False`` skips the repository's commit hooks.
    """
    made = make_commit(path, base_commit, message, body, verify=verify)
    return describe_commit(path, base_commit, made)


def make_commit(
    path: Path,
    base_commit: str,
    message: str,
    body: str = "",
    *,
    verify: bool = True,
    settled: bool = False,
) -> MadeCommit:
    """``commit_work`` up to the commit: its head is known, its diff not yet asked.

    ``settled``: this driver prepared the worktree and has driven it since, so no
    killed driver's git can still run there; only lock files nobody holds are cleared.
    """
    path = Path(path)
    require_linked_worktree(path, "a commit")
    if settled:
        clear_stale_locks(path)
    else:
        settle_worktree(path)  # a killed mission-control's commit may still run here
    before = head_from_files(path) or head_commit(path)
    hooks = verify and _commit_hooks(path)
    # The index is still HEAD's tree and HEAD the base: git can tell what changed itself.
    telling = before == base_commit and not hooks and untouched_since_checkout(path)
    # What set-up brought in (.env, a node_modules link) is not the work.
    left_out = [f":(exclude,literal){rel}" for rel in brought_not_ignored(path)]
    pathspec = ["--", ".", *left_out] if left_out else []
    added = run_git(
        ["add", "--all", *(["--verbose"] if telling else []), *pathspec],
        path,
        what="staging the changes",
        retry_on_lock=True,
    )
    if not _index_entries(path):  # only then can the work be "every file deleted"
        tree = run_git(["write-tree"], path, what="reading the staged files").stdout.strip()
        _refuse_emptying(path, tree, base_commit)
    # Git says "nothing to commit" itself: "anything staged?" is asked first only where a
    # commit hook would run for nothing (and might stage files of its own); else only
    # when git refuses, to tell that reason from a hook's.
    if hooks and not _anything_staged(path):
        return MadeCommit(before, before, False)
    args = ["commit", "--no-edit", "--untracked-files=no", "-m", message]
    if not telling:
        args.insert(1, "--quiet")
    if body:
        args += ["-m", body]
    if not verify:
        args.append("--no-verify")
    out = run_git(args, path, config=identity_config(path), check=False)
    committed = out.returncode == 0
    if not committed and _anything_staged(path):
        raise GitError(
            f"{path}: committing the work failed: {trim_message(out.stderr, out.stdout)}"
            " — see the message (a commit hook may have refused it), then retry"
        )
    head = (head_from_files(path) or head_commit(path)) if committed else before
    told = _told_changes(added.stdout, out.stdout) if telling and committed else None
    return MadeCommit(head, before, committed, told)


def described_without_git(path: Path, base_commit: str, made: MadeCommit) -> CommitResult | None:
    """``describe_commit`` where it needs no git: git told what the commit changed, or
    nothing changed. None where a diff must be read."""
    if made.told is None and made.head != base_commit:
        return None
    return describe_commit(path, base_commit, made)


def describe_commit(path: Path, base_commit: str, made: MadeCommit) -> CommitResult:
    """What the branch changed against its base after ``make_commit`` (blocking)."""
    head, before = made.head, made.before
    stat = DiffStat(0, 0, 0)
    if head != base_commit and before == base_commit and made.told is not None:
        stat = made.told[0]
        remember_changes(path, base_commit, head, made.told[1])
    elif head != base_commit and before == base_commit:
        # Our commit sits on the base: this is also the forecast's diff.
        with diffing(path, base_commit, head):
            stat, changes = diff_changes(path, base_commit, head)
            remember_changes(path, base_commit, head, changes)
    elif head != base_commit:
        stat = diff_changes(path, base_commit, head)[0]
    return CommitResult(
        head=head,
        committed=made.committed,
        changed=head != base_commit,
        files=stat.files,
        insertions=stat.insertions,
        deletions=stat.deletions,
        holds=before if made.committed else "",
    )


_STAGED = re.compile(r"(add|remove) '(.*)'")
_SHORTSTAT = re.compile(
    r" (\d+) files? changed(?:, (\d+) insertions?\(\+\))?(?:, (\d+) deletions?\(-\))?"
)
_PAIRED = re.compile(r" (rename|copy) ")


def _told_changes(staged: str, summary: str) -> tuple[DiffStat, tuple[tuple[str, str], ...]] | None:
    """What a commit made on an index that was its parent's tree changed, from
    ``git add --verbose`` (each path staged: "add 'P'" or "remove 'P'") and the
    summary ``git commit`` prints (its shortstat); None where they cannot be taken
    at their word, and the diff is asked instead.

    The summary pairs renames, which ``--no-renames`` counts as a deletion and an
    addition: it must pair none, and count as many files as were staged. Paths are
    printed unquoted, so a name with a line break fails the parse. Deleted paths
    say "D", the others "M" (the forecast asks only which were deleted).
    """
    changes: list[tuple[str, str]] = []
    for line in staged.split("\n")[:-1]:  # git ends each line with "\n", and only there
        match = _STAGED.fullmatch(line)
        if match is None:
            return None
        changes.append(("D" if match[1] == "remove" else "M", match[2]))
    lines = summary.split("\n")
    stats = [m for m in map(_SHORTSTAT.fullmatch, lines) if m is not None]
    if len(stats) != 1 or any(_PAIRED.match(line) for line in lines):
        return None
    files, insertions, deletions = (int(n) if n else 0 for n in stats[0].groups())
    if files != len(changes) or len({path for _, path in changes}) != files:
        return None
    return DiffStat(files, insertions, deletions), tuple(changes)


_COMMIT_HOOKS = ("pre-commit", "prepare-commit-msg", "commit-msg")


def _commit_hooks(path: Path) -> bool:
    """The repository has a hook that ``git commit`` would run."""
    folder = hooks_dir(path)
    return any(os.access(folder / name, os.X_OK) for name in _COMMIT_HOOKS)


def _anything_staged(path: Path) -> bool:
    staged = run_git(["diff", "--cached", "--quiet"], path, check=False)
    if staged.returncode not in (0, 1):
        raise GitError(f"{path}: reading staged changes failed: {trim_message(staged.stderr)}")
    return staged.returncode == 1


def _index_entries(path: Path) -> int | None:
    """How many entries the worktree's index file holds, from its header; None if unreadable.

    The header is "DIRC", a version, then the count (big-endian). A split index
    counts only its own part, so 0 still means "look closer", never "empty".
    """
    try:
        with worktree_file(path, "index").open("rb") as index:
            header = index.read(12)
    except OSError:
        return None
    if len(header) < 12 or header[:4] != b"DIRC":
        return None
    return int.from_bytes(header[8:12], "big")


EMPTY_TREES = frozenset(
    (
        "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        "6ef19b41225c5369f1c104d45d8d85efa9b057b53b14b4b9b939dd74decc5321",
    )
)
"""The id of the tree with no files, in SHA-1 and in SHA-256 repositories."""


def _refuse_emptying(path: Path, tree: str, base_commit: str) -> None:
    """Refuse work (staged as ``tree``) that deletes every tracked file of a base that had some.

    That is what a worktree whose files were never checked out looks like, not
    what a tool means to do: committed and pushed, it would erase the project.
    """
    if tree not in EMPTY_TREES:
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


def push_branch(
    path: Path,
    remote: str,
    branch: str,
    *,
    force: bool = False,
    to: str | None = None,
    upstream: bool = True,
) -> None:
    """Push ``branch`` to ``remote`` and (with ``upstream``) make it the branch's upstream.

    Never prompts. A refusal raises ``PushRejectedError`` carrying git's own
    message; the local branch is left as it is. ``force`` uses
    ``--force-with-lease`` (for a branch rewritten by a fresh retry).
    """
    path = Path(path)
    args = ["push"]
    if force:
        args.append("--force-with-lease")
    args += [remote, f"refs/heads/{branch}:refs/heads/{to or branch}"]
    out = run_git(args, path, check=False, timeout=_NETWORK_TIMEOUT, env=remote_env(path, remote))
    if out.returncode != 0:
        message = " ".join(trim_message(out.stderr, out.stdout).split())
        raise PushRejectedError(path, remote, to or branch, message)
    if upstream and (to is None or to == branch):
        set_upstream(path, branch, remote)
