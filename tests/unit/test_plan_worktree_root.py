"""`worktree_root` inside the repository or its .git is a plan error, at its line, with the fix.

Worktrees made inside the user's checkout show as untracked folders in their
`git status` (and get picked up by their tests and linters); inside .git, git
itself takes the folders for part of the repository. A folder the repository
ignores is fine: nothing shows.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mission_control.plan.loader import load_plan
from tests.conftest import GitRepo

PLAN = """\
version: 1
defaults:
  repo: @REPO@
  base_branch: main
  timeout_minutes: 5
  worktree_root: @ROOT@
phases:
  - id: P1
    max_parallel_workstreams: 1
    workstreams:
      - {id: W1, tool: shell, command: [ls]}
"""
_AT = "plan.yaml:6:18: defaults.worktree_root:"


def write_plan(folder: Path, repo: Path, root: str) -> Path:
    plan = folder / "plan.yaml"
    plan.write_text(PLAN.replace("@REPO@", str(repo)).replace("@ROOT@", root))
    return plan


def problems(plan: Path) -> list[str]:
    return [str(p) for p in load_plan(plan).problems]


def test_inside_the_checkout_is_refused_with_the_way_out(git_repo: GitRepo, tmp_path: Path) -> None:
    repo = git_repo.path
    default = repo.parent / "worktrees"
    plan = write_plan(tmp_path, repo, str(repo / "worktrees"))
    assert problems(plan) == [
        f"{_AT} worktree_root '{repo / 'worktrees'}' is inside the repository {repo}:"
        " its worktrees would show as untracked files in `git status`"
        f" — put it outside the repository, e.g. '{default}' (the default),"
        " or add 'worktrees/' to .gitignore"
    ]
    # The checkout itself, and a relative path from a plan kept in the checkout.
    plan = write_plan(tmp_path, repo, str(repo))
    assert problems(plan) == [
        f"{_AT} worktree_root '{repo}' is inside the repository {repo}:"
        " its worktrees would show as untracked files in `git status`"
        f" — put it outside the repository, e.g. '{default}' (the default)"
    ]
    in_repo = write_plan(repo, repo, "work/trees")
    assert [p.message for p in load_plan(in_repo).problems] == [
        f"worktree_root '{repo / 'work' / 'trees'}' is inside the repository {repo}:"
        " its worktrees would show as untracked files in `git status`"
    ]


def test_a_symlink_that_leads_into_the_checkout_is_inside(
    git_repo: GitRepo, tmp_path: Path
) -> None:
    link = tmp_path / "looks-outside"
    link.symlink_to(git_repo.path / "sub", target_is_directory=True)
    (git_repo.path / "sub").mkdir()
    plan = write_plan(tmp_path, git_repo.path, str(link))
    assert [p.message for p in load_plan(plan).problems] == [
        f"worktree_root '{link}' is inside the repository {git_repo.path}:"
        " its worktrees would show as untracked files in `git status`"
    ]


@pytest.mark.parametrize("inside", [".git", ".git/mc-worktrees"])
def test_inside_the_git_folder_is_refused(git_repo: GitRepo, tmp_path: Path, inside: str) -> None:
    repo = git_repo.path
    plan = write_plan(tmp_path, repo, str(repo / inside))
    assert problems(plan) == [
        f"{_AT} worktree_root '{repo / inside}' is inside the git folder {repo / '.git'}"
        f" — put it outside the repository, e.g. '{repo.parent / 'worktrees'}' (the default)"
    ]


def test_the_git_folder_of_a_linked_worktree_counts_too(git_repo: GitRepo, tmp_path: Path) -> None:
    linked = tmp_path / "linked"
    git_repo.git("worktree", "add", "-q", "-b", "side", str(linked))
    common = git_repo.path / ".git"
    plan = write_plan(tmp_path, linked, str(common / "mc"))
    assert [p.message for p in load_plan(plan).problems] == [
        f"worktree_root '{common / 'mc'}' is inside the git folder {common}"
    ]


def test_outside_or_ignored_is_fine(git_repo: GitRepo, tmp_path: Path) -> None:
    repo = git_repo.path
    for root in (str(tmp_path / "elsewhere"), str(repo.parent / "worktrees")):
        assert problems(write_plan(tmp_path, repo, root)) == []
    git_repo.commit_file(".gitignore", ".worktrees/\n")
    assert problems(write_plan(tmp_path, repo, str(repo / ".worktrees"))) == []


def test_validate_exits_2_with_one_line(git_repo: GitRepo, tmp_path: Path) -> None:
    plan = write_plan(tmp_path, git_repo.path, str(git_repo.path / ".git" / "wt"))
    proc = subprocess.run(
        [sys.executable, "-m", "mission_control", "validate", str(plan)],
        capture_output=True,
        text=True,
        check=False,
        timeout=90,
        env=git_repo.env,
    )
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"{_AT} worktree_root"), proc.stderr
    assert "Traceback" not in proc.stderr
