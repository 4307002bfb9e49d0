"""Reading refs from git's own files, without a git process.

Each workstream asks a few questions of its refs (does its branch exist, where
does the base branch point, what is each finished branch's head); a git process
for each costs more than the answer. With the files ref store, a ref is either a
loose file ``<common git dir>/<ref>`` holding its commit, or a line of
``packed-refs``; git replaces both by renaming a whole new file over the old, so
a read sees one version or the other, never half of one. Packing writes
``packed-refs`` before it deletes the loose file, so reading the loose file
first and ``packed-refs`` second never misses a ref that exists.

Anything these files cannot answer for certain (the reftable store, a symbolic
ref, an unreadable file) returns None, and the caller asks git.

``write_ref`` writes one of mission-control's own refs the way git writes a loose
ref: take ``<ref>.lock`` (created only if absent, which is git's lock), write the
commit into it, rename it over the ref; ``create_ref`` links it as the ref instead,
so that a ref made meanwhile is never overwritten. Where that cannot be done plainly
they return False, and the caller runs git.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path

_HEX = frozenset("0123456789abcdef")
_PER_WORKTREE = ("refs/worktree/", "refs/bisect/", "refs/rewritten/")
"""Refs each worktree keeps for itself, not in the common git dir: git is asked."""


def is_object_id(text: str) -> bool:
    """``text`` is a commit id as git writes it (SHA-1 or SHA-256, lower-case hex)."""
    return len(text) in (40, 64) and set(text) <= _HEX


def _other_store(common: Path) -> bool:
    """The repository keeps its refs in the reftable store, not in files."""
    return os.path.exists(f"{common}/reftable")


_packed: dict[Path, tuple[tuple[int, int, int], dict[str, str]]] = {}
"""Each repository's parsed ``packed-refs``, under the file's (inode, size, mtime)."""
_packed_lock = threading.Lock()


def _packed_refs(common: Path) -> dict[str, str] | None:
    """The refs in ``packed-refs`` (an empty dict when there is none); None if unreadable."""
    file = common / "packed-refs"
    try:
        with file.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            with _packed_lock:
                cached = _packed.get(common)
            if cached is not None and cached[0] == key:
                return cached[1]
            data = handle.read()
    except FileNotFoundError:
        return {}
    except OSError:
        return None
    refs: dict[str, str] = {}
    for line in data.decode("utf-8", errors="replace").splitlines():
        if not line or line[0] in "#^":  # the header; a tag's peeled commit
            continue
        commit, _, name = line.partition(" ")
        if not is_object_id(commit):
            return None
        refs[name] = commit
    with _packed_lock:
        _packed[common] = (key, refs)
    return refs


def read_small(path: str, errors: str = "strict") -> str:
    """A small file's text (a ref, a HEAD): a forecast reads one per finished branch, so
    plainly, without ``pathlib`` on the way. A FIFO in its place does not block."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return os.read(fd, 4096).decode("utf-8", errors)
    finally:
        os.close(fd)


def read_refs(common: Path, refs: Sequence[str]) -> dict[str, str] | None:
    """The commit (object id) of each of ``refs`` (full names under ``refs/``) that exists,
    in the repository whose common git dir is ``common``.

    None when the files cannot say for certain (also for a ref each worktree keeps for
    itself, ``refs/worktree/``, ``refs/bisect/``); the caller then asks git.
    """
    if _other_store(common):
        return None
    found: dict[str, str] = {}
    packed: dict[str, str] | None = None
    for ref in dict.fromkeys(refs):
        if not ref.startswith("refs/") or ref.startswith(_PER_WORKTREE) or ".." in ref:
            return None
        try:
            text = read_small(f"{common}/{ref}").strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            if packed is None:
                packed = _packed_refs(common)
                if packed is None:
                    return None
            if ref in packed:
                found[ref] = packed[ref]
            continue
        except (OSError, UnicodeDecodeError):
            return None
        if not is_object_id(text):  # a symbolic ref, or something git would refuse
            return None
        found[ref] = text
    return found


def write_ref(common: Path, ref: str, commit: str) -> bool:
    """Point the loose ref ``ref`` (under ``refs/mission-control/``) at ``commit``.

    False, with nothing changed, when git must do it (another ref store, the ref
    locked by a git process, a folder or file in the way). No reflog is written:
    git keeps none for refs outside ``refs/heads`` unless configured to.
    """
    if not ref.startswith("refs/mission-control/") or ".." in ref:
        return False
    return _place_ref(common, ref, commit, create=False)


def create_ref(common: Path, ref: str, commit: str) -> bool:
    """Make the loose ref ``ref`` at ``commit`` if no such ref exists, loose or packed
    (the caller has asked ``read_refs``); False, with nothing made, when it cannot."""
    return ".." not in ref and _place_ref(common, ref, commit, create=True)


def _place_ref(common: Path, ref: str, commit: str, *, create: bool) -> bool:
    """Write ``commit`` into git's own lock on ``ref``, ``<ref>.lock`` (made only if absent),
    then put it in place: renamed over the ref, or linked as the ref only if that is
    still absent (``create``)."""
    if not is_object_id(commit) or _other_store(common):
        return False
    file = f"{common}/{ref}"
    lock = f"{file}.lock"
    try:
        os.makedirs(os.path.dirname(file), exist_ok=True)
        write_new(lock, f"{commit}\n")
    except OSError:
        return False  # another git holds the lock, or a file is where a folder must go
    try:
        if create:
            os.link(lock, file)
        else:
            os.replace(lock, file)
        placed = True
    except OSError:
        placed = False
    if create or not placed:  # the lock is ours until it is renamed: never unlink another's
        with contextlib.suppress(OSError):
            os.unlink(lock)
    return placed


def write_new(path: str, text: str) -> None:
    """Create ``path`` holding ``text``; it must not exist (``O_EXCL``: how git takes a
    lock). Plain ``os`` calls, for what runs under a repository's lock. A file made but
    not written is removed again."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        try:
            os.write(fd, text.encode("utf-8"))
        finally:
            os.close(fd)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


__all__ = ["create_ref", "is_object_id", "read_refs", "read_small", "write_new", "write_ref"]
