"""Conflict forecast: which branches would conflict if merged, without merging.

``git merge-tree --write-tree`` (git 2.38+) performs a real three-way merge in
memory and writes only objects, so no worktree, index or ref is touched and the
forecast can run at any time, for any pair, in parallel with the workstreams
themselves. Exit code 1 means conflicts; with ``--name-only -z`` the output is
the merged tree's id followed by the conflicted paths, NUL-separated.

A phase's forecasts must not grow with the square of its size: a hundred
branches that all touch one file would be 4,950 pairwise merges. So the
branches that merged cleanly are folded, one by one as they are first seen, into
one commit that merges them all (``_Combined``, kept per repository and base).
A new branch is trial-merged once against that commit: when that merges clean,
it conflicts with none of the branches in it (a conflict with one of them is a
conflict with their merge, where that branch's change still sits), and only the
branches that did not fold in are merged with it pair by pair. When it
conflicts, pairs name who it conflicts with, exactly as without the combined
commit. Each branch costs about two merges, plus one per real conflict; a branch
whose edits the combined commit already holds (the same edit made again) costs one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import GitError
from .ancestry import known_held
from .identity import identity_config
from .ref_files import read_refs
from .repo import common_git_dir, rev_parse, run_git, trim_message
from .touched_paths import path_index, sits_on, touched


def trial_merge(repo: Path, ours: str, theirs: str) -> list[str]:
    """The files that would conflict merging ``theirs`` into ``ours`` (empty: merges clean)."""
    return _merge_tree(repo, ours, theirs)[1]


def _merge_tree(repo: Path, ours: str, theirs: str) -> tuple[str, list[str]]:
    """The merged tree's id and the conflicted files of merging ``theirs`` into ``ours``."""
    out = run_git(
        [
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            "--allow-unrelated-histories",
            "-z",
            ours,
            theirs,
        ],
        repo,
        check=False,
    )
    items = [item for item in out.stdout.split("\0") if item]
    if out.returncode not in (0, 1) or not items:
        raise GitError(
            f"{repo}: trial merge of {theirs} into {ours} failed:"
            f" {trim_message(out.stderr, out.stdout)} — check git is 2.38 or newer and both exist"
        )
    files: list[str] = []
    for name in items[1:] if out.returncode == 1 else ():  # items[0] is the merged tree's id
        if name not in files:
            files.append(name)
    return items[0], files


@dataclass(frozen=True, slots=True)
class Forecast:
    """What one forecast found, and the commit of the base it compared with."""

    conflicts: list[tuple[str, list[str]]]
    """``(other, files)`` for each branch (or the base, last) that would conflict."""
    base_head: str
    """The commit ``base_ref`` named: the engine forecasts again when the base moves."""


def forecast(
    repo: Path,
    branch: str,
    others: Sequence[str],
    base_ref: str,
    known_holds: Sequence[tuple[str, str]] = (),
    known_heads: Mapping[str, str] = {},
) -> Forecast:
    """Trial-merge ``branch`` with each of ``others`` and with ``base_ref``.

    ``known_holds``: (commit, a commit it holds) pairs seen made; a branch whose head
    they show ``branch`` holds needs no question to git (a chain's earlier links).
    ``known_heads``: the heads of some of ``others`` as the caller made them (a
    finished workstream's last commit); the others' heads are read from git.

    Returns ``(other, files)`` for each one that conflicts, in the order given
    (``base_ref`` last), naming ``other`` exactly as passed. Others that no
    longer exist (a branch cleaned up) are skipped; a missing ``branch`` or
    ``base_ref`` raises ``GitError``.

    Only the branches sharing a path with ``branch`` (``touched_paths``) are
    candidates; a branch (or base) ``branch`` already holds (a dependency, in a
    chain) merges as a no-op and is skipped too. Those left are merged through
    the combined commit of the module's docstring: a phase of a hundred branches
    costs a hundred cheap diffs and about two merges a branch.
    """
    repo = Path(repo)
    asked = [branch, base_ref, *(o for o in others if o not in known_heads)]
    heads: dict[str, str | None] = {**known_heads, **_heads(repo, asked)}
    for ref in (branch, base_ref):
        if heads.get(ref) is None:
            raise GitError(
                f"{repo}: cannot forecast conflicts: {ref} does not exist"
                " — check the branch names (was the branch deleted?)"
            )
    base_head, branch_head = heads[base_ref], heads[branch]
    assert base_head is not None and branch_head is not None
    alive = [o for o in dict.fromkeys(others) if o not in (branch, base_ref) and heads.get(o)]
    if sits_on(repo, base_head, branch_head):
        # The work sits on the current base (the usual case): the base is held, and
        # only the branches sharing a path are candidates. Whether the work holds one
        # of them is asked only if they must be merged pair by pair (a branch held
        # merges as a no-op, with the combined commit too).
        held = {base_ref}
        unheld = _sharing(repo, base_head, (branch, branch_head), alive, heads)
    else:
        held = _held(repo, branch_head, [*alive, base_ref], heads, known_holds)
        unheld = [o for o in alive if o not in held]
        if unheld:  # in a chain every other is held: nothing to diff
            unheld = _sharing(repo, base_head, (branch, branch_head), unheld, heads)
    candidates = {other: _head(heads, other) for other in unheld}

    def unheld_of(names: list[str]) -> list[str]:
        known = held | _held(
            repo, branch_head, [n for n in names if n not in held], heads, known_holds
        )
        left = [n for n in names if n not in known]
        if known_heads and left:  # merged by name: only those still there (few)
            there = _heads(repo, left)
            left = [n for n in left if there.get(n)]
        return left

    found = _conflicts_with(repo, (branch, branch_head), candidates, base_ref, unheld_of)
    conflicts = [(other, found[other]) for other in alive if found.get(other)]
    if base_ref not in held:  # a base the branch holds merges as a no-op
        files = trial_merge(repo, branch, base_ref)
        if files:
            conflicts.append((base_ref, files))
    return Forecast(conflicts, base_head)


def _sharing(
    repo: Path,
    base_head: str,
    branch: tuple[str, str],
    others: list[str],
    heads: Mapping[str, str | None],
) -> list[str]:
    """Those of ``others`` that touched a path near one ``branch`` (name, head) touched.

    Each other is filed in the base's ``PathIndex`` once per head (its diff asked
    then, if the commit step did not tell it), so a forecast costs a lookup per
    other, not a diff or a set comparison per other."""
    name, head = branch
    ours = touched(repo, base_head, head)
    index = path_index(repo, base_head)
    with index.lock:
        stale = [o for o in others if index.heads.get(o) != heads[o]]
    for other in stale:
        other_head = _head(heads, other)
        what = touched(repo, base_head, other_head)
        with index.lock:
            index.file(other, other_head, what)
    with index.lock:
        index.file(name, head, ours)
        shared = index.sharing(ours)
        # Filed at another head meanwhile (a forecast that saw it move): compared directly.
        moved = {o for o in others if index.heads.get(o) != heads[o]}
    return [
        o
        for o in others
        if (o in shared and o not in moved)
        or (o in moved and ours.may_conflict(touched(repo, base_head, _head(heads, o))))
    ]


def forecast_conflicts(
    repo: Path, branch: str, others: Sequence[str], base_ref: str
) -> list[tuple[str, list[str]]]:
    """``forecast(...).conflicts``: the conflicting ``(other, files)``, ``base_ref`` last."""
    return forecast(repo, branch, others, base_ref).conflicts


@dataclass(slots=True)
class _Combined:
    """One commit merging every branch of ``members`` (branch -> head), all cleanly.

    ``outsiders`` are the heads that conflicted with it: they are merged pair by pair.
    """

    lock: threading.Lock = field(default_factory=threading.Lock)
    commit: str | None = None
    tree: str | None = None
    """The tree of ``commit`` once a merge made it (None while it is a branch's head)."""
    members: dict[str, str] = field(default_factory=dict)
    outsiders: dict[str, str] = field(default_factory=dict)

    def forget(self) -> None:
        self.commit = self.tree = None
        self.members.clear()
        self.outsiders.clear()


_combined: dict[tuple[str, str], _Combined] = {}
_combined_lock = threading.Lock()


def _conflicts_with(
    repo: Path,
    branch: tuple[str, str],
    candidates: dict[str, str],
    base_ref: str,
    unheld_of: Callable[[list[str]], list[str]],
) -> dict[str, list[str]]:
    """The conflicting files of ``branch`` (name, head) with each of ``candidates``;
    ``unheld_of`` names those of a list the branch does not hold (only they can conflict)
    and that are still there to be merged by name."""
    if not candidates:
        return {}
    with _combined_lock:
        combined = _combined.setdefault((str(repo), base_ref), _Combined())
    name, head = branch
    with combined.lock:
        seen = {name: head, **candidates}
        if any(combined.members.get(n, h) != h for n, h in seen.items()):
            combined.forget()  # a branch moved on: its old head must not speak for it
        for other, other_head in candidates.items():
            if other not in combined.members and combined.outsiders.get(other) != other_head:
                _fold(repo, combined, other, other_head)
        if name in combined.members or _fold(repo, combined, name, head):
            # Clean with the merge of the members: clean with each of them.
            paired = [o for o in candidates if o in combined.outsiders]
        else:
            paired = list(candidates)
    return {other: trial_merge(repo, name, other) for other in unheld_of(paired)}


def _fold(repo: Path, combined: _Combined, name: str, head: str) -> bool:
    """Merge ``head`` into the combined commit if it merges cleanly; False if it conflicts."""
    combined.outsiders.pop(name, None)
    if combined.commit is None:
        combined.commit = head
        combined.members[name] = head
        return True
    tree, files = _merge_tree(repo, combined.commit, head)
    if files:
        combined.outsiders[name] = head
        return False
    if tree == combined.tree:
        # Its changes are all in the combined commit already (the same edits as other
        # branches made): a new commit would hold the same tree, so none is made.
        combined.members[name] = head
        return True
    out = run_git(
        ["commit-tree", tree, "-p", combined.commit, "-p", head, "-m", "conflict forecast"],
        repo,
        config=identity_config(repo),
        what="recording the merge of the finished branches",
    )
    combined.commit, combined.tree = out.stdout.strip(), tree
    combined.members[name] = head
    return True


def _heads(repo: Path, refs: Sequence[str]) -> dict[str, str | None]:
    """Each ref's commit (None for a ref that does not exist): branch names and full
    names from git's files, the rest (a tag, a commit) in one git call."""
    full = {ref: ref if ref.startswith("refs/") else f"refs/heads/{ref}" for ref in refs}
    from_files = read_refs(common_git_dir(repo), list(full.values())) or {}
    heads: dict[str, str | None] = {r: from_files[f] for r, f in full.items() if f in from_files}
    rest = [ref for ref in refs if ref not in heads]
    return {**heads, **_asked_heads(repo, rest)} if rest else heads


def _asked_heads(repo: Path, refs: Sequence[str]) -> dict[str, str | None]:
    """Each ref's commit in one git call (None for a ref that does not exist)."""
    unique = list(dict.fromkeys(refs))
    # Branch names cannot start with "-", so the refs cannot be read as options.
    out = run_git(["rev-parse", *unique], repo, check=False)
    found = out.stdout.split()
    if out.returncode == 0 and len(found) == len(unique):
        return dict(zip(unique, found, strict=True))
    return {ref: rev_parse(repo, ref) for ref in unique}  # one is missing: ask one by one


def _held(
    repo: Path,
    head: str,
    names: Sequence[str],
    heads: Mapping[str, str | None],
    known_holds: Sequence[tuple[str, str]],
) -> set[str]:
    """Those of ``names`` whose tip ``head`` holds: the known ones without git."""
    ancestry = known_held(head, known_holds)
    known = {n for n in names if heads.get(n) in ancestry}
    rest = [n for n in names if n not in known]
    return known | (_merged_into(repo, head, rest) if rest else set())


def _merged_into(repo: Path, head: str, names: Sequence[str]) -> set[str]:
    """Those of the branches ``names`` whose tip ``head`` already holds, in one git call."""
    refs = {(n if n.startswith("refs/") else f"refs/heads/{n}"): n for n in names}
    if not refs:
        return set()
    out = run_git(
        ["for-each-ref", "--format=%(refname)", f"--merged={head}", "--", *refs],
        repo,
        what="listing the branches already merged",
    )
    return {refs[ref] for ref in out.stdout.split() if ref in refs}


def _head(heads: Mapping[str, str | None], ref: str) -> str:
    head = heads[ref]
    assert head is not None  # only refs that exist are asked for
    return head
