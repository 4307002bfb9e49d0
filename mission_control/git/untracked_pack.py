"""Untracked files for a worktree on another machine: packed here, unpacked on the node.

A cluster node has no view of the repository's checkout, so what ``copy:`` and
``.worktreeinclude`` name is gathered here with the same rules as for a local
worktree (``untracked``), sent as a gzip'd tar with the attempt, and unpacked into
the node's worktree entry by entry: only files, folders and symlinks that stay
inside the worktree, nothing written over what is there.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import SetupError
from .untracked import Brought, bring_untracked, remember_brought

MAX_PACK_BYTES = 64 * 1024 * 1024
"""More than this is not sent with an attempt: a ``setup:`` command should make it."""


@dataclass(frozen=True, slots=True)
class Packed:
    data: bytes
    paths: tuple[str, ...]
    """The top-level paths brought, as ``copied`` lists them."""
    notes: tuple[str, ...]
    """The log lines of gathering them (what was skipped and why)."""


def pack_untracked(repo: Path, copy: Sequence[str], task_id: str) -> Packed | None:
    """The untracked files ``copy`` and ``.worktreeinclude`` name, packed; None if none."""
    with tempfile.TemporaryDirectory(prefix="mc-files-") as folder:
        brought: Brought = bring_untracked(repo, Path(folder), copy, (), record=False)
        if not brought.copied:
            return None
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            for rel in brought.copied:
                tar.add(os.path.join(folder, rel), arcname=rel)
    data = buffer.getvalue()
    if len(data) > MAX_PACK_BYTES:
        raise SetupError(
            f"{task_id}: the files `copy:` names come to {len(data) // (1024 * 1024)} MiB packed,"
            f" more than {MAX_PACK_BYTES // (1024 * 1024)} MiB to send to a node: copy less, or"
            " make them with a `setup:` command"
        )
    return Packed(data, tuple(brought.copied), tuple(brought.lines()))


def unpack_untracked(data: bytes, worktree: Path, paths: Sequence[str]) -> list[str]:
    """Unpack into ``worktree`` (blocking); the log lines of what was left out."""
    notes: list[str] = []
    root = os.path.realpath(worktree)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            why = _refused(member, root)
            if why is not None:
                notes.append(f"──── files: skipped {member.name}: {why}")
                continue
            target = os.path.join(root, member.name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if member.isdir():
                os.makedirs(target, exist_ok=True)
            elif member.issym():
                os.symlink(member.linkname, target)
            else:
                source = tar.extractfile(member)
                if source is not None:
                    with source, open(target, "xb") as out:
                        out.write(source.read())
                    os.chmod(target, member.mode & 0o777)
    remember_brought(worktree, paths)
    return notes


def _refused(member: tarfile.TarInfo, root: str) -> str | None:
    name = member.name
    if name.startswith("/") or ".." in name.split("/"):
        return "leads out of the worktree"
    if not (member.isfile() or member.isdir() or member.issym()):
        return "not a file, a folder or a symlink"
    target = os.path.join(root, name)
    parent = os.path.realpath(os.path.dirname(target))
    if parent != root and not parent.startswith(root + os.sep):
        return "its folder in the worktree leads outside it"
    if member.issym():
        link = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
        if member.linkname.startswith("/") or link.startswith(".."):
            return "a symlink that leads out of the worktree"
    if os.path.lexists(target) and not member.isdir():
        return "already in the worktree"
    if member.isdir() and os.path.lexists(target) and not os.path.isdir(target):
        return "already in the worktree"
    return None
