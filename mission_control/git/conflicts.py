"""Conflict forecast: which branches would conflict if merged, without merging.

``git merge-tree --write-tree`` (git 2.38+) performs a real three-way merge in
memory and writes only objects, so no worktree, index or ref is touched and the
forecast can run at any time, for any pair, in parallel with the workstreams
themselves. Exit code 1 means conflicts; with ``--name-only -z`` the output is
the merged tree's id followed by the conflicted paths, NUL-separated.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import GitError
from .repo import rev_parse, run_git, trim_message


def trial_merge(repo: Path, ours: str, theirs: str) -> list[str]:
    """The files that would conflict merging ``theirs`` into ``ours`` (empty: merges clean)."""
    out = run_git(
        [
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            "--allow-unrelated-histories",
            "-z",
            ours,
            theirs,
        ],
        repo,
        check=False,
    )
    if out.returncode == 0:
        return []
    items = [item for item in out.stdout.split("\0") if item]
    if out.returncode != 1 or not items:
        raise GitError(
            f"{repo}: trial merge of {theirs} into {ours} failed:"
            f" {trim_message(out.stderr, out.stdout)} — check git is 2.38 or newer and both exist"
        )
    files: list[str] = []
    for name in items[1:]:  # items[0] is the merged tree's id
        if name not in files:
            files.append(name)
    return files


def forecast_conflicts(
    repo: Path, branch: str, others: Sequence[str], base_ref: str
) -> list[tuple[str, list[str]]]:
    """Trial-merge ``branch`` with each of ``others`` and with ``base_ref``.

    Returns ``(other, files)`` for each one that conflicts, in the order given
    (``base_ref`` last), naming ``other`` exactly as passed. Others that no
    longer exist (a branch cleaned up) are skipped; a missing ``branch`` or
    ``base_ref`` raises ``GitError``.
    """
    repo = Path(repo)
    for ref in (branch, base_ref):
        if rev_parse(repo, ref) is None:
            raise GitError(
                f"{repo}: cannot forecast conflicts: {ref} does not exist"
                " — check the branch names (was the branch deleted?)"
            )
    conflicts: list[tuple[str, list[str]]] = []
    seen = {branch}
    for other in [*others, base_ref]:
        if other in seen:
            continue
        seen.add(other)
        if other != base_ref and rev_parse(repo, other) is None:
            continue
        files = trial_merge(repo, branch, other)
        if files:
            conflicts.append((other, files))
    return conflicts
