"""Who reaps what: the attempt shells we spawned, and orphans of attempts reparented to us.

With :func:`enable_subreaper`, orphans of attempts become our children; the
ones we can prove came from an attempt are reaped by pid (never
``waitpid(-1)``, which would steal the status of a child someone else waits
for). What this process knows about its attempts lives in one registry: the
shells it spawned (their Popen reaps them, nobody else may) and every process
seen in an attempt's tree.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence

import psutil

from .process_tree import CREATE_TIME_TOLERANCE, child_pids, is_zombie, open_process, same_start


class _Registry:
    """What this mission-control process knows about every attempt it supervises."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spawned: dict[int, subprocess.Popen[bytes]] = {}
        """Attempt shells we started: their Popen reaps them, nobody else may."""
        self.members: dict[int, float] = {}
        """pid -> start time of every process seen in an attempt tree (not the shells)."""


_REGISTRY = _Registry()
_subreaper = False


def register_spawned(popen: subprocess.Popen[bytes]) -> None:
    """An attempt shell we started: only its Popen may reap it."""
    with _REGISTRY.lock:
        _REGISTRY.spawned[popen.pid] = popen


def spawned_popen(pid: int) -> subprocess.Popen[bytes] | None:
    """The Popen of the attempt shell ``pid`` if we spawned it and it is not collected yet."""
    with _REGISTRY.lock:
        return _REGISTRY.spawned.get(pid)


def spawned_pids() -> set[int]:
    with _REGISTRY.lock:
        return set(_REGISTRY.spawned)


def forget_spawned(pid: int) -> None:
    """The shell's status is collected: nothing is left to reap."""
    with _REGISTRY.lock:
        _REGISTRY.spawned.pop(pid, None)


def note_members(members: Mapping[int, float]) -> None:
    """Processes (pid -> start time) seen in an attempt's tree: ours to reap as orphans."""
    with _REGISTRY.lock:
        _REGISTRY.members.update(members)


def enable_subreaper(enabled: bool = True) -> bool:
    """Make this process a child subreaper (Linux): orphans of attempts reparent to us.

    Then a double-forked descendant stays findable as our child instead of
    disappearing under init. Returns False where that is not possible.
    ``enabled=False`` undoes it (tests use that to check both ways).
    """
    global _subreaper
    if _subreaper == enabled:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_child_subreaper = 36
        if libc.prctl(pr_set_child_subreaper, int(enabled), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    _subreaper = enabled
    return True


def reap_orphans(our_children: Sequence[int] | None = None) -> list[int]:
    """Reap zombie children that provably are orphans of attempts; the pids reaped.

    A zombie child of ours is reaped if it was seen in an attempt's tree (same
    pid and start time), or if its session is neither ours nor its own: a
    process we forked ourselves can only be in one of those two, so such a
    child was reparented to us. Attempt shells are reaped through their Popen;
    anything else is left to whoever spawned it.
    """
    with _REGISTRY.lock:
        spawned = list(_REGISTRY.spawned.values())
        members = dict(_REGISTRY.members)
    finished = [p.pid for p in spawned if p.poll() is not None]  # nobody waits: still reap
    if finished:
        with _REGISTRY.lock:
            for pid in finished:
                _REGISTRY.spawned.pop(pid, None)
    children = child_pids(os.getpid()) if our_children is None else our_children
    spawned_pids = {p.pid for p in spawned}
    our_sid = os.getsid(0)
    reaped: list[int] = []
    for pid in children:
        if pid in spawned_pids:
            continue
        proc = open_process(pid)
        if proc is None or not is_zombie(proc):
            continue
        try:
            started = proc.create_time()
            sid = os.getsid(pid)
        except (psutil.Error, OSError):
            continue
        seen = pid in members and abs(members[pid] - started) < CREATE_TIME_TOLERANCE
        if not seen and sid in (our_sid, pid):
            continue
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                reaped.append(pid)
    if members:
        _prune_members()
    return reaped


def _prune_members() -> None:
    with _REGISTRY.lock:
        gone = [pid for pid in _REGISTRY.members if not psutil.pid_exists(pid)]
        for pid in gone:
            del _REGISTRY.members[pid]


def reap_if_our_child(pid: int, create_time: float) -> None:
    """An adopted shell reparented to us (subreaper) ends as our zombie: reap that one pid."""
    proc = open_process(pid)
    if proc is None or not same_start(proc, create_time):
        return
    try:
        mine = proc.ppid() == os.getpid() and is_zombie(proc)
    except psutil.Error:
        return
    if mine:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
