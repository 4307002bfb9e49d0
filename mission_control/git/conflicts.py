"""Conflict forecast: which branches would conflict if merged, without merging.

``git merge-tree --write-tree`` (git 2.38+) performs a real three-way merge in
memory and writes only objects, so no worktree, index or ref is touched and the
forecast can run at any time, for any pair, in parallel with the workstreams
themselves. Exit code 1 means conflicts; with ``--name-only -z`` the output is
the merged tree's id followed by the conflicted paths, NUL-separated.
"""

from __future__ import annotations

import threading
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

    Two branches can only conflict where both touched a path (or one touched a
    folder the other made a file), so only such pairs are trial-merged: a phase
    of a hundred branches costs a hundred cheap diffs, not a hundred merges.
    """
    repo = Path(repo)
    names = [branch, base_ref, *others]
    heads = _heads(repo, names)
    for ref in (branch, base_ref):
        if heads.get(ref) is None:
            raise GitError(
                f"{repo}: cannot forecast conflicts: {ref} does not exist"
                " — check the branch names (was the branch deleted?)"
            )
    base_head, branch_head = heads[base_ref], heads[branch]
    assert base_head is not None and branch_head is not None
    ours = _touched(repo, base_head, branch_head)
    conflicts: list[tuple[str, list[str]]] = []
    seen = {branch}
    for other in [*others, base_ref]:
        if other in seen:
            continue
        seen.add(other)
        head = heads.get(other)
        if head is None:
            continue
        if other != base_ref and not _overlap(ours, _touched(repo, base_head, head)):
            continue
        files = trial_merge(repo, branch, other)
        if files:
            conflicts.append((other, files))
    return conflicts


def _heads(repo: Path, refs: Sequence[str]) -> dict[str, str | None]:
    """Each ref's commit in one git call (None for a ref that does not exist)."""
    unique = list(dict.fromkeys(refs))
    # Branch names cannot start with "-", so the refs cannot be read as options.
    out = run_git(["rev-parse", *unique], repo, check=False)
    found = out.stdout.split()
    if out.returncode == 0 and len(found) == len(unique):
        return dict(zip(unique, found, strict=True))
    return {ref: rev_parse(repo, ref) for ref in unique}  # one is missing: ask one by one


_touched_cache: dict[tuple[str, str, str], frozenset[str]] = {}
_cache_lock = threading.Lock()


def _touched(repo: Path, base: str, head: str) -> frozenset[str]:
    """Paths changed between the merge base of ``base`` and ``head``, and ``head``."""
    key = (str(repo), base, head)
    with _cache_lock:
        cached = _touched_cache.get(key)
    if cached is not None:
        return cached
    # --no-renames lists a rename's old and new path, so rename conflicts overlap too.
    out = run_git(
        ["diff", "--name-only", "--no-renames", "-z", f"{base}...{head}"],
        repo,
        what="listing a branch's changed files",
    )
    paths = frozenset(p for p in out.stdout.split("\0") if p)
    with _cache_lock:
        if len(_touched_cache) > 4096:
            _touched_cache.clear()
        _touched_cache[key] = paths
    return paths


def _overlap(a: frozenset[str], b: frozenset[str]) -> bool:
    if a & b:
        return True
    return bool(_folders(a) & b or _folders(b) & a)


def _folders(paths: frozenset[str]) -> set[str]:
    found: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            found.add("/".join(parts[:i]))
    return found
