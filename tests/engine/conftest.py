"""Fixtures for the git layer: real repositories in tmp_path, a bare repo as origin.

Every test runs git with a private HOME and global config, no system config
and a fixed identity, so the user's own git setup can neither help nor break
a test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mission_control.plan.model import PrOptions, Workstream

HELPERS = Path(__file__).resolve().parent.parent / "helpers"

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}

BASE_LINES = [f"line {i}" for i in range(1, 11)]


def git(cwd: Path, *args: str) -> str:
    """Run git for test setup and inspection; fail loudly. Never refreshes an index."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, env=env
    )
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} in {cwd} failed: {proc.stderr}")
    return proc.stdout.strip()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def edit_line(path: Path, index: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[index] = text
    path.write_text("\n".join(lines) + "\n")


@dataclass
class GitSandbox:
    """A repository (``repo``), maybe with a bare ``origin``, and a worktree root.

    Tests reach the helpers through this object (``sb.git(...)``), so nothing
    has to import this conftest by name.
    """

    tmp: Path
    repo: Path
    origin: Path | None
    worktree_root: Path

    git = staticmethod(git)
    write = staticmethod(write)
    edit_line = staticmethod(edit_line)

    def ws(self, ws_id: str, phase: str = "PH1", **fields: Any) -> Workstream:
        values: dict[str, Any] = {
            "id": ws_id,
            "name": f"Workstream {ws_id}",
            "phase_id": phase,
            "repo": self.repo,
            "base_branch": "main",
            "tool": "shell",
            "timeout_minutes": 5,
            "worktree_root": self.worktree_root,
            "pr": PrOptions(),
        }
        values.update(fields)
        return Workstream(**values)

    def snapshot(self) -> dict[str, bytes]:
        return _snapshot_checkout(self.repo)

    def origin_head(self, ref: str = "main") -> str:
        assert self.origin is not None
        return git(self.origin, "rev-parse", f"refs/heads/{ref}")


def _make_sandbox(tmp: Path, with_origin: bool) -> GitSandbox:
    repo = tmp / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo / "README.md", "# project\n")
    write(repo / "f.txt", "\n".join(BASE_LINES) + "\n")
    write(repo / ".gitignore", "*.log\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    origin = None
    if with_origin:
        origin = tmp / "origin.git"
        git(tmp, "init", "-q", "--bare", "-b", "main", str(origin))
        git(repo, "remote", "add", "origin", str(origin))
        git(repo, "push", "-q", "-u", "origin", "main")
    return GitSandbox(tmp=tmp, repo=repo, origin=origin, worktree_root=tmp / "worktrees")


@pytest.fixture
def isolated_git_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME and global git config with a fixed identity."""
    home = tmp_path / "home"
    home.mkdir()
    config = write(home / ".gitconfig", "[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in IDENTITY.items():
        monkeypatch.setenv(name, value)
    return home


@pytest.fixture
def git_sandbox(isolated_git_home: Path, tmp_path: Path) -> GitSandbox:
    """``repo`` with a bare ``origin`` that has its ``main``."""
    return _make_sandbox(tmp_path, with_origin=True)


@pytest.fixture
def local_git_sandbox(isolated_git_home: Path, tmp_path: Path) -> GitSandbox:
    """``repo`` without any remote."""
    return _make_sandbox(tmp_path, with_origin=False)


@pytest.fixture
def fake_gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Put ``tests/helpers/fake_gh.py`` first on PATH as ``gh``; yields its state folder."""
    bin_dir = tmp_path / "fake-bin"
    state = tmp_path / "fake-gh"
    gh = write(
        bin_dir / "gh",
        f'#!/bin/sh\nexec "{sys.executable}" "{HELPERS / "fake_gh.py"}" "$@"\n',
    )
    gh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GH_DIR", str(state))
    yield state


def _snapshot_checkout(repo: Path) -> dict[str, bytes]:
    """Every byte a user could notice in a checkout: files, HEAD, index, its branch."""
    snap: dict[str, bytes] = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if rel == ".git" or rel.startswith(".git/"):
            continue
        if path.is_file():
            snap[rel] = path.read_bytes()
    for name in ("HEAD", "index", "ORIG_HEAD", "MERGE_HEAD", "refs/heads/main"):
        file = repo / ".git" / name
        snap[f".git/{name}"] = file.read_bytes() if file.exists() else b"<absent>"
    snap["status"] = git(repo, "status", "--porcelain=v2", "--untracked-files=all").encode()
    return snap
