"""Private files: what mission-control keeps under its state folder is its user's alone.

The logs hold what agents printed, the prompt copies hold the prompts, the ledger holds
argv and branch names: none of it is for the machine's other users. So the state folder
and every folder made under it are 0700 and every file 0600, whatever the umask says.

The process umask is left alone on purpose: the agents and git inherit it, and the files
they write in worktrees must keep the modes the user expects there. Instead, each writer
under the state folder creates its file or folder through these helpers. A state folder
made before this rule (0755, files 0644) is narrowed when the store opens it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Final

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
_OTHERS: Final = 0o077
"""Permission bits for the group and everyone else: none may be set."""
_REMADE_TRIES: Final = 20
"""How often a folder taken away while being made is made again before giving up."""


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and each missing parent as a 0700 folder; existing ones are kept.

    A node removes an ended attempt's folders while they are empty, so a parent seen
    here may be gone by the ``mkdir`` under it: the walk then starts again.
    """
    for _ in range(_REMADE_TRIES - 1):
        with contextlib.suppress(FileNotFoundError):
            _make_missing(path)
            return path
    _make_missing(path)
    return path


def _make_missing(path: Path) -> None:
    missing: list[Path] = []
    current = path
    # ``os.path``, not ``pathlib``: asked at every attempt's start, where the folder exists.
    while not os.path.isdir(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, DIR_MODE)
        except FileExistsError:
            if folder.is_dir():
                continue  # made by another process meanwhile
            raise
        os.chmod(folder, DIR_MODE)  # an odd umask may have taken our own bits


def open_private(path: Path, flags: int) -> int:
    """``os.open`` that creates ``path`` as 0600 and narrows an existing file wider than that."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & _OTHERS:
            os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def open_private_in(path: Path, flags: int) -> int:
    """``open_private`` after making ``path``'s folder; again if the folder went meanwhile."""
    for _ in range(_REMADE_TRIES - 1):
        make_private_dir(path.parent)
        with contextlib.suppress(FileNotFoundError):
            return open_private(path, flags)
    make_private_dir(path.parent)
    return open_private(path, flags)


def append_private(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` (made 0600 in a 0700 folder when missing)."""
    with os.fdopen(open_private_in(path, os.O_WRONLY | os.O_APPEND), "ab") as handle:
        handle.write(data)


def write_private_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, replacing its content; the file is 0600."""
    write_private_bytes(path, text.encode("utf-8"))


def write_private_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, replacing its content; the file is 0600."""
    with os.fdopen(open_private_in(path, os.O_WRONLY | os.O_TRUNC), "wb") as handle:
        handle.write(data)


def is_private(path: Path) -> bool:
    """True when neither the group nor others have any permission on ``path``."""
    return not path.stat().st_mode & _OTHERS


def make_tree_private(root: Path) -> None:
    """Narrow a folder made before the rule: folders 0700, files 0600 (links are let be).

    Best effort: an entry that cannot be changed (another owner) is skipped, so a state
    folder shared by hand still opens.
    """
    with contextlib.suppress(OSError):
        os.chmod(root, DIR_MODE)
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        for name in dirs:
            _narrow(base / name, DIR_MODE)
        for name in files:
            _narrow(base / name, FILE_MODE)


def _narrow(path: Path, mode: int) -> None:
    with contextlib.suppress(OSError):
        st = os.lstat(path)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & _OTHERS:
            os.chmod(path, mode)
