"""Read-only facts about a repository for validating a plan: is it one, which branches.

The plan loader asks the same questions for every workstream, often thousands
of times for one repository, so ``read_repo_refs`` answers them all from three
quick ``git`` calls and the caller caches the result per repository. Only the
``git`` CLI is used (no GitPython import: validating a plan stays fast to
start), with the user's environment minus anything that would point git at
another repository, no prompts and C-locale messages.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import GitError

_TIMEOUT = 30.0
# Set by hooks and by `git rebase -x`; they would make every call read that repository.
_REPO_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")


class RepoCheckError(GitError):
    """A path that cannot serve as a workstream's repository, with why and the fix."""

    def __init__(self, path: Path, problem: str, hint: str) -> None:
        self.path = path
        self.problem = problem
        self.hint = hint
        super().__init__(f"{path}: {problem} — {hint}")


@dataclass(frozen=True, slots=True)
class RepoRefs:
    """The branches and remotes of one repository, read once."""

    toplevel: Path
    """The work tree's top folder (the git dir itself for a bare repository)."""
    bare: bool
    local_branches: frozenset[str]
    remote_branches: frozenset[str]
    """As ``<remote>/<branch>``, from ``refs/remotes``."""
    remotes: frozenset[str]
    git_dirs: tuple[Path, ...] = ()
    """The repository's git folder and, for a linked worktree, the common one."""

    def has_branch(self, branch: str, remote: str = "origin") -> bool:
        """Whether ``branch`` exists locally or as ``<remote>/<branch>``."""
        return branch in self.local_branches or f"{remote}/{branch}" in self.remote_branches

    @property
    def branches(self) -> list[str]:
        """Every branch name a plan could use as a base, sorted."""
        names = set(self.local_branches)
        for ref in self.remote_branches:
            _, _, name = ref.partition("/")
            if name and name != "HEAD":
                names.add(name)
        return sorted(names)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REPO_VARS}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C", LANGUAGE="C")
    return env


def _git(path: Path, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(path), *args],
            env=_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=_TIMEOUT,
            check=False,
        )
    except FileNotFoundError as exc:
        raise RepoCheckError(
            path, "git is not installed or not on PATH", "install git 2.38 or newer"
        ) from exc
    except (subprocess.TimeoutExpired, OSError, ValueError) as exc:
        raise RepoCheckError(path, f"git could not read it ({exc})", "check the path") from exc


def _fail(path: Path, proc: subprocess.CompletedProcess[str]) -> RepoCheckError:
    message = " ".join(line.strip() for line in proc.stderr.splitlines() if line.strip())
    lowered = message.lower()
    if "dubious ownership" in lowered:
        return RepoCheckError(
            path,
            "git refuses to use it: it belongs to another user",
            f"run `git config --global --add safe.directory {path}`",
        )
    if "not a git repository" in lowered:
        return RepoCheckError(
            path,
            "is not a git repository",
            "point `repo:` at a git checkout, or run `git init` there",
        )
    return RepoCheckError(path, f"git could not read it ({message[:200]})", "check the repository")


def read_repo_refs(path: Path) -> RepoRefs:
    """Read the facts about the repository at ``path``.

    Raises ``RepoCheckError`` when ``path`` is missing, not a folder, not a git
    repository, or git cannot read it.
    """
    path = Path(path)
    try:
        if not path.exists():
            raise RepoCheckError(path, "does not exist", "check the path")
        if not path.is_dir():
            raise RepoCheckError(path, "is not a folder", "point `repo:` at the repository folder")
    except (OSError, ValueError) as exc:
        raise RepoCheckError(path, f"cannot be read ({exc})", "check the path") from exc
    proc = _git(
        path,
        [
            "rev-parse",
            "--is-bare-repository",
            "--absolute-git-dir",
            "--path-format=absolute",
            "--git-common-dir",
        ],
    )
    if proc.returncode != 0:
        raise _fail(path, proc)
    bare_text, _, dirs = proc.stdout.strip().partition("\n")
    git_dir, _, common_dir = dirs.partition("\n")
    bare = bare_text.strip() == "true"
    if bare:
        toplevel = Path(git_dir.strip())
    else:
        proc = _git(path, ["rev-parse", "--show-toplevel"])
        if proc.returncode != 0 or not proc.stdout.strip():
            raise _fail(path, proc)
        toplevel = Path(proc.stdout.strip())
    proc = _git(path, ["for-each-ref", "--format=%(refname)", "refs/heads", "refs/remotes"])
    if proc.returncode != 0:
        raise _fail(path, proc)
    local: set[str] = set()
    remote_branches: set[str] = set()
    for ref in proc.stdout.splitlines():
        if ref.startswith("refs/heads/"):
            local.add(ref[len("refs/heads/") :])
        elif ref.startswith("refs/remotes/"):
            remote_branches.add(ref[len("refs/remotes/") :])
    proc = _git(path, ["remote"])
    if proc.returncode != 0:
        raise _fail(path, proc)
    return RepoRefs(
        toplevel=toplevel,
        bare=bare,
        local_branches=frozenset(local),
        remote_branches=frozenset(remote_branches),
        remotes=frozenset(line.strip() for line in proc.stdout.splitlines() if line.strip()),
        git_dirs=tuple(dict.fromkeys(Path(d.strip()) for d in (git_dir, common_dir) if d.strip())),
    )


def ignores(toplevel: Path, relative: str) -> bool:
    """Whether the repository at ``toplevel`` ignores the folder ``relative`` (may not exist)."""
    try:
        proc = _git(toplevel, ["check-ignore", "-q", "--", relative.rstrip("/") + "/"])
    except RepoCheckError:
        return False
    return proc.returncode == 0


def is_git_repo(path: Path) -> bool:
    """Whether ``path`` is (inside) a git repository git can read."""
    try:
        if not Path(path).is_dir():
            return False
        return _git(Path(path), ["rev-parse", "--git-dir"]).returncode == 0
    except (RepoCheckError, OSError, ValueError):
        return False


def branch_exists(path: Path, branch: str, remote: str = "origin") -> bool:
    """Whether the repository at ``path`` has ``branch`` locally or as ``<remote>/<branch>``."""
    try:
        return read_repo_refs(path).has_branch(branch, remote)
    except RepoCheckError:
        return False
