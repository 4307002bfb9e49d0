"""One driver per branch and worktree: a lock file each, held with ``flock``.

Why this shape:

- The ledger's run owner keeps one *run* to one driver, but two runs (the same plan
  started twice, or two plans naming one branch) would each drive the same branch
  and worktree. The claim is therefore keyed by what is shared: the branch, in the
  repository's common git dir (so every worktree and every plan of the repository
  sees it), and the worktree folder.
- ``flock`` is held by an open file, not written as a pid: the kernel drops it when
  the driver dies, however it dies, so a dead driver never blocks the next one, and
  two drivers starting at the same instant cannot both win.
- The file's text (pid, run, plan, state folder, role) only *names* the holder for
  the message of the one refused; it is never trusted to decide who holds the lock.
- A driver handing its run to a background driver passes its open lock files to the
  child (``inherit``), so the claim never lapses in between.
- Lock files are never deleted: removing a lock file races with a process that has
  just opened it. They are a few bytes each, one per branch and worktree.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..errors import SetupError
from ..lock_files import let_go, lock_now, name_holder
from ..plan.model import Workstream
from ..store.private import open_private_in
from .repo import common_git_dir

CLAIMS_DIR: Final = "mission-control/claims"
"""Where the lock files live, inside the repository's common git dir."""

INHERIT_ENV: Final = "MISSION_CONTROL_CLAIM_FDS"
"""Lock files a driver hands to the background driver it starts: ``fd,fd,...``."""

ROLE_FOREGROUND: Final = "foreground"
ROLE_BACKGROUND: Final = "background"


@dataclass(frozen=True, slots=True)
class ClaimTarget:
    """What one workstream's driver needs alone: its branch and its worktree."""

    repo: Path
    branch: str
    worktree: Path


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a claim, as its lock file says."""

    pid: int | None
    run_id: str
    state_dir: str
    plan: str
    role: str

    @staticmethod
    def read(path: Path) -> Holder:
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        pid = data.get("pid")
        return Holder(
            pid=pid if isinstance(pid, int) else None,
            run_id=str(data.get("run_id") or ""),
            state_dir=str(data.get("state_dir") or ""),
            plan=str(data.get("plan") or ""),
            role=str(data.get("role") or ROLE_FOREGROUND),
        )


class ClaimRefused(SetupError):
    """Another live driver holds a branch or worktree this run needs."""

    def __init__(self, what: str, holder: Holder) -> None:
        self.what = what
        self.holder = holder
        state = f" --state-dir {holder.state_dir}" if holder.state_dir else ""
        attach = f"`mission-control attach {holder.run_id}{state}` opens that run"
        if holder.pid is None or not holder.run_id:  # it has not said who it is yet
            message = f"{what} is driven by another mission-control: wait for it to end"
        else:
            message = (
                f"{what} is driven by mission-control pid {holder.pid} (run {holder.run_id}):"
                f" one driver per branch and worktree — {attach}, or wait for it to end"
            )
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class _Lock:
    what: str
    path: Path


class BranchClaims:
    """The claims one driver holds; released by ``release`` or when the process ends."""

    def __init__(self, fds: dict[Path, int]) -> None:
        self._fds = fds

    @property
    def fds(self) -> list[int]:
        """The open lock files, to pass to a background driver (``pass_fds``)."""
        return list(self._fds.values())

    def release(self) -> None:
        let_go(self._fds.values())
        self._fds = {}

    def __enter__(self) -> BranchClaims:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def take_claims(
    targets: Iterable[ClaimTarget],
    *,
    run_id: str,
    plan: Path,
    state_dir: Path,
    role: str = ROLE_FOREGROUND,
    wait: float = 0.0,
) -> BranchClaims:
    """Claim every target's branch and worktree for this process, or none of them.

    Raises ``ClaimRefused`` naming the holder when another live driver holds one
    (after ``wait`` seconds of trying again). Claims handed down by the driver that
    started this one (``INHERIT_ENV``) are taken over in place.
    """
    locks = _locks(targets)
    inherited = _inherited()
    held: dict[Path, int] = {}
    info = json.dumps(
        {
            "pid": os.getpid(),
            "run_id": run_id,
            "plan": str(plan),
            "state_dir": str(state_dir),
            "role": role,
            "since": time.time(),
        }
    )
    try:
        for lock in locks:
            fd = _lock(lock, inherited, time.monotonic() + wait)
            held[lock.path] = fd
            name_holder(fd, info)
    except BaseException:
        BranchClaims(held).release()
        raise
    finally:
        for fd in inherited.values():
            if fd not in held.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
    return BranchClaims(held)


def holders(targets: Iterable[ClaimTarget]) -> list[Holder]:
    """Who holds the targets' claims now (held locks only; free ones are skipped)."""
    found: list[Holder] = []
    for lock in _locks(targets):
        if not lock.path.exists():
            continue
        fd = os.open(lock.path, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                found.append(Holder.read(lock.path))
        finally:
            os.close(fd)
    return found


def _locks(targets: Iterable[ClaimTarget]) -> list[_Lock]:
    """One lock per branch and per worktree, branches first, each kind sorted: every
    driver takes them in one order, and a refusal names the branch when it can."""
    branches: dict[Path, _Lock] = {}
    worktrees: dict[Path, _Lock] = {}
    for target in targets:
        folder = common_git_dir(target.repo) / CLAIMS_DIR
        branch = folder / _name(target.branch)
        branches.setdefault(branch, _Lock(f"branch {target.branch} of {target.repo}", branch))
        worktree_path = Path(os.path.abspath(target.worktree))
        worktree = folder / _name(f"worktree:{worktree_path}")
        worktrees.setdefault(worktree, _Lock(f"worktree {worktree_path}", worktree))
    return [branches[p] for p in sorted(branches)] + [worktrees[p] for p in sorted(worktrees)]


def _name(key: str) -> str:
    """A file name for a branch or worktree: readable part plus a hash (names may clash)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", key).strip("-.")[-60:]
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{readable}.{digest}.lock"


def _lock(lock: _Lock, inherited: dict[tuple[int, int], int], deadline: float) -> int:
    fd = open_private_in(lock.path, os.O_RDWR)
    st = os.fstat(fd)
    mine = inherited.pop((st.st_dev, st.st_ino), None)
    if mine is not None:
        os.close(fd)
        return mine  # the driver that started this one holds it for us already
    while not lock_now(fd):
        if time.monotonic() >= deadline:
            holder = _holder_named(lock.path)
            os.close(fd)
            raise ClaimRefused(lock.what, holder)
        time.sleep(0.1)
    return fd


def _holder_named(path: Path) -> Holder:
    """The holder's text; a holder that has just locked may not have written it yet."""
    holder = Holder.read(path)
    for _ in range(20):
        if holder.pid is not None and _pid_exists(holder.pid):
            break
        time.sleep(0.05)
        holder = Holder.read(path)
    return holder


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _inherited() -> dict[tuple[int, int], int]:
    """Lock files handed down by the parent driver, by (device, inode); read once."""
    raw = os.environ.pop(INHERIT_ENV, "")
    out: dict[tuple[int, int], int] = {}
    for item in raw.split(","):
        if not item.strip().isdigit():
            continue
        fd = int(item)
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        os.set_inheritable(fd, False)  # agents and git never get it
        out[(st.st_dev, st.st_ino)] = fd
    return out


def inherit_env(claims: BranchClaims | None) -> dict[str, str]:
    """The environment entry that hands ``claims`` to a child started with ``pass_fds``."""
    if claims is None or not claims.fds:
        return {}
    return {INHERIT_ENV: ",".join(str(fd) for fd in claims.fds)}


def targets_of(workstreams: Sequence[Workstream]) -> list[ClaimTarget]:
    """The claim targets of a plan's workstreams."""
    return [ClaimTarget(ws.repo, ws.branch, ws.worktree_path) for ws in workstreams]


__all__ = [
    "ROLE_BACKGROUND",
    "ROLE_FOREGROUND",
    "BranchClaims",
    "ClaimRefused",
    "ClaimTarget",
    "Holder",
    "holders",
    "inherit_env",
    "take_claims",
    "targets_of",
]
