"""What is known of a commit's ancestry without asking git."""

from __future__ import annotations

from collections.abc import Sequence


def known_held(head: str, known_holds: Sequence[tuple[str, str]]) -> set[str]:
    """``head`` and every commit it holds by a row of (commit, a commit it holds) pairs
    seen made (finishing saw each commit made on the one before)."""
    made_on = dict(known_holds)
    held = {head}
    at = made_on.get(head)
    while at is not None and at not in held:
        held.add(at)
        at = made_on.get(at)
    return held
