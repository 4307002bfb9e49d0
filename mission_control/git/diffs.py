"""The text of a workstream's work: its worktree (committed or not) against its base."""

from __future__ import annotations

from pathlib import Path

from .repo import run_git


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
