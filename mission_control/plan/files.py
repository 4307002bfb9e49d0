"""Reading the files a plan names (the plan itself, prompt files) without trusting them.

A path on the command line or in a plan may name anything: ``/dev/zero`` never
ends, a FIFO blocks until someone writes to it, a 50 MB file takes gigabytes
once composed as YAML. So a file is looked at before it is opened (only a
regular file is read), opened without blocking, looked at again through the
open descriptor (it may have been swapped in between), and read only up to a
limit: what a plan needs is small, and anything bigger is refused at once
with the reason instead of a hang or a swap storm.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_FILE_BYTES = 10 * 1024 * 1024
"""The largest plan or prompt file read (10 MiB): a plan of thousands of workstreams is <1 MiB."""

_CHUNK = 1 << 20
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in after the first look must not block
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


class FileReadError(ValueError):
    """A file that cannot be read; ``problem`` completes "the file ...", ``hint`` says the fix."""

    def __init__(self, problem: str, hint: str) -> None:
        self.problem = problem
        self.hint = hint
        super().__init__(f"{problem} — {hint}")


def describe_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words: ``a named pipe (FIFO)``."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"  # pragma: no cover - doors and whiteouts


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


def _check(mode: int, size: int, limit: int) -> None:
    if not stat.S_ISREG(mode):
        kind = describe_kind(mode)
        raise FileReadError(
            f"is {kind}, not a regular file" if kind.startswith("a ") else "is not a regular file",
            "give the path of a text file",
        )
    if size > limit:
        raise _too_big(f"is {size:,} bytes", limit)


def _too_big(what: str, limit: int) -> FileReadError:
    return FileReadError(
        f"{what}, more than the {_mib(limit)} a plan or prompt file may be",
        "check the path: a plan of thousands of workstreams takes well under 1 MiB",
    )


def read_regular_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at ``path``; ``FileReadError`` for anything else.

    Never blocks on a FIFO or a device and never reads more than ``limit + 1``
    bytes, even from a file that grows while it is read.
    """
    try:
        before = os.stat(path)
    except (OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    _check(before.st_mode, before.st_size, limit)
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except (OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    try:
        opened = os.fstat(fd)
        _check(opened.st_mode, opened.st_size, limit)
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    finally:
        os.close(fd)
    if total > limit:  # it grew while being read
        raise _too_big("grew while being read", limit)
    return b"".join(chunks)


def _unreadable(path: Path, exc: OSError | ValueError) -> FileReadError:
    if isinstance(exc, FileNotFoundError):
        dangling = os.path.islink(path)
        return FileReadError(
            "is a symbolic link to a file that does not exist" if dangling else "does not exist",
            "create it, or fix the path",
        )
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return FileReadError(f"cannot be read ({reason})", "check the path and its permissions")
