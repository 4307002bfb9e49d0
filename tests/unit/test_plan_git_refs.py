"""Read-only repository facts for the loader, from real repositories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mission_control.git.refs import RepoCheckError, branch_exists, is_git_repo, read_repo_refs


def test_reads_branches_remotes_and_top_level(git_repo: Any) -> None:
    git_repo.git("branch", "feature")
    (git_repo.path / "sub").mkdir()
    refs = read_repo_refs(git_repo.path / "sub")
    assert refs.toplevel == git_repo.path.resolve()
    assert refs.bare is False
    assert refs.local_branches == {"main", "feature"}
    assert "origin/main" in refs.remote_branches
    assert refs.remotes == {"origin"}
    assert refs.has_branch("feature") and refs.has_branch("main", "origin")
    assert not refs.has_branch("main", "upstream") or "main" in refs.local_branches
    assert refs.branches == ["feature", "main"]


def test_remote_only_branch(git_repo: Any) -> None:
    git_repo.git("push", "-q", "origin", "main:release")
    git_repo.git("fetch", "-q", "origin")
    assert branch_exists(git_repo.path, "release")
    assert not branch_exists(git_repo.path, "release", remote="upstream")
    assert not branch_exists(git_repo.path, "nope")


def test_bare_repository(git_repo: Any) -> None:
    refs = read_repo_refs(git_repo.origin)
    assert refs.bare is True
    assert refs.toplevel == git_repo.origin.resolve()
    assert "main" in refs.local_branches


def test_problems_name_the_path_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(RepoCheckError) as missing:
        read_repo_refs(tmp_path / "nope")
    assert missing.value.problem == "does not exist"
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(RepoCheckError) as not_git:
        read_repo_refs(plain)
    assert not_git.value.problem == "is not a git repository"
    assert "git init" in str(not_git.value)
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(RepoCheckError, match="is not a folder"):
        read_repo_refs(file)
    assert not is_git_repo(plain) and not is_git_repo(tmp_path / "nope") and not is_git_repo(file)


def test_is_git_repo_ignores_git_dir_from_the_environment(
    git_repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("GIT_DIR", str(git_repo.path / ".git"))
    assert is_git_repo(git_repo.path)
    assert not is_git_repo(plain)
