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
from dataclasses import dataclass
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
    folder the other made a file, or one emptied a folder the other adds to), so
    only such pairs are trial-merged; a branch ``branch`` already holds (a
    dependency, in a chain) merges as a no-op and is skipped too. A phase of a
    hundred branches costs a hundred cheap diffs, not a hundred merges.
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
    held = _merged_into(repo, branch_head, [o for o in others if heads.get(o) is not None])
    conflicts: list[tuple[str, list[str]]] = []
    seen = {branch}
    for other in [*others, base_ref]:
        if other in seen:
            continue
        seen.add(other)
        head = heads.get(other)
        if head is None:
            continue
        if other != base_ref and (
            other in held or not ours.may_conflict(_touched(repo, base_head, head))
        ):
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


def _merged_into(repo: Path, head: str, names: Sequence[str]) -> set[str]:
    """Those of the branches ``names`` whose tip ``head`` already holds, in one git call."""
    refs = {(n if n.startswith("refs/") else f"refs/heads/{n}"): n for n in names}
    if not refs:
        return set()
    out = run_git(
        ["for-each-ref", "--format=%(refname)", f"--merged={head}", "--", *refs],
        repo,
        what="listing the branches already merged",
    )
    return {refs[ref] for ref in out.stdout.split() if ref in refs}


@dataclass(frozen=True, slots=True)
class _Touched:
    """What a branch changed since it forked from the base."""

    paths: frozenset[str]
    """Files added, changed or deleted (a rename is a deletion and an addition)."""
    folders: frozenset[str]
    """Every folder above those files."""
    emptied: frozenset[str]
    """Every folder above a deleted file: merge-ort follows a folder renamed on one
    side with files the other side adds to it, and reports where they land."""

    def may_conflict(self, other: _Touched) -> bool:
        return bool(
            self.paths & other.paths
            or self.folders & other.paths
            or other.folders & self.paths
            or self.emptied & other.folders
            or other.emptied & self.folders
        )


_touched_cache: dict[tuple[str, str, str], _Touched] = {}
_cache_lock = threading.Lock()


def _touched(repo: Path, base: str, head: str) -> _Touched:
    """Paths changed between the merge base of ``base`` and ``head``, and ``head``."""
    key = (str(repo), base, head)
    with _cache_lock:
        cached = _touched_cache.get(key)
    if cached is not None:
        return cached
    # --no-renames lists a rename's old and new path, so rename conflicts overlap too.
    out = run_git(
        ["diff", "--name-status", "--no-renames", "-z", f"{base}...{head}"],
        repo,
        what="listing a branch's changed files",
    )
    items = out.stdout.split("\0")
    paths: set[str] = set()
    folders: set[str] = set()
    emptied: set[str] = set()
    for status, path in zip(items[::2], items[1::2], strict=False):
        if not path:
            continue
        paths.add(path)
        above = _folders(path)
        folders.update(above)
        if status == "D":
            emptied.update(above)
    touched = _Touched(frozenset(paths), frozenset(folders), frozenset(emptied))
    with _cache_lock:
        if len(_touched_cache) > 4096:
            _touched_cache.clear()
        _touched_cache[key] = touched
    return touched


def _folders(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
