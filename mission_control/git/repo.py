"""Running git: one place that knows how to call it safely from many threads.

Almost everything goes through the ``git`` CLI with argv lists (``run_git``):
the CLI is what users have configured (credential helpers, hooks, ssh), it
never leaks file handles the way a long-lived GitPython ``Repo`` does, and its
own messages are what a user needs to see when something fails. GitPython is
used only to open a repository briefly and name its top level (``open_repo``),
with a short-lived ``with Repo(...)``, and imported there only when the ``.git``
of the folder does not answer (its import alone costs a run's start-up a good
part of a second); no other module imports it.

Three rules hold for every call:

* no prompts: ``GIT_TERMINAL_PROMPT=0``, stdin closed and a new session (no
  controlling terminal), so a missing credential fails instead of hanging a
  background run or scribbling over the TUI;
* messages in the C locale, so the few we recognise read the same everywhere;
* one lock per repository (keyed by its common git dir) around the operations
  that touch shared administrative files (worktree list, config, branch
  deletion), and fetches of the same branch coalesced, so many workstreams
  starting at once never trip over git's own ``*.lock`` files.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil

from ..errors import GitError
from .ref_files import is_object_id, read_refs
from .ref_files import read_small as _read_small

NETWORK_TIMEOUT = 300.0
"""Seconds a fetch or push may take before it is given up."""

DRIVER_VAR = "MC_GIT_DRIVER"
"""Set on every git child to ``driver_mark()`` of the process that started it."""

_REPO_VARS = frozenset(
    ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")
)
_LOCK_RETRIES = 6
_LOCK_MARKERS = (".lock': File exists", "could not lock config file", "Unable to create")


@dataclass(frozen=True, slots=True)
class GitOutput:
    returncode: int
    stdout: str
    stderr: str


# ---------------------------------------------------------------- running git


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every git (and gh) child gets: no prompts, C messages."""
    # Set by hooks and aliases, these would point every call at one repository.
    env = {k: v for k, v in os.environ.items() if k not in _REPO_VARS}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_OPTIONAL_LOCKS="0",
        LC_ALL="C",
        LANGUAGE="C",
    )
    # A pager or editor would wait for a terminal that is not there.
    env["GIT_EDITOR"] = "true"
    env["GIT_PAGER"] = "cat"
    # Marks git (and the hooks it runs) as ours: a later mission-control finds the git
    # processes of one that was killed, and waits for them before touching a worktree.
    env[DRIVER_VAR] = driver_mark()
    if extra:
        env.update(extra)
    return env


def driver_mark() -> str:
    """``<pid>:<start time>`` of this process: who started a git process, even after pid reuse."""
    return _driver_mark(os.getpid())


@functools.lru_cache(maxsize=4)
def _driver_mark(pid: int) -> str:  # keyed by pid: a forked child is another driver
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        started = 0.0
    return f"{pid}:{started:.2f}"


def trim_message(stderr: str, stdout: str = "", limit: int = 400) -> str:
    """Git's own message on one line: hints and progress dropped, errors first."""
    lines = [
        line.strip()
        for line in (stderr or stdout).splitlines()
        if line.strip() and not line.lstrip().startswith("hint:")
    ]
    if not lines and stdout and stderr:
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    message = "; ".join(lines) or "no message from git"
    return message if len(message) <= limit else message[: limit - 1] + "…"


def run_git(
    args: Sequence[str],
    cwd: Path,
    *,
    check: bool = True,
    what: str = "",
    fix: str = "",
    config: Sequence[str] = (),
    input_text: str | None = None,
    timeout: float | None = None,
    retry_on_lock: bool = False,
    env: Mapping[str, str] | None = None,
    wrapper: Sequence[str] = (),
) -> GitOutput:
    """Run ``git <args>`` in ``cwd``; with ``check`` a non-zero exit raises ``GitError``.

    ``config`` items are passed as ``-c key=value``; ``env`` is added to the
    environment (``remote_env`` gives config that way). ``retry_on_lock`` retries a
    few times with back-off when git reports another process holds a lock file
    (another mission-control, or the user's own git, on the same repository).
    """
    argv = [*wrapper, "git"]  # wrapper: a command git runs under (``git_under_lock``)
    for item in config:
        argv += ["-c", item]
    argv += list(args)
    attempt = 0
    while True:
        try:
            proc = subprocess.run(
                argv,
                cwd=cwd,
                env=git_env(env),
                input=input_text.encode() if input_text is not None else None,
                stdin=None if input_text is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                start_new_session=True,
                check=False,
            )
        except OSError as exc:
            if not cwd.is_dir():
                raise GitError(
                    f"{cwd}: {what or 'git ' + args[0]} failed: the folder does not exist"
                    f" — {fix or 'check the path'}"
                ) from exc
            raise GitError(
                f"{cwd}: git is not installed or not on PATH — install git 2.38 or newer"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise GitError(
                f"{cwd}: {what or 'git ' + args[0]} took longer than {timeout:.0f}s and was"
                f" stopped — {fix or 'check the network and the remote'}"
            ) from exc
        out = GitOutput(
            proc.returncode,
            proc.stdout.decode("utf-8", "surrogateescape"),
            proc.stderr.decode("utf-8", "replace"),
        )
        if (
            out.returncode != 0
            and retry_on_lock
            and attempt < _LOCK_RETRIES
            and any(marker in out.stderr for marker in _LOCK_MARKERS)
        ):
            attempt += 1
            time.sleep(0.05 * 2**attempt)
            continue
        if check and out.returncode != 0:
            doing = what or "git " + " ".join(args[:2])
            fix = fix or f"run `git -C {cwd} {shlex.join(args)[:200]}` to see why".replace(
                "\n", " "
            )
            tail = f" — {fix}"
            raise GitError(f"{cwd}: {doing} failed: {trim_message(out.stderr, out.stdout)}{tail}")
        return out


# ---------------------------------------------------------------- repository facts


def open_repo(path: Path) -> Path:
    """The top-level folder of the repository at (or above) ``path``.

    Raises ``GitError`` naming the path when it is missing or not in a repository.
    The usual answer (``path`` is a checkout's or a worktree's top folder) is read
    from its ``.git``; GitPython, slow to import, is loaded only for the rest.
    """
    path = Path(path)
    if _is_top_level(path):
        return path.resolve()
    import git  # GitPython: a folder below the top, a bare repository, the errors

    try:
        with git.Repo(path, search_parent_directories=True) as repo:
            top = repo.working_tree_dir or repo.git_dir
            return Path(top).resolve()
    except git.NoSuchPathError as exc:
        raise GitError(
            f"{path}: the repository folder does not exist — fix `repo:` in the plan"
        ) from exc
    except git.InvalidGitRepositoryError as exc:
        raise GitError(
            f"{path}: not a git repository — point `repo:` at a git checkout, or run `git init`"
        ) from exc


def _is_top_level(path: Path) -> bool:
    """``path/.git`` is a git dir, or a ``.git`` file naming one (a linked worktree)."""
    dot_git = path / ".git"
    if dot_git.is_dir():
        return (dot_git / "HEAD").is_file()
    git_dir = linked_git_dir(Path(os.path.abspath(path)))
    return git_dir is not None and (git_dir / "HEAD").is_file()


def common_git_dir(path: Path) -> Path:
    """The git dir shared by a repository and all its worktrees (remembered per folder)."""
    return _common_git_dir(os.path.abspath(path))


@functools.lru_cache(maxsize=1024)
def _common_git_dir(path: str) -> Path:
    git_dir = linked_git_dir(Path(path))
    if git_dir is not None:  # a linked worktree says where in two small files
        with contextlib.suppress(OSError):
            common = Path((git_dir / "commondir").read_text(encoding="utf-8").strip())
            return (common if common.is_absolute() else git_dir / common).resolve()
    out = run_git(
        ["rev-parse", "--path-format=absolute", "--git-common-dir"],
        Path(path),
        what="finding the git directory",
        fix="check that the folder is inside a git repository",
    )
    return Path(out.stdout.strip()).resolve()


def git_path(path: Path, name: str) -> Path:
    """``git rev-parse --git-path``: a file in this worktree's own git dir."""
    out = run_git(["rev-parse", "--path-format=absolute", "--git-path", name], path)
    return Path(out.stdout.strip())


def linked_git_dir(path: Path) -> Path | None:
    """The own git dir of the linked worktree whose top folder is ``path``, read from files.

    A linked worktree's ``.git`` is a file naming its git dir, which holds a
    ``commondir`` file; None for anything else (a main checkout, a submodule, a
    subfolder, a half-made worktree), where callers ask git. No git process: the
    worktree steps ask this many times per workstream.
    """
    try:
        text = _read_small(f"{path}/.git").strip()
    except (OSError, UnicodeDecodeError):  # no .git, a folder (a main checkout), no text
        return None
    if not text.startswith("gitdir:"):
        return None
    target = Path(text.removeprefix("gitdir:").strip())
    git_dir = target if target.is_absolute() else path / target
    return git_dir if os.path.isfile(f"{git_dir}/commondir") else None


def worktree_file(path: Path, name: str) -> Path:
    """A file of the worktree's own state (``index``, ``MERGE_HEAD``, our stage marker).

    Where ``git rev-parse --git-path`` would say, for the names git keeps per
    worktree; read from the ``.git`` file when ``path`` is a linked worktree.
    """
    git_dir = linked_git_dir(Path(os.path.abspath(path)))
    return git_dir / name if git_dir is not None else git_path(path, name)


def is_linked_worktree(path: Path) -> bool:
    """True for a worktree made by ``git worktree add``; False for a main checkout."""
    if linked_git_dir(Path(os.path.abspath(path))) is not None:
        return True
    out = run_git(
        ["rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir"],
        path,
        what="reading the worktree",
        fix="check that the folder is a git worktree",
    )
    git_dir, common = (Path(p).resolve() for p in out.stdout.split("\n")[:2])
    return git_dir != common


def require_linked_worktree(path: Path, doing: str) -> None:
    """Refuse to change files anywhere but in a workstream's own worktree."""
    if not is_linked_worktree(path):
        raise GitError(
            f"{path}: refusing {doing} in a repository's main checkout — only workstream"
            " worktrees are changed; check the worktree path"
        )


def hooks_dir(repo: Path) -> Path:
    """Where git looks for the repository's hooks (``core.hooksPath`` honoured), asked once
    a process: every push rewrites the config file (its upstream), so the file's state
    would not keep the answer."""
    return remembered(_hooks, common_git_dir(repo), lambda: git_path(repo, "hooks"))


_K = TypeVar("_K")
_V = TypeVar("_V")
_remembering = threading.Lock()


def remembered(cache: dict[_K, _V], key: _K, ask: Callable[[], _V]) -> _V:
    """``cache[key]``, asked once: workstreams starting together wait for the first
    one's answer instead of each asking git the same thing."""
    found = cache.get(key)
    if found is None:
        with _remembering:
            found = cache.get(key)
            if found is None:
                found = cache[key] = ask()
    return found


_hooks: dict[Path, Path] = {}


def head_commit(path: Path) -> str:
    return run_git(
        ["rev-parse", "--verify", "HEAD^{commit}"], path, what="reading HEAD"
    ).stdout.strip()


def head_from_files(path: Path) -> str | None:
    """The commit HEAD of the linked worktree ``path`` names, read from git's files.

    Right after a commit the branch is a loose ref file, so no git process is
    needed; None for anything else (a packed ref, another ref store, not a
    linked worktree), where the caller asks git (``head_commit``).
    """
    git_dir = linked_git_dir(Path(os.path.abspath(path)))
    if git_dir is None:
        return None
    try:
        value = _read_small(f"{git_dir}/HEAD").strip()
        if value.startswith("ref: refs/heads/"):
            ref = value.removeprefix("ref: ")
            value = _read_small(f"{common_git_dir(path)}/{ref}").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return value if is_object_id(value) else None


def rev_parse(repo: Path, rev: str) -> str | None:
    """The commit ``rev`` names, or None if it names nothing."""
    out = run_git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], repo, check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def ref_exists(repo: Path, ref: str) -> bool:
    """``ref`` (a full name) exists: read from git's files where they can say, else asked."""
    if ref.startswith("refs/"):
        found = read_refs(common_git_dir(repo), [ref])
        if found is not None:
            return ref in found
    return run_git(["show-ref", "--verify", "--quiet", ref], repo, check=False).returncode == 0


def ref_commits(repo: Path, refs: Sequence[str]) -> dict[str, str]:
    """The object each of ``refs`` (full names) points at, for those that exist: read from
    git's files (``ref_files``), else in one git call."""
    wanted = [ref for ref in dict.fromkeys(refs) if ref]
    if not wanted:
        return {}
    from_files = read_refs(common_git_dir(repo), wanted)
    if from_files is not None:
        return from_files
    out = run_git(
        ["for-each-ref", "--format=%(objectname) %(refname)", "--", *wanted],
        repo,
        what="reading the branches",
    )
    found: dict[str, str] = {}
    for line in out.stdout.splitlines():
        commit, _, ref = line.partition(" ")
        if ref in wanted:  # a pattern also matches the refs below it
            found[ref] = commit
    return found


def branch_exists(repo: Path, branch: str) -> bool:
    return ref_exists(repo, f"refs/heads/{branch}")


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    out = run_git(["merge-base", "--is-ancestor", ancestor, descendant], repo, check=False)
    if out.returncode not in (0, 1):
        raise GitError(
            f"{repo}: comparing {ancestor} with {descendant} failed:"
            f" {trim_message(out.stderr)} — check that both exist"
        )
    return out.returncode == 0


def current_branch(path: Path) -> str | None:
    """The branch checked out in ``path``, or None on a detached HEAD."""
    out = run_git(["symbolic-ref", "--quiet", "--short", "HEAD"], path, check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def is_dirty(path: Path, *, untracked: bool = True) -> bool:
    """Uncommitted changes in the worktree at ``path`` (ignored files never count)."""
    args = ["status", "--porcelain", "--ignore-submodules=none"]
    args.append("--untracked-files=all" if untracked else "--untracked-files=no")
    return bool(run_git(args, path, what="reading the worktree status").stdout.strip())


# ---------------------------------------------------------------- per-repository locks

_registry_lock = threading.Lock()
_repo_locks: dict[Path, RepoLock] = {}


class RepoLock:
    """One repository's lock: a thread lock within this process, and while a thread holds
    it an ``flock`` on ``<common git dir>/mission-control/repo.lock``, which every
    mission-control process (and ``git_under_lock``'s git) takes too. The kernel lets go
    of the file's lock when its holder dies."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self._thread = threading.RLock()
        self._depth = 0
        self._fd = -1
        self._owner: int | None = None
        self.queued = 0
        """Threads of this process in ``git_under_lock`` for this lock (waiting or running)."""
        self.counting = threading.Lock()

    def held_here(self) -> bool:
        """This thread holds the lock (a git run under ``flock`` now would wait for us)."""
        return self._owner == threading.get_ident()

    def __enter__(self) -> RepoLock:
        self._thread.acquire()
        if self._depth == 0:
            try:
                self._fd = _locked_file(self.file)
            except BaseException:
                self._thread.release()
                raise
            self._owner = threading.get_ident()
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            os.close(self._fd)  # closing the descriptor lets go of the file's lock
            self._fd = -1
        self._thread.release()


def _locked_file(file: Path) -> int:
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def repo_lock(repo: Path) -> RepoLock:
    """The lock for operations on ``repo``'s worktree list, config and branch deletion.

    Keyed by the common git dir, so a repository reached through any of its
    worktrees (or by two spellings of its path) gets the same lock.
    """
    key = common_git_dir(repo)
    with _registry_lock:
        found = _repo_locks.get(key)
        if found is None:
            found = _repo_locks[key] = RepoLock(key / "mission-control" / "repo.lock")
        return found


_FLOCK = shutil.which("flock")


def git_under_lock(args: Sequence[str], repo: Path, **options: Any) -> GitOutput:
    """``run_git`` holding the repository's lock.

    While other threads of this process queue on it (workstreams starting together),
    a ``flock`` process around git takes it, so it is free the moment git exits rather
    than once this thread runs again. Alone (a chain's next link), this thread takes
    it: starting ``flock`` first costs about a millisecond. Without ``flock`` this
    thread always takes it."""
    lock = repo_lock(repo)
    with lock.counting:
        lock.queued += 1
        alone = lock.queued == 1
    try:
        if _FLOCK is None or alone or lock.held_here():
            with lock:
                return run_git(args, repo, **options)
        lock.file.parent.mkdir(parents=True, exist_ok=True)
        return run_git(args, repo, wrapper=(_FLOCK, str(lock.file)), **options)
    finally:
        with lock.counting:
            lock.queued -= 1
