"""Lock files held with ``flock``: who drives a branch or worktree (``git.claims``), who
uses a port (``engine.ports``).

The lock belongs to an open file, not to a pid written somewhere: the kernel lets go
when the last descriptor of it closes, however its holders ended, and a child that
inherits the descriptor holds it too. The file's text only names the holder, for
messages and for a driver taking a run back; it never decides who holds the lock.
The files are opened with ``store.private.open_private_in`` (0600, in a 0700 folder).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterable

_HELD_ELSEWHERE = frozenset({errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES})


def lock_now(fd: int) -> bool:
    """Take the file's lock for ``fd`` without waiting; False while another holds it.
    Any other error closes ``fd`` and is raised."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _HELD_ELSEWHERE:
            return False
        os.close(fd)
        raise
    return True


def name_holder(fd: int, text: str) -> None:
    """Write who holds the lock into its file (``fd`` holds the lock)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8"), 0)


def let_go(fds: Iterable[int]) -> None:
    """Close the descriptors: a lock is let go once no process keeps one of its file."""
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


__all__ = ["let_go", "lock_now", "name_holder"]
