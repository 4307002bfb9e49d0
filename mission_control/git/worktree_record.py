"""A new worktree registered by writing git's own record of it, without a git process;
and what a registration cut short by a kill leaves, found and removed.

``git worktree add -b BRANCH PATH START`` makes the branch (by starting ``git branch``),
writes the worktree's record under ``<common git dir>/worktrees/<name>/`` and the
folder's ``.git`` file, then checks the files out (by starting ``git reset --hard``).
Workstreams that start together queue on the repository's lock for the first two
steps; written here they hold it for a fraction of a millisecond instead of two
processes. The check-out stays git's, outside the lock.

The steps are git's, in git's order: the branch (a loose ref, written through git's
``<ref>.lock`` and linked into place only if absent), then the record that
``gitrepository-layout(5)`` describes (``gitdir``, ``commondir``, ``HEAD``) while a
``locked`` file says "initializing", so that a ``git worktree prune`` meanwhile leaves
it alone and a kill half-way leaves what a killed ``git worktree add`` leaves. No
reflog entry is written for the new branch; git starts its reflog at the first commit.

Anything this cannot do plainly (the reftable ref store, per-worktree configuration,
a name git would change, a branch or record already there) returns False with nothing
left behind, and the caller runs git.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

from .. import crashpoints
from .ref_files import create_ref, is_object_id, read_refs, read_small, write_new
from .worktree_list import same_path

ADDING = "initializing"
"""The lock reason git gives a worktree until its add is done."""

_PLAIN_PART = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
_PLAIN_NAME = re.compile(_PLAIN_PART)
_PLAIN_BRANCH = re.compile(rf"{_PLAIN_PART}(/{_PLAIN_PART})*")
_OWN_LAYOUT = ("worktreeconfig", "relativeworktrees", "userelativepaths", "sparsecheckout")
"""Configuration under which ``git worktree add`` may write more, or other paths, than this."""


def _plain(name: str) -> bool:
    """A ref component or worktree name git takes as it is, by a safe subset of its rules."""
    return ".." not in name and not name.endswith((".lock", "."))


def _plain_repository(common: Path) -> bool:
    if os.path.exists(common / "reftable"):
        return False
    try:
        config = read_small(f"{common}/config", errors="replace").lower()
    except OSError:
        return False
    return not any(word in config for word in _OWN_LAYOUT)


def drop_cut_short_record(common: Path, name: str) -> bool:
    """Remove the record ``name`` if a kill left it before it named its folder (locked as
    being added, no ``gitdir``): git neither lists nor prunes it, and it holds the name
    a retry needs. The caller holds the repository's lock, under which such adds are made."""
    record = common / "worktrees" / name
    try:
        reason = read_small(f"{record}/locked", errors="replace").strip()
    except OSError:
        return False
    if reason != ADDING or os.path.lexists(record / "gitdir"):
        return False
    shutil.rmtree(record, ignore_errors=True)
    return True


def holds_only_git_file(path: Path) -> bool:
    """The folder holds nothing but a ``.git`` file: what a worktree's add cut short leaves."""
    try:
        names = os.listdir(path)
    except OSError:
        return False
    return names == [".git"] and (path / ".git").is_file()


def is_inside(path: Path, folder: Path) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(folder) + os.sep)


def remove_leftover(common: Path, path: Path) -> None:
    """Remove a cut-short worktree's record and its folder (which holds only a ``.git`` file)."""
    with contextlib.suppress(OSError):
        for record in (common / "worktrees").iterdir():
            with contextlib.suppress(OSError):
                if same_path(Path(read_small(f"{record}/gitdir").strip()).parent, path):
                    shutil.rmtree(record, ignore_errors=True)
    if path.is_dir() and holds_only_git_file(path):
        shutil.rmtree(path, ignore_errors=True)


_named: dict[Path, tuple[int, set[str]]] = {}
"""Each repository's worktree records as the ``gitdir`` each names, under the records
folder's modification time: a record added or removed changes it, and one added here
is added to the set (each caller holds its repository's lock). A record that
``git worktree move`` points elsewhere keeps that time: moved onto a folder about to be
made here, then deleted by hand, it goes unseen, and the folder gets a second record."""


def _named_already(records: Path, gitdir: str, path: Path) -> bool:
    """A record already names the folder ``path`` (its ``.git`` is ``gitdir`` once real;
    one whose folder was deleted by hand): git refuses to add it again until that record
    is pruned, and so does this."""
    wanted = {gitdir, os.path.join(path, ".git")}
    try:
        changed = os.stat(records).st_mtime_ns
    except OSError:
        return False
    seen = _named.get(records)
    if seen is None or seen[0] != changed:
        seen = changed, set()
        with contextlib.suppress(OSError), os.scandir(records) as entries:
            for entry in entries:
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    seen[1].add(read_small(f"{entry.path}/gitdir").strip())
        _named[records] = seen
    return not wanted.isdisjoint(seen[1])


def _now_named(records: Path, gitdir: str, before: int) -> None:
    """Add the record just made to what ``_named_already`` knows, if the folder was as it
    knew it just before (else the next call reads the records again)."""
    seen = _named.get(records)
    with contextlib.suppress(OSError):
        if seen is not None and seen[0] == before:
            seen[1].add(gitdir)
            _named[records] = os.stat(records).st_mtime_ns, seen[1]


def register_worktree(common: Path, path: Path, branch: str, commit: str) -> bool:
    """Make branch ``branch`` at ``commit`` and the record of a worktree at ``path`` (a
    folder not there yet) holding it, its files not checked out; False when git must.

    ``common`` is the repository's common git dir. The caller holds the repository's lock.
    """
    name, ref = path.name, f"refs/heads/{branch}"
    if (
        not (_PLAIN_NAME.fullmatch(name) and _plain(name))
        or not (_PLAIN_BRANCH.fullmatch(branch) and all(map(_plain, branch.split("/"))))
        or not is_object_id(commit)
        or os.path.lexists(path)
        or not _plain_repository(common)
    ):
        return False
    record = common / "worktrees" / name
    drop_cut_short_record(common, name)
    if os.path.lexists(record) or read_refs(common, [ref]) != {}:
        return False  # a worktree of that name, or the branch, is there (or unreadable)
    gitdir = os.path.join(os.path.realpath(path), ".git")
    if _named_already(record.parent, gitdir, path):
        return False
    if not create_ref(common, ref, commit):
        return False
    made: list[Path] = []
    before = 0
    try:
        record.parent.mkdir(exist_ok=True)
        before = os.stat(record.parent).st_mtime_ns
        record.mkdir()
        made.append(record)
        write_new(f"{record}/locked", ADDING + "\n")
        path.mkdir(parents=True)
        made.append(path)
        write_new(f"{record}/gitdir", gitdir + "\n")
        write_new(f"{path}/.git", f"gitdir: {os.path.realpath(record)}\n")
        write_new(f"{record}/commondir", "../..\n")
        write_new(f"{record}/HEAD", f"ref: {ref}\n")
    except OSError:
        for each in reversed(made):
            shutil.rmtree(each, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(common / ref)  # made above, under the lock: nobody else has it
        return False
    _now_named(record.parent, gitdir, before)
    crashpoints.reach("worktree.registering")
    os.unlink(record / "locked")
    return True


__all__ = [
    "ADDING",
    "drop_cut_short_record",
    "holds_only_git_file",
    "is_inside",
    "register_worktree",
    "remove_leftover",
]
