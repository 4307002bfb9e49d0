"""Conflict forecast by trial merges that touch no worktree."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from mission_control.errors import GitError
from mission_control.git.conflicts import forecast, forecast_conflicts, trial_merge
from mission_control.git.worktrees import commit_work, prepare_worktree

if TYPE_CHECKING:
    from conftest import GitSandbox


def _branch_editing(sb: GitSandbox, ws_id: str, edits: dict[str, tuple[int, str]]) -> str:
    """A finished workstream whose branch changes one line in each named file."""
    prepared = prepare_worktree(sb.ws(ws_id), [])
    for name, (index, text) in edits.items():
        path = prepared.path / name
        if path.exists():
            sb.edit_line(path, index, text)
        else:
            sb.write(path, f"{text}\n")
    commit_work(prepared.path, prepared.base_commit, f"{ws_id} work")
    return prepared.branch


def test_same_lines_conflict_naming_the_file(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    a = _branch_editing(sb, "A", {"f.txt": (0, "A was here"), "a.txt": (0, "new")})
    b = _branch_editing(sb, "B", {"f.txt": (0, "B was here")})
    before = sb.snapshot()
    worktree_heads = {
        p: sb.git(sb.worktree_root / p, "rev-parse", "HEAD") for p in ("PH1-A", "PH1-B")
    }

    assert forecast_conflicts(sb.repo, a, [b], "main") == [(b, ["f.txt"])]
    assert forecast_conflicts(sb.repo, b, [a], "main") == [(a, ["f.txt"])]

    # Nothing was touched: not the user's checkout, not the worktrees, not the branches.
    assert sb.snapshot() == before
    for folder, head in worktree_heads.items():
        assert sb.git(sb.worktree_root / folder, "rev-parse", "HEAD") == head
        assert sb.git(sb.worktree_root / folder, "status", "--porcelain") == ""


def test_disjoint_edits_do_not_conflict(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    a = _branch_editing(sb, "A", {"f.txt": (0, "top changed")})
    b = _branch_editing(sb, "B", {"f.txt": (9, "bottom changed"), "b.txt": (0, "b")})
    c = _branch_editing(sb, "C", {"c.txt": (0, "c")})

    assert forecast_conflicts(sb.repo, a, [b, c], "main") == []
    assert trial_merge(sb.repo, b, a) == []


def test_a_conflict_with_the_moved_base_is_reported(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    a = _branch_editing(sb, "A", {"f.txt": (3, "A's line 4"), "g.txt": (0, "A's g")})
    b = _branch_editing(sb, "B", {"f.txt": (3, "B's line 4")})
    c = _branch_editing(sb, "C", {"h.txt": (0, "C")})
    # The base moves on with edits to the same places (in the user's checkout, by the user).
    sb.edit_line(sb.repo / "f.txt", 3, "main's line 4")
    sb.write(sb.repo / "g.txt", "main's g\n")
    sb.git(sb.repo, "add", "-A")
    sb.git(sb.repo, "commit", "-q", "-m", "main moves on")

    result = forecast_conflicts(sb.repo, a, [b, c, a], "main")

    assert result == [(b, ["f.txt"]), ("main", ["f.txt", "g.txt"])]


def test_missing_refs(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    a = _branch_editing(sb, "A", {"f.txt": (0, "A")})
    # A branch that was cleaned up is skipped; a missing subject or base is an error.
    assert forecast_conflicts(sb.repo, a, ["ws/PH1/gone"], "main") == []
    with pytest.raises(GitError, match="ws/PH1/nope does not exist"):
        forecast_conflicts(sb.repo, "ws/PH1/nope", [a], "main")
    with pytest.raises(GitError, match="origin/main does not exist"):
        forecast_conflicts(sb.repo, a, [], "origin/main")


def test_forecast_from_a_worktree_path_and_remote_base(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    a = _branch_editing(sb, "A", {"f.txt": (0, "A")})
    b = _branch_editing(sb, "B", {"f.txt": (0, "B")})
    worktree = sb.worktree_root / "PH1-A"
    assert forecast_conflicts(worktree, a, [b], "refs/remotes/origin/main") == [(b, ["f.txt"])]


def test_a_file_where_the_other_branch_made_a_folder_is_forecast(
    local_git_sandbox: GitSandbox,
) -> None:
    sb = local_git_sandbox
    a = _branch_editing(sb, "A", {"docs": (0, "a file named docs")})
    b = _branch_editing(sb, "B", {"docs/guide.md": (0, "a guide")})
    found = forecast_conflicts(sb.repo, a, [b], "main")
    assert [other for other, _ in found] == [b]


def test_a_deletion_against_an_edit_is_forecast(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    prepared = prepare_worktree(sb.ws("R"), [])
    sb.git(prepared.path, "mv", "f.txt", "g.txt")
    sb.git(prepared.path, "rm", "-q", "--cached", "g.txt")
    (prepared.path / "g.txt").unlink()
    commit_work(prepared.path, prepared.base_commit, "R removes f.txt")
    edit = _branch_editing(sb, "E", {"f.txt": (0, "edited")})
    found = forecast_conflicts(sb.repo, edit, [prepared.branch], "main")
    assert found and found[0][0] == prepared.branch and "f.txt" in found[0][1]


def test_heads_finishing_made_are_taken_and_a_branch_deleted_since_is_skipped(
    local_git_sandbox: GitSandbox,
) -> None:
    sb = local_git_sandbox
    a = _branch_editing(sb, "A", {"f.txt": (0, "A was here")})
    b = _branch_editing(sb, "B", {"f.txt": (0, "B was here")})
    c = _branch_editing(sb, "C", {"f.txt": (0, "C was here")})
    heads = {name: sb.git(sb.repo, "rev-parse", name) for name in (a, b)}

    assert forecast(sb.repo, c, [a, b], "main", known_heads=heads).conflicts == [
        (a, ["f.txt"]),
        (b, ["f.txt"]),
    ]
    sb.git(sb.worktree_root / "PH1-A", "checkout", "-q", "--detach")
    sb.git(sb.repo, "branch", "-D", a)  # cleaned up by hand: its known head no longer counts
    assert forecast(sb.repo, c, [a, b], "main", known_heads=heads).conflicts == [(b, ["f.txt"])]
