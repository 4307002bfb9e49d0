"""The path index finds exactly the branches that ``Touched.may_conflict`` would, by lookup."""

from __future__ import annotations

import random

from mission_control.git.touched_paths import PathIndex, Touched

_NAMES = ["a", "a/b", "a/b/c", "a/x", "d", "d/e", "f"]


def _touched(rng: random.Random) -> Touched:
    paths = {p for p in _NAMES if rng.random() < 0.2}
    deleted = {p for p in paths if rng.random() < 0.3}
    folders = {"/".join(p.split("/")[: i + 1]) for p in paths for i in range(p.count("/"))}
    emptied = {"/".join(p.split("/")[: i + 1]) for p in deleted for i in range(p.count("/"))}
    return Touched(frozenset(paths), frozenset(folders), frozenset(emptied))


def test_the_index_names_who_may_conflict_as_comparing_each_would() -> None:
    rng = random.Random(7)
    for _ in range(300):
        index = PathIndex()
        filed = {f"b{i}": _touched(rng) for i in range(rng.randint(0, 8))}
        for name, what in filed.items():
            index.file(name, "h0", _touched(rng))  # filed once at an older head
            index.file(name, "h1", what)  # then again: the old paths must be gone
        ours = _touched(rng)
        expected = {name for name, what in filed.items() if ours.may_conflict(what)}
        assert index.sharing(ours) == expected
        assert index.heads == dict.fromkeys(filed, "h1")
