"""Cheap questions about processes that psutil answers only by scanning every process.

psutil finds a process's children by reading the parent pid of every process on
the machine. The supervisor asks "who are this process's children?" for each
member of every attempt tree once a second, so on Linux it reads the kernel's
own child list (``/proc/PID/task/TID/children``) instead, and falls back to
psutil elsewhere. Everything here is blocking and meant for worker threads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import psutil

_PROC = Path("/proc")
_HAS_CHILDREN_FILES = (_PROC / "thread-self" / "children").exists()
"""The kernel keeps child lists (CONFIG_PROC_CHILDREN): Linux only."""


def child_pids(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (empty if ``pid`` is gone)."""
    if _HAS_CHILDREN_FILES:
        found: list[int] = []
        task_dir = _PROC / str(pid) / "task"
        try:
            tids = os.listdir(task_dir)
        except OSError:
            return found
        # A child belongs to the thread that forked it, so read every thread's list.
        for tid in tids:
            with contextlib.suppress(OSError):
                found.extend(int(p) for p in (task_dir / tid / "children").read_text().split())
        return found
    try:
        return [c.pid for c in psutil.Process(pid).children()]
    except psutil.Error:
        return []


def session_pids(sid: int) -> list[int]:
    """Every pid whose session id is ``sid`` (one ``getsid`` per process on the machine)."""
    found: list[int] = []
    for pid in psutil.pids():
        with contextlib.suppress(OSError):
            if os.getsid(pid) == sid:
                found.append(pid)
    return found


def is_zombie(proc: psutil.Process) -> bool:
    """True if ``proc`` has exited and waits to be reaped (or is gone altogether)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def is_alive(proc: psutil.Process) -> bool:
    """The same process (pid and start time) still exists and has not exited."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # exists, but we may not look at it


def environ_has(proc: psutil.Process, markers: Mapping[str, str]) -> bool:
    """True if the process's environment holds every ``markers`` item (False if unreadable)."""
    if not markers:
        return False
    try:
        env = proc.environ()
    except psutil.Error:
        return False
    return all(env.get(k) == v for k, v in markers.items())


def open_process(pid: int) -> psutil.Process | None:
    """A psutil handle pinned to the process now holding ``pid``, or None if there is none."""
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def signal_all(procs: Iterable[psutil.Process], signum: int) -> list[int]:
    """Send ``signum`` to each process that is still the same one; the pids signalled."""
    sent: list[int] = []
    for proc in procs:
        # psutil checks the start time first, so a reused pid is never signalled.
        with contextlib.suppress(psutil.Error, OSError):
            proc.send_signal(signum)
            sent.append(proc.pid)
            if signum == 9 and os.environ.get("MC_LEAK_DEBUG"):
                import time
                with open(os.environ["MC_LEAK_DEBUG"], "a") as f:
                    f.write(f"{time.time():.4f} sent KILL {proc.pid}\n")
    return sent
