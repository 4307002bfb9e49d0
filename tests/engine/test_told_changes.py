"""The commit step takes what changed from ``git add --verbose`` and ``git commit``'s summary
where it can, and diffs where it cannot: either way the figures are what a diff says."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mission_control.git.diffs import DiffStat, diff_changes
from mission_control.git.worktrees import (
    PreparedWorktree,
    describe_commit,
    make_commit,
    prepare_worktree,
)
from tests.helpers.git_trace import git_commands, traced

if TYPE_CHECKING:
    from conftest import GitSandbox


def _diffed(prepared: PreparedWorktree, head: str) -> tuple[DiffStat, set[tuple[str, str]]]:
    """The diff's figures, its letters folded as the commit step tells them (D or M)."""
    stat, changes = diff_changes(prepared.path, prepared.base_commit, head)
    return stat, {("D" if s == "D" else "M", p) for s, p in changes}


def _work(sb: GitSandbox, path: Path) -> None:
    sb.edit_line(path / "f.txt", 2, "changed")
    (path / "README.md").unlink()
    (path / "data.bin").write_bytes(b"\0\1\2")
    sb.write(path / "new" / "tab\tname's.txt", "x\ny\n")
    sb.write(path / "über.txt", "ü\n")
    sb.write(path / "empty.txt", "")
    sb.write(path / "line\u2028separator.txt", "z\n")  # a line break to str.splitlines
    (path / "f.txt").chmod(0o755)


def test_git_tells_what_the_commit_changed_without_a_diff(
    local_git_sandbox: GitSandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = local_git_sandbox
    warm = prepare_worktree(sb.ws("W"), [])  # what is asked once per repository, asked now
    make_commit(warm.path, warm.base_commit, "W")
    prepared = prepare_worktree(sb.ws("A"), [])
    _work(sb, prepared.path)
    trace = traced(tmp_path, monkeypatch)

    made = make_commit(prepared.path, prepared.base_commit, "A")
    done = describe_commit(prepared.path, prepared.base_commit, made)
    commands = [" ".join(argv.split()[:2]) for argv in git_commands(trace)]

    assert commands == ["add --all", "commit --no-edit"]
    assert made.told is not None
    stat, changes = _diffed(prepared, done.head)
    assert (made.told[0], set(made.told[1])) == (stat, changes)
    assert (done.files, done.insertions, done.deletions) == (7, 5, 2)


def _agent_staged(sb: GitSandbox, path: Path) -> None:
    sb.write(path / "staged.txt", "staged by the agent\n")
    sb.git(path, "add", "staged.txt")


def _agent_staged_then_removed(sb: GitSandbox, path: Path) -> None:
    """``git add --verbose`` then names x.txt (gone) but not y.txt (staged): as many paths
    as the commit changes, not the same ones. Only the index's stamp tells."""
    sb.write(path / "x.txt", "x\n")
    sb.write(path / "y.txt", "y\n")
    sb.git(path, "add", "x.txt", "y.txt")
    (path / "x.txt").unlink()


def _agent_committed(sb: GitSandbox, path: Path) -> None:
    sb.write(path / "own.txt", "committed by the agent\n")
    sb.git(path, "add", "own.txt")
    sb.git(path, "commit", "-q", "-m", "own")


def _renamed(sb: GitSandbox, path: Path) -> None:
    (path / "f.txt").rename(path / "g.txt")


def _line_break_name(sb: GitSandbox, path: Path) -> None:
    sb.write(path / "two\nlines.txt", "x\n")


def _hooked(sb: GitSandbox, path: Path) -> None:
    hook = sb.repo / ".git" / "hooks" / "pre-commit"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(0o755)


@pytest.mark.parametrize(
    "before",
    [
        _agent_staged,
        _agent_staged_then_removed,
        _agent_committed,
        _renamed,
        _line_break_name,
        _hooked,
    ],
    ids=[
        "agent-staged",
        "agent-staged-then-removed",
        "agent-committed",
        "renamed",
        "line-break-name",
        "commit-hook",
    ],
)
def test_what_git_cannot_tell_is_diffed(
    local_git_sandbox: GitSandbox, before: Callable[[GitSandbox, Path], None]
) -> None:
    sb = local_git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    before(sb, prepared.path)
    sb.write(prepared.path / "more.txt", "more\n")

    made = make_commit(prepared.path, prepared.base_commit, "A")
    done = describe_commit(prepared.path, prepared.base_commit, made)

    assert made.told is None
    stat, _ = _diffed(prepared, done.head)
    assert DiffStat(done.files, done.insertions, done.deletions) == stat


def test_a_second_commit_in_the_same_worktree_is_diffed(local_git_sandbox: GitSandbox) -> None:
    """A retry's commit sits on the first one, not on the base: diffed, both files counted."""
    sb = local_git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    sb.write(prepared.path / "a.txt", "a\n")
    first = make_commit(prepared.path, prepared.base_commit, "A")
    again = prepare_worktree(sb.ws("A"), [])
    sb.write(prepared.path / "b.txt", "b\n")

    made = make_commit(again.path, again.base_commit, "A")

    assert first.told is not None and made.told is None
    assert describe_commit(again.path, again.base_commit, made).files == 2
