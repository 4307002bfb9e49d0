"""Fixtures shared by every test folder.

``git_repo``: a real repository in ``tmp_path`` with one commit on ``main`` and a
bare ``origin`` that has ``main`` pushed (``refs/remotes/origin/main`` exists).
While the test runs, git (in the test and in the code under test) sees no system
or global config and a fixed author/committer, so the user's git setup neither
helps nor breaks a test::

    def test_something(git_repo: GitRepo) -> None:
        git_repo.commit_file("src/a.py", "x = 1\\n")    # -> sha of the new commit
        git_repo.git("branch", "feature")              # -> stdout, stripped
        git_repo.path, git_repo.origin                  # work tree, bare origin

``shared_git_repo``: the same, built once per session, for tests that only
read (hypothesis tests cannot use function-scoped fixtures). Do not change it.

``make_git_repo(root)`` builds one anywhere (benchmarks, session fixtures);
``GIT_TEST_ENV`` is the environment it runs git with.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

IDENTITY: dict[str, str] = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
}
"""A fixed identity and date: commits (and their shas) are the same on every machine."""

ISOLATION: dict[str, str] = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}
"""No system or user config: no signing, hooks paths, default branch names or aliases."""

_REPO_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")

GIT_TEST_ENV: dict[str, str] = {
    **{k: v for k, v in os.environ.items() if k not in _REPO_VARS},
    **ISOLATION,
    **IDENTITY,
}


@dataclass
class GitRepo:
    """A work tree (``path``, on ``main``) and its bare ``origin``."""

    path: Path
    origin: Path
    env: dict[str, str] = field(default_factory=lambda: dict(GIT_TEST_ENV))

    def git(self, *args: str, cwd: Path | None = None) -> str:
        """Run git in the work tree (or ``cwd``); raise with git's message on failure."""
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd or self.path,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(
                f"git {' '.join(args)} failed in {cwd or self.path}: {proc.stderr}"
            )
        return proc.stdout.strip()

    def commit_file(self, name: str, text: str, message: str | None = None) -> str:
        """Write ``name`` (relative to the work tree), commit it; return the commit's sha."""
        file = self.path / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        self.git("add", "--", name)
        self.git("commit", "-q", "-m", message or f"Add {name}")
        return self.git("rev-parse", "HEAD")


def make_git_repo(root: Path, name: str = "repo") -> GitRepo:
    """Create ``root/name`` (one commit on ``main``) and ``root/name-origin.git``, pushed."""
    path = root / name
    origin = root / f"{name}-origin.git"
    path.mkdir(parents=True)
    repo = GitRepo(path=path, origin=origin)
    repo.git("init", "-q", "--bare", "-b", "main", str(origin), cwd=root)
    repo.git("init", "-q", "-b", "main")
    repo.commit_file("README.md", "# test repository\n", "Initial commit")
    repo.git("remote", "add", "origin", str(origin))
    repo.git("push", "-q", "-u", "origin", "main")
    return repo


@pytest.fixture(autouse=True, scope="session")
def _private_port_registry(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Runs under test claim ports in a registry of the session's own, not the user's."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state-home"))


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    """A fresh repository with a pushed ``main``; git is isolated for the whole test."""
    for name in _REPO_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in {**ISOLATION, **IDENTITY}.items():
        monkeypatch.setenv(name, value)
    return make_git_repo(tmp_path)


@pytest.fixture(scope="session")
def shared_git_repo(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    """One repository for the whole session, for tests that only read it."""
    return make_git_repo(tmp_path_factory.mktemp("shared-git"))
