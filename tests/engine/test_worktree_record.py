"""A new worktree registered without git: what git would make, or nothing at all.

``register_worktree`` writes the branch and the worktree's record itself; whenever it
cannot do that plainly it must leave the repository exactly as it found it, so that
git's own ``worktree add`` runs instead.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

import pytest

from mission_control.git.repo import common_git_dir
from mission_control.git.worktree_record import register_worktree

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import GitSandbox


def _state(sb: GitSandbox) -> tuple[str, str, list[str]]:
    """What a refused registration must leave as it was: refs, worktrees, folders."""
    return (
        sb.git(sb.repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        sb.git(sb.repo, "worktree", "list", "--porcelain"),
        sorted(os.listdir(sb.worktree_root)) if sb.worktree_root.exists() else [],
    )


def test_the_worktree_made_is_one_git_uses_as_its_own(local_git_sandbox: GitSandbox) -> None:
    sb = local_git_sandbox
    head = sb.git(sb.repo, "rev-parse", "main")
    path = sb.worktree_root / "P-A"

    assert register_worktree(common_git_dir(sb.repo), path, "ws/P/A", head)

    sb.git(path, "checkout", "--force", "--quiet")
    assert sb.git(path, "rev-parse", "--abbrev-ref", "HEAD") == "ws/P/A"
    assert sb.git(path, "status", "--porcelain") == ""
    sb.write(path / "new.txt", "new\n")
    sb.git(path, "add", "new.txt")
    sb.git(path, "commit", "-q", "-m", "new")
    assert sb.git(sb.repo, "log", "--format=%s", "-1", "ws/P/A") == "new"
    sb.git(sb.repo, "worktree", "remove", str(path))
    sb.git(sb.repo, "branch", "-D", "ws/P/A")
    assert not (common_git_dir(sb.repo) / "worktrees" / "P-A").exists()


@pytest.mark.parametrize(
    "branch",
    ["ws/P/a b", "ws/P/é", "ws/P/x.lock", "ws//P", "ws/P/@{1}", "-ws", "ws/../P", "ws/P."],
)
def test_a_branch_name_git_might_refuse_or_change_is_left_to_git(
    local_git_sandbox: GitSandbox, branch: str
) -> None:
    sb = local_git_sandbox
    head = sb.git(sb.repo, "rev-parse", "main")
    before = _state(sb)

    assert not register_worktree(common_git_dir(sb.repo), sb.worktree_root / "P-A", branch, head)

    assert _state(sb) == before


def _taken_name(sb: GitSandbox, path: Path) -> None:
    sb.git(sb.repo, "worktree", "add", "-q", "-b", "other", str(sb.tmp / "elsewhere" / path.name))


def _branch_there(sb: GitSandbox, path: Path) -> None:
    sb.git(sb.repo, "branch", "ws/P/A", "main")


def _branch_packed(sb: GitSandbox, path: Path) -> None:
    sb.git(sb.repo, "branch", "ws/P/A", "main")
    sb.git(sb.repo, "pack-refs", "--all")


def _branch_locked(sb: GitSandbox, path: Path) -> None:
    lock = common_git_dir(sb.repo) / "refs" / "heads" / "ws" / "P" / "A.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("held by another git\n")


def _folder_in_the_way(sb: GitSandbox, path: Path) -> None:
    sb.write(path / "mine.txt", "the user's\n")


def _a_branch_where_a_folder_must_go(sb: GitSandbox, path: Path) -> None:
    sb.git(sb.repo, "branch", "ws/P", "main")  # refs/heads/ws/P is a file: no folder P


def _a_record_for_the_folder(sb: GitSandbox, path: Path) -> None:
    elsewhere = sb.tmp / "elsewhere"
    sb.git(sb.repo, "worktree", "add", "-q", "-b", "other", str(elsewhere))
    path.parent.mkdir(parents=True, exist_ok=True)
    sb.git(sb.repo, "worktree", "move", str(elsewhere), str(path))  # its record: "elsewhere"
    shutil.rmtree(path)  # deleted by hand: git still lists it


def _per_worktree_config(sb: GitSandbox, path: Path) -> None:
    sb.git(sb.repo, "config", "core.repositoryformatversion", "1")
    sb.git(sb.repo, "config", "extensions.worktreeConfig", "true")


@pytest.mark.parametrize(
    "obstacle",
    [
        _taken_name,
        _branch_there,
        _branch_packed,
        _branch_locked,
        _folder_in_the_way,
        _a_branch_where_a_folder_must_go,
        _a_record_for_the_folder,
        _per_worktree_config,
    ],
)
def test_anything_in_the_way_leaves_the_repository_as_it_was(
    local_git_sandbox: GitSandbox, obstacle: object
) -> None:
    sb = local_git_sandbox
    head = sb.git(sb.repo, "rev-parse", "main")
    path = sb.worktree_root / "P-A"
    assert callable(obstacle)
    obstacle(sb, path)
    lock = common_git_dir(sb.repo) / "refs" / "heads" / "ws" / "P" / "A.lock"
    held = lock.exists()
    before = _state(sb)

    assert not register_worktree(common_git_dir(sb.repo), path, "ws/P/A", head)

    assert _state(sb) == before
    assert lock.exists() == held  # another git's lock is not ours to remove
