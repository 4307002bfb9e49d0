"""Cheap questions about processes that psutil answers only by scanning every process.

psutil finds a process's children by reading the parent pid of every process on
the machine. The supervisor asks "who are this process's children?" for each
member of every attempt tree once a second, so on Linux it reads the kernel's
own child list (``/proc/PID/task/TID/children``) instead, and falls back to
psutil elsewhere. Processes are looked up with fresh psutil handles, never
psutil's own cache: pids are reused quickly on a busy machine and a stale
handle makes a live process look gone. Everything here is blocking and meant
for worker threads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Container, Iterable, Mapping
from pathlib import Path

import psutil

_PROC = Path("/proc")
_HAS_CHILDREN_FILES = (_PROC / "thread-self" / "children").exists()
"""The kernel keeps child lists (CONFIG_PROC_CHILDREN): Linux only."""
_HAS_ENVIRON_FILES = (_PROC / "self" / "environ").exists()


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


def processes_with_env(
    markers: Mapping[str, str], exclude: Container[int] = ()
) -> list[psutil.Process]:
    """Every process whose environment holds all ``markers``, each with a fresh handle.

    Not ``psutil.process_iter()``: it hands back the handles cached by its
    previous call, and once a pid has been reused such a handle reads the new
    process's environment yet fails every identity check (``is_running``,
    ``send_signal``), so a process that matches would be dropped or spared.
    """
    if not markers:
        return []
    found: list[psutil.Process] = []
    needles = [f"{k}={v}".encode() for k, v in markers.items()]
    for pid in psutil.pids():
        if pid in exclude:
            continue
        if _HAS_ENVIRON_FILES:
            # A cheap byte test first: only a likely match gets a handle.
            try:
                raw = b"\0" + (_PROC / str(pid) / "environ").read_bytes() + b"\0"
            except OSError:
                continue
            if not all(b"\0" + n + b"\0" in raw for n in needles):
                continue
        proc = open_process(pid)
        # Checked again through the handle: the pid may have changed hands meanwhile.
        if proc is not None and environ_has(proc, markers):
            found.append(proc)
    return found


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
    return sent


CREATE_TIME_TOLERANCE = 1.0
"""Seconds: psutil derives start times from the boot time, which the clock may nudge."""


def start_time(proc: psutil.Process) -> float:
    """When ``proc`` started (0.0 if it cannot be read): with the pid, its identity."""
    try:
        return proc.create_time()
    except psutil.Error:
        return 0.0


def same_start(proc: psutil.Process, create_time: float) -> bool:
    """``proc`` is the process that started at ``create_time``, not a later one with its pid."""
    return abs(start_time(proc) - create_time) < CREATE_TIME_TOLERANCE
