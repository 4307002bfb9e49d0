"""The text of a workstream's work: its worktree (committed or not) against its base."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .repo import run_git


@dataclass(frozen=True, slots=True)
class DiffStat:
    files: int
    insertions: int
    deletions: int

    def __str__(self) -> str:
        noun = "file" if self.files == 1 else "files"
        return f"{self.files} {noun} changed, +{self.insertions} -{self.deletions}"


def diff_changes(path: Path, base: str, head: str) -> tuple[DiffStat, list[tuple[str, str]]]:
    """``diffstat`` and each changed path with its status letter (A, M, D...), in one diff."""
    out = run_git(
        ["diff", "--raw", "--numstat", "--no-renames", "--no-ext-diff", "-z", base, head, "--"],
        path,
        what=f"diffing {head} against {base[:12]}",
    )
    items = out.stdout.split("\0")
    changes: list[tuple[str, str]] = []
    files = insertions = deletions = 0
    i = 0
    while i < len(items):
        item = items[i]
        if item.startswith(":"):  # ":<modes> <ids> <status>", then the path
            if i + 1 < len(items):
                changes.append((item.rsplit(" ", 1)[-1][:1], items[i + 1]))
            i += 2
            continue
        parts = item.split("\t", 2)
        if len(parts) == 3:  # "<added>\t<deleted>\t<path>"; binary files say "-"
            files += 1
            insertions += int(parts[0]) if parts[0].isdigit() else 0
            deletions += int(parts[1]) if parts[1].isdigit() else 0
        i += 1
    return DiffStat(files, insertions, deletions), changes


def diffstat(path: Path, base: str, head: str = "HEAD") -> DiffStat:
    """Files, lines added and lines removed between two commits (binary files count 0 lines)."""
    out = run_git(
        ["diff", "--numstat", "--no-renames", "--no-ext-diff", base, head, "--"],
        path,
        what=f"diffing {head} against {base[:12]}",
    )
    files = insertions = deletions = 0
    for line in out.stdout.splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        files += 1
        insertions += int(parts[0]) if parts[0].isdigit() else 0
        deletions += int(parts[1]) if parts[1].isdigit() else 0
    return DiffStat(files, insertions, deletions)


def diff_against(worktree: Path, base_commit: str, *, max_bytes: int = 2_000_000) -> str:
    """The worktree's changes since ``base_commit``, new files included, with colours.

    New files are diffed against /dev/null one by one (``--no-index``), so the
    worktree's index is never touched. Output past ``max_bytes`` is cut.
    """
    listed = run_git(["ls-files", "--others", "--exclude-standard", "-z"], worktree)
    untracked = [name for name in listed.stdout.split("\0") if name]
    diff = run_git(
        ["diff", "--color=always", "--stat", "--patch", base_commit, "--"],
        worktree,
        what="reading the diff",
    ).stdout
    for name in untracked[:200]:
        extra = run_git(
            ["diff", "--color=always", "--no-index", "--", "/dev/null", name],
            worktree,
            check=False,
        ).stdout
        diff += extra
    return _cut(diff, max_bytes)


def diff_between(repo: Path, base_commit: str, head: str, *, max_bytes: int = 2_000_000) -> str:
    """The committed changes from ``base_commit`` to ``head`` (a branch that came back
    from elsewhere, with no worktree here), with colours; cut like ``diff_against``."""
    diff = run_git(
        ["diff", "--color=always", "--stat", "--patch", base_commit, head, "--"],
        repo,
        what="reading the diff",
    ).stdout
    return _cut(diff, max_bytes)


def _cut(diff: str, max_bytes: int) -> str:
    if len(diff) > max_bytes:
        diff = diff[:max_bytes] + "\n… (diff cut: open a shell in the worktree for the rest)\n"
    return diff or "no changes against the base\n"
