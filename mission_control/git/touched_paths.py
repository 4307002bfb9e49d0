"""What each branch changed since it forked from its base, and which branches share a path.

Two branches can only conflict where both touched a path (or one touched a folder
the other made a file, or one emptied a folder the other adds to). The commit step
hands over what its own commit changed (``remember_changes``), so a forecast of a
branch just finished needs no diff; other branches are diffed once per head. For
each base commit a ``PathIndex`` files the branches by the paths they touched, so
finding who may conflict with a new branch looks up that branch's own paths, not
every other branch.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .repo import common_git_dir, run_git


@dataclass(frozen=True, slots=True)
class Touched:
    """What a branch changed since it forked from the base."""

    paths: frozenset[str]
    """Files added, changed or deleted (a rename is a deletion and an addition)."""
    folders: frozenset[str]
    """Every folder above those files."""
    emptied: frozenset[str]
    """Every folder above a deleted file: merge-ort follows a folder renamed on one
    side with files the other side adds to it, and reports where they land."""

    def may_conflict(self, other: Touched) -> bool:
        return bool(
            self.paths & other.paths
            or self.folders & other.paths
            or other.folders & self.paths
            or self.emptied & other.folders
            or other.emptied & self.folders
        )


NOTHING = Touched(frozenset(), frozenset(), frozenset())
_touched_cache: dict[tuple[str, str, str], Touched] = {}
_cache_lock = threading.Lock()
_CACHE_LIMIT = 4096


def touched(repo: Path, base: str, head: str) -> Touched:
    """Paths changed between the merge base of ``base`` and ``head``, and ``head``."""
    if head == base:  # a branch with no work of its own yet (still finishing)
        return NOTHING
    key = (str(common_git_dir(repo)), base, head)
    with _cache_lock:
        cached = _touched_cache.get(key)
        coming = _diffing.get(key)
    if cached is None and coming is not None and coming.wait(_DIFF_WAIT):
        with _cache_lock:
            cached = _touched_cache.get(key)
    if cached is not None:
        return cached
    # --no-renames lists a rename's old and new path, so rename conflicts overlap too.
    out = run_git(
        ["diff", "--name-status", "--no-renames", "-z", f"{base}...{head}"],
        repo,
        what="listing a branch's changed files",
    )
    items = out.stdout.split("\0")
    changes = [(s, p) for s, p in zip(items[::2], items[1::2], strict=False) if p]
    return _remember(key, changes)


def remember_changes(repo: Path, base: str, head: str, changes: Sequence[tuple[str, str]]) -> None:
    """Keep what ``head`` changed since its ancestor ``base`` (``(status, path)``, no renames).

    The commit step knows what its commit changed anyway; a forecast against that
    same base commit then needs no diff of its own, nor asks whether the branch
    holds the base.
    """
    key = (str(common_git_dir(repo)), base, head)
    _remember(key, changes)
    with _cache_lock:
        if len(_sitting) > _CACHE_LIMIT:
            _sitting.clear()
        _sitting.add(key)


_sitting: set[tuple[str, str, str]] = set()
"""(common git dir, base, head) where ``base`` is known to be an ancestor of ``head``."""

_diffing: dict[tuple[str, str, str], threading.Event] = {}
"""Diffs the commit step is reading now: a forecast wanting one waits for it."""
_DIFF_WAIT = 10.0


@contextlib.contextmanager
def diffing(repo: Path, base: str, head: str) -> Iterator[None]:
    """The commit step diffs ``head`` against ``base`` inside this block (and calls
    ``remember_changes``): a forecast of another branch that needs the same diff
    meanwhile waits for it instead of asking git again."""
    key = (str(common_git_dir(repo)), base, head)
    done = threading.Event()
    with _cache_lock:
        _diffing.setdefault(key, done)
    try:
        yield
    finally:
        with _cache_lock:
            if _diffing.get(key) is done:
                del _diffing[key]
        done.set()


def sits_on(repo: Path, base: str, head: str) -> bool:
    """The commit step saw ``head`` made on ``base`` (without asking git)."""
    with _cache_lock:
        return (str(common_git_dir(repo)), base, head) in _sitting


def _remember(key: tuple[str, str, str], changes: Sequence[tuple[str, str]]) -> Touched:
    paths: set[str] = set()
    folders: set[str] = set()
    emptied: set[str] = set()
    for status, path in changes:
        paths.add(path)
        above = _folders(path)
        folders.update(above)
        if status == "D":
            emptied.update(above)
    found = Touched(frozenset(paths), frozenset(folders), frozenset(emptied))
    with _cache_lock:
        if len(_touched_cache) > _CACHE_LIMIT:
            _touched_cache.clear()
        _touched_cache[key] = found
    return found


def _folders(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


# ---------------------------------------------------------------- who shares a path


@dataclass(slots=True)
class PathIndex:
    """Branches (at the head each was filed with) by the paths they touched since one base."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    heads: dict[str, str] = field(default_factory=dict)
    _filed: dict[str, Touched] = field(default_factory=dict)
    _by_path: dict[str, set[str]] = field(default_factory=dict)
    _by_folder: dict[str, set[str]] = field(default_factory=dict)
    _by_emptied: dict[str, set[str]] = field(default_factory=dict)

    def file(self, name: str, head: str, what: Touched) -> None:
        """File ``name`` at ``head`` (in place of what it was filed with before)."""
        self._unfile(name)
        self.heads[name] = head
        self._filed[name] = what
        for table, keys in self._tables(what):
            for key in keys:
                table.setdefault(key, set()).add(name)

    def sharing(self, what: Touched) -> set[str]:
        """The branches filed that may conflict with one that touched ``what``
        (``Touched.may_conflict``, looked up from ``what``'s side)."""
        found: set[str] = set()
        for keys, tables in (
            (what.paths, (self._by_path, self._by_folder)),
            (what.folders, (self._by_path, self._by_emptied)),
            (what.emptied, (self._by_folder,)),
        ):
            for key in keys:
                for table in tables:
                    found.update(table.get(key, ()))
        return found

    def _unfile(self, name: str) -> None:
        old = self._filed.pop(name, None)
        if old is None:
            return
        for table, keys in self._tables(old):
            for key in keys:
                names = table.get(key)
                if names is not None:
                    names.discard(name)
                    if not names:
                        del table[key]

    def _tables(self, what: Touched) -> Iterable[tuple[dict[str, set[str]], frozenset[str]]]:
        return (
            (self._by_path, what.paths),
            (self._by_folder, what.folders),
            (self._by_emptied, what.emptied),
        )


_indexes: dict[tuple[str, str], PathIndex] = {}


def path_index(repo: Path, base: str) -> PathIndex:
    """The index of branches against the base commit ``base`` in ``repo``'s repository."""
    key = (str(common_git_dir(repo)), base)
    with _cache_lock:
        index = _indexes.get(key)
        if index is None:
            if len(_indexes) > 64:  # one per base commit seen: a long run's old bases go
                _indexes.clear()
            index = _indexes[key] = PathIndex()
        return index
