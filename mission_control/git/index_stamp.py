"""Whether a worktree's index is still the one this driver checked out.

A worktree just made (and its dependencies merged) has an index that is exactly
its HEAD's tree. While nobody writes that index again, ``git add --verbose``
names every path the work changed against HEAD, so the commit step needs no diff
of its own. The index file's stat (inode, size, change and modification times)
tells whether anybody wrote it: git always writes a new index through a lock file
renamed over the old one. The stamps live in this process only; a driver taken
over after a crash has none and asks git.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .repo import worktree_file

_Stamp = tuple[int, int, int, int]
_stamps: dict[str, _Stamp] = {}
_lock = threading.Lock()
_MAX_STAMPS = 4096


def _stamp_of(path: Path) -> _Stamp | None:
    try:
        st = os.stat(worktree_file(path, "index"))
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def remember_checkout(path: Path) -> None:
    """The index of the worktree at ``path`` was just made to match its HEAD."""
    stamp = _stamp_of(path)
    with _lock:
        if len(_stamps) >= _MAX_STAMPS:
            _stamps.clear()
        if stamp is None:
            _stamps.pop(str(path), None)
        else:
            _stamps[str(path)] = stamp


def untouched_since_checkout(path: Path) -> bool:
    """Nobody wrote the index since ``remember_checkout``; asked once (the stamp is used up)."""
    with _lock:
        stamp = _stamps.pop(str(path), None)
    return stamp is not None and _stamp_of(path) == stamp
