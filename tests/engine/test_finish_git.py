"""Finishing a workstream in git: commit what the tool left, push, and the failures."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mission_control.errors import GitError
from mission_control.git.errors import PushRejectedError
from mission_control.git.remotes import fetch_branch
from mission_control.git.repo import is_dirty
from mission_control.git.worktrees import (
    commit_message,
    commit_work,
    prepare_worktree,
    push_branch,
)

if TYPE_CHECKING:
    from conftest import GitSandbox

MESSAGE = "[PH1::A] Workstream A"
BODY = "mission-control run r-20240101-000000, attempt 1, tool shell."


def test_commit_message_names_the_workstream_run_attempt_and_tool(
    local_git_sandbox: GitSandbox,
) -> None:
    ws = local_git_sandbox.ws("A")
    assert commit_message(ws, "r-20240101-000000", 1) == (MESSAGE, BODY)


def test_commit_and_push_appear_in_origin(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    sb.write(prepared.path / "src" / "new.py", "print('hi')\n")
    sb.edit_line(prepared.path / "f.txt", 0, "line one, changed")
    sb.write(prepared.path / "trace.log", "ignored by .gitignore\n")

    result = commit_work(prepared.path, prepared.base_commit, MESSAGE, BODY)

    assert result.committed and result.changed
    assert (result.files, result.insertions, result.deletions) == (2, 2, 1)
    assert result.diffstat == "2 files changed, +2 -1"
    assert result.head == sb.git(prepared.path, "rev-parse", "HEAD")
    assert sb.git(prepared.path, "log", "-1", "--format=%B") == f"{MESSAGE}\n\n{BODY}"
    assert sb.git(prepared.path, "log", "-1", "--format=%an <%ae>") == (
        "Test Author <author@example.com>"
    )
    committed = sb.git(prepared.path, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(committed) == ["f.txt", "src/new.py"]
    assert (prepared.path / "trace.log").exists()  # ignored: neither committed nor removed

    push_branch(prepared.path, "origin", prepared.branch)

    assert sb.origin_head(prepared.branch) == result.head
    assert sb.git(sb.repo, "config", f"branch.{prepared.branch}.remote") == "origin"
    assert sb.git(sb.repo, "config", f"branch.{prepared.branch}.merge") == (
        f"refs/heads/{prepared.branch}"
    )
    assert sb.git(prepared.path, "rev-parse", "--abbrev-ref", "@{upstream}") == (
        f"origin/{prepared.branch}"
    )
    # Pushing again with nothing new is fine.
    push_branch(prepared.path, "origin", prepared.branch)


def test_no_changes(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    sb.write(prepared.path / "only.log", "ignored\n")

    result = commit_work(prepared.path, prepared.base_commit, MESSAGE, BODY)

    assert not result.committed and not result.changed
    assert result.head == prepared.base_commit
    assert (result.files, result.insertions, result.deletions) == (0, 0, 0)
    assert result.diffstat == "no changes"


def test_the_tools_own_commits_are_kept(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    sb.write(prepared.path / "by_tool.txt", "one\ntwo\n")
    sb.git(prepared.path, "add", "by_tool.txt")
    sb.git(prepared.path, "commit", "-q", "-m", "aider: add by_tool.txt")
    tool_commit = sb.git(prepared.path, "rev-parse", "HEAD")
    sb.write(prepared.path / "left_over.txt", "three\n")

    result = commit_work(prepared.path, prepared.base_commit, MESSAGE, BODY)

    assert result.committed and result.changed
    assert sb.git(prepared.path, "rev-parse", "HEAD~1") == tool_commit
    assert sb.git(prepared.path, "rev-list", "--count", f"{prepared.base_commit}..HEAD") == "2"
    assert (result.files, result.insertions, result.deletions) == (2, 3, 0)
    assert not is_dirty(prepared.path)


def test_only_the_tools_commits_count_as_changes(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    sb.write(prepared.path / "by_tool.txt", "one\n")
    sb.git(prepared.path, "add", "by_tool.txt")
    sb.git(prepared.path, "commit", "-q", "-m", "tool commit")

    result = commit_work(prepared.path, prepared.base_commit, MESSAGE, BODY)

    assert not result.committed and result.changed
    assert result.head == sb.git(prepared.path, "rev-parse", "HEAD")
    assert result.files == 1


def test_commit_works_without_any_git_identity(
    git_sandbox: GitSandbox, isolated_git_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(name)
    # Forbid git's guess from the user name and host name: no identity at all.
    sb.write(isolated_git_home / ".gitconfig", "[user]\n\tuseConfigOnly = true\n")
    sb.write(prepared.path / "x.txt", "x\n")

    result = commit_work(prepared.path, prepared.base_commit, MESSAGE, BODY)

    assert result.committed
    who = sb.git(prepared.path, "log", "-1", "--format=%an <%ae>|%cn <%ce>")
    fallback = "mission-control <mission-control@localhost>"
    assert who == f"{fallback}|{fallback}"
    # Nothing was written to the repository's config.
    assert "user." not in sb.git(sb.repo, "config", "--list", "--local")


def test_a_configured_identity_is_used_not_the_fallback(
    git_sandbox: GitSandbox, isolated_git_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(name)
    sb.write(
        isolated_git_home / ".gitconfig",
        "[user]\n\tname = Real Person\n\temail = real@example.com\n\tuseConfigOnly = true\n",
    )
    sb.write(prepared.path / "x.txt", "x\n")
    commit_work(prepared.path, prepared.base_commit, MESSAGE, BODY)
    assert sb.git(prepared.path, "log", "-1", "--format=%an <%ae>") == (
        "Real Person <real@example.com>"
    )


def test_a_rejected_push_gives_gits_message_and_keeps_the_branch(
    git_sandbox: GitSandbox,
) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    sb.write(prepared.path / "a.txt", "first\n")
    commit_work(prepared.path, prepared.base_commit, MESSAGE, BODY)
    push_branch(prepared.path, "origin", prepared.branch)
    # Someone else moves the remote branch on.
    other = sb.tmp / "other"
    sb.git(sb.tmp, "clone", "-q", "-b", prepared.branch, str(sb.origin), str(other))
    sb.write(other / "theirs.txt", "theirs\n")
    sb.git(other, "add", "-A")
    sb.git(other, "commit", "-q", "-m", "theirs")
    sb.git(other, "push", "-q", "origin", prepared.branch)
    remote_head = sb.origin_head(prepared.branch)
    sb.write(prepared.path / "b.txt", "second\n")
    local = commit_work(prepared.path, prepared.base_commit, MESSAGE, BODY).head

    with pytest.raises(PushRejectedError) as caught:
        push_branch(prepared.path, "origin", prepared.branch)

    message = str(caught.value)
    # git says "fetch first" when it lacks the remote's commits, else "non-fast-forward".
    assert "! [rejected] ws/PH1/A -> ws/PH1/A (fetch first)" in message
    assert "has commits this branch lacks" in message
    assert "failed to push some refs" in message
    assert str(prepared.path) in message and "\n" not in message
    assert "hint:" not in message
    assert caught.value.git_message in message
    assert sb.git(prepared.path, "rev-parse", "HEAD") == local
    assert sb.origin_head(prepared.branch) == remote_head


def test_a_push_to_an_unreachable_remote_fails_without_a_prompt(
    git_sandbox: GitSandbox,
) -> None:
    sb = git_sandbox
    prepared = prepare_worktree(sb.ws("A"), [])
    sb.git(sb.repo, "remote", "add", "gone", str(sb.tmp / "no-such-remote.git"))
    with pytest.raises(PushRejectedError, match="does not appear to be a git repository") as caught:
        push_branch(prepared.path, "gone", prepared.branch)
    assert "ws/" not in sb.git(sb.repo, "config", "--get-regexp", "^branch\\.")
    # git's own words, and no guess at a cause git did not name.
    message = str(caught.value)
    assert "pushing ws/PH1/A to gone failed: fatal: " in message
    assert caught.value.git_message in message
    assert "credential" not in message and "ssh key" not in message


@pytest.mark.parametrize("key", ["url", "pushurl"])
def test_a_relative_remote_url_works_from_the_worktree(git_sandbox: GitSandbox, key: str) -> None:
    """``git remote add origin ../origin.git`` means the path seen from the main checkout."""
    sb = git_sandbox
    sb.git(sb.repo, "config", f"remote.origin.{key}", "../origin.git")
    sb.git(sb.repo, "update-ref", "-d", "refs/remotes/origin/main")
    prepared = prepare_worktree(sb.ws("A"), [])  # fetches the base first
    assert prepared.start_point == "refs/remotes/origin/main"
    sb.write(prepared.path / "a.txt", "work\n")
    head = commit_work(prepared.path, prepared.base_commit, MESSAGE, BODY).head

    push_branch(prepared.path, "origin", prepared.branch)

    assert sb.origin_head(prepared.branch) == head
    assert sb.git(sb.repo, "rev-parse", f"refs/remotes/origin/{prepared.branch}") == head
    assert sb.git(prepared.path, "rev-parse", "--abbrev-ref", "@{upstream}") == (
        f"origin/{prepared.branch}"
    )
    # Fetching from inside the worktree reaches the same remote.
    sb.git(sb.repo, "push", "-q", "origin", "main:refs/heads/other")
    assert fetch_branch(prepared.path, "origin", "other")
    assert sb.git(sb.repo, "rev-parse", "refs/remotes/origin/other") == sb.origin_head("main")
    # The remote's configuration is left as the user wrote it.
    assert sb.git(sb.repo, "config", f"remote.origin.{key}") == "../origin.git"


def test_commit_refuses_the_users_checkout(git_sandbox: GitSandbox) -> None:
    sb = git_sandbox
    sb.write(sb.repo / "user.txt", "mine\n")
    head = sb.git(sb.repo, "rev-parse", "HEAD")
    with pytest.raises(GitError, match="main checkout"):
        commit_work(sb.repo, head, MESSAGE, BODY)
    assert sb.git(sb.repo, "status", "--porcelain") == "?? user.txt"
