"""Waiting for processes to end without polling: pidfds, where the kernel has them.

A pidfd turns readable when its process exits, so one ``poll`` (or the event
loop's selector) waits for many processes at once and wakes at the exit itself.
Where pidfds are missing (old kernels, other systems) a short polling loop does
the same job. Nothing here reaps: a zombie counts as gone, and whoever spawned a
process keeps the right to read its status.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Sequence

import psutil

from .process_tree import is_alive

_HAS_PIDFD = hasattr(os, "pidfd_open")


def open_pidfd(pid: int) -> int | None:
    """A pidfd for ``pid``, or None where pidfds are missing or the process is gone."""
    if not _HAS_PIDFD:
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def close_quietly(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def wait_gone(procs: Sequence[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Block until every process has exited or ``timeout`` passes; those still alive.

    Event-driven with pidfds (one ``poll`` over all of them); a short polling
    loop where pidfds are missing. A zombie counts as gone; nothing is reaped.
    """
    deadline = time.monotonic() + timeout
    if not _HAS_PIDFD:
        # Not psutil.wait_procs: it reaps a child of ours, and the Popen of an
        # attempt shell would then read exit code 0 instead of its real status.
        alive = [p for p in procs if is_alive(p)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.02)
            alive = [p for p in alive if is_alive(p)]
        return alive
    fds: dict[int, psutil.Process] = {}
    try:
        for proc in procs:
            fd = open_pidfd(proc.pid)
            if fd is None:
                continue
            if not is_alive(proc):  # gone, or the pid now names someone else
                os.close(fd)
                continue
            fds[fd] = proc
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        pending = set(fds)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _event in poller.poll(left * 1000):
                poller.unregister(fd)
                pending.discard(fd)
        return [fds[fd] for fd in pending if is_alive(fds[fd])]
    finally:
        for fd in fds:
            os.close(fd)
