"""The forecast's pre-check skips only pairs that cannot conflict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mission_control.git.conflicts import forecast_conflicts
from mission_control.git.worktrees import commit_work, prepare_worktree

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from conftest import GitSandbox


def _branch(sb: GitSandbox, ws_id: str, change: Callable[[Path], None]) -> str:
    prepared = prepare_worktree(sb.ws(ws_id), [])
    change(prepared.path)
    commit_work(prepared.path, prepared.base_commit, f"{ws_id} work")
    return prepared.branch


def test_a_file_against_a_folder_of_the_same_name_conflicts(
    local_git_sandbox: GitSandbox,
) -> None:
    sb = local_git_sandbox
    a = _branch(sb, "A", lambda p: sb.write(p / "x", "a file\n"))
    b = _branch(sb, "B", lambda p: sb.write(p / "x" / "y", "a file in a folder\n"))
    assert [other for other, _ in forecast_conflicts(sb.repo, a, [b], "main")] == [b]


def test_a_folder_renamed_on_one_side_and_added_to_on_the_other_conflicts(
    local_git_sandbox: GitSandbox,
) -> None:
    sb = local_git_sandbox
    for name in ("one", "two", "three"):
        sb.write(sb.repo / "d" / name, f"{name}\n")
    sb.git(sb.repo, "add", "-A")
    sb.git(sb.repo, "commit", "-q", "-m", "a folder")
    a = _branch(sb, "A", lambda p: sb.git(p, "mv", "d", "e"))
    b = _branch(sb, "B", lambda p: sb.write(p / "d" / "new", "new\n"))
    assert [other for other, _ in forecast_conflicts(sb.repo, a, [b], "main")] == [b]
    assert [other for other, _ in forecast_conflicts(sb.repo, b, [a], "main")] == [a]


def test_edits_far_apart_in_one_file_are_merged_to_find_out(
    local_git_sandbox: GitSandbox,
) -> None:
    sb = local_git_sandbox
    a = _branch(sb, "A", lambda p: sb.edit_line(p / "f.txt", 0, "top"))
    b = _branch(sb, "B", lambda p: sb.edit_line(p / "f.txt", 9, "bottom"))
    c = _branch(sb, "C", lambda p: sb.edit_line(p / "f.txt", 0, "top too"))
    assert forecast_conflicts(sb.repo, a, [b, c], "main") == [(c, ["f.txt"])]


def test_a_chain_is_never_trial_merged(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    a = prepare_worktree(sb.ws("A"), [])
    sb.edit_line(a.path / "f.txt", 0, "A")
    commit_work(a.path, a.base_commit, "A")
    b = prepare_worktree(sb.ws("B"), [a.branch])
    sb.edit_line(b.path / "f.txt", 0, "B on top of A")
    commit_work(b.path, b.base_commit, "B")
    # B holds A, and changes A's line: an ancestor merges clean whatever it touched.
    assert forecast_conflicts(sb.repo, b.branch, [a.branch], "main") == []
    assert forecast_conflicts(sb.repo, a.branch, [b.branch], "main") == []
