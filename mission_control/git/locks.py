"""What a killed mission-control leaves in a worktree: git processes still running, stale locks.

Every git process mission-control starts carries ``MC_GIT_DRIVER`` (the pid and
start time of the process that started it, see ``repo.driver_mark``). When that
process is killed, a ``git reset --hard`` or ``git commit`` it started runs on:
a later mission-control that touched the worktree meanwhile would trip over its
``index.lock``, or have its own work undone by it. So before a worktree is used,
``settle_worktree`` waits for such orphans (and stops them past a deadline),
then removes the lock files that a killed git left with no one alive to own
them. Git processes of a live mission-control, of the user, or of an agent
(which carry no mark) are never stopped, and their locks are never removed.
Blocking: call from a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import psutil

from .ref_files import read_small
from .repo import DRIVER_VAR, driver_mark

ORPHAN_WAIT_SECONDS = 60.0
"""How long the git processes of a killed mission-control may go on before they are stopped."""

_PROC = Path("/proc")
_HAS_PROC = (_PROC / "self" / "cwd").exists()
_WORKTREE_LOCKS = ("index.lock", "HEAD.lock")
"""Lock files in a worktree's own git dir that only git processes working in it take."""


def settle_worktree(path: Path, *, wait_seconds: float = ORPHAN_WAIT_SECONDS) -> list[int]:
    """Wait for (then stop) orphaned git processes in ``path``; remove locks nobody owns.

    Returns the pids of the orphans that were waited for. A folder that is not a
    linked worktree (or not there) has nothing to settle: the user's own checkout
    is never touched.
    """
    path = Path(os.path.realpath(path))
    if not (path / ".git").is_file():
        return []
    orphans = _orphans_in(path)
    if orphans:
        _wait_or_stop(orphans, wait_seconds)
    clear_stale_locks(path)
    return [p.pid for p in orphans]


def clear_stale_locks(path: Path) -> list[Path]:
    """Remove the worktree's lock files when no git process works in it; the files removed."""
    git_dir = _git_dir(path)
    if git_dir is None:
        return []
    # Plain ``os`` calls: this runs before every commit, and usually finds nothing.
    locks = [f"{git_dir}/{name}" for name in _WORKTREE_LOCKS]
    branch_lock = _branch_lock(str(git_dir))
    if branch_lock is not None:
        locks.append(branch_lock)
    present = [lock for lock in locks if os.path.lexists(lock)]
    if not present or any(_is_git(p) for p in _processes_in(path)):
        return []
    removed = []
    for lock in present:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
            removed.append(Path(lock))
    return removed


def _orphans_in(path: Path) -> list[psutil.Process]:
    """Processes in ``path`` started (through git) by a mission-control that is gone."""
    mine = driver_mark()
    found = []
    for proc in _processes_in(path):
        try:
            mark = proc.environ().get(DRIVER_VAR)
        except psutil.Error:
            continue
        if mark is not None and mark != mine and not _driver_alive(mark):
            found.append(proc)
    return found


def _wait_or_stop(procs: list[psutil.Process], wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline and any(_alive(p) for p in procs):
        time.sleep(0.1)
    left = [p for p in procs if _alive(p)]
    for proc in left:
        with contextlib.suppress(psutil.Error):
            proc.kill()  # psutil checks it is still the same process
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in left):
        time.sleep(0.05)


def _processes_in(path: Path) -> list[psutil.Process]:
    """Live processes whose working folder is ``path`` or below it (fresh handles).

    Runs before every prepare, commit and reset, so the first pass is plain
    ``readlink`` calls on ``/proc`` (a fraction of a millisecond for a few hundred
    processes); a handle is made only for the few found there.
    """
    top = str(path)
    found = []
    for pid in _pids_in(top):
        try:
            proc = psutil.Process(pid)
            # Asked again through the handle: the pid may have changed hands meanwhile.
            if _is_inside(proc.cwd(), top) and _alive(proc):
                found.append(proc)
        except (OSError, psutil.Error):
            continue
    return found


def _pids_in(top: str) -> list[int]:
    """The pids whose working folder is ``top`` or below it, at a glance."""
    if not _HAS_PROC:
        found = []
        for pid in psutil.pids():
            with contextlib.suppress(OSError, psutil.Error):
                if _is_inside(psutil.Process(pid).cwd(), top):
                    found.append(pid)
        return found
    below = top + os.sep
    found = []
    for name in os.listdir(_PROC):
        if not name.isdigit():
            continue
        try:
            cwd = os.readlink(f"{_PROC}/{name}/cwd")
        except OSError:
            continue
        if cwd == top or cwd.startswith(below):
            found.append(int(name))
    return found


def _is_inside(cwd: str, top: str) -> bool:
    return cwd == top or cwd.startswith(top + os.sep)


def _driver_alive(mark: str) -> bool:
    pid_text, _, started = mark.partition(":")
    try:
        proc = psutil.Process(int(pid_text))
        return f"{proc.create_time():.2f}" == started and _alive(proc)
    except (ValueError, psutil.Error):
        return False


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def _is_git(proc: psutil.Process) -> bool:
    try:
        return proc.name().startswith("git")
    except psutil.Error:
        return False


def git_file_target(path: Path) -> Path | None:
    """Where the ``.git`` file of a worktree folder points (its git dir), if it says so.

    Read from the file, no git call: git may be locked or the folder half-made."""
    try:
        text = read_small(f"{path}/.git", errors="replace").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    target = Path(text.removeprefix("gitdir:").strip())
    return target if target.is_absolute() else path / target


def _git_dir(path: Path) -> Path | None:
    """The worktree's own git dir, when it exists."""
    git_dir = git_file_target(path)
    return git_dir if git_dir is not None and os.path.isdir(git_dir) else None


def _branch_lock(git_dir: str) -> str | None:
    """The lock file of the branch checked out in the worktree (in the shared git dir)."""
    try:
        head = read_small(f"{git_dir}/HEAD").strip()
        common = read_small(f"{git_dir}/commondir").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not head.startswith("ref: refs/heads/"):
        return None
    common_dir = common if os.path.isabs(common) else f"{git_dir}/{common}"
    return f"{common_dir}/{head.removeprefix('ref: ')}.lock"


__all__ = ["ORPHAN_WAIT_SECONDS", "clear_stale_locks", "settle_worktree"]
