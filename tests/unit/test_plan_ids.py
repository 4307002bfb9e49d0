"""Ids become branch and folder names: the rules agree with git and with every OS."""

from __future__ import annotations

import subprocess

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mission_control.plan.ids import MAX_ID_LENGTH, id_problem, suggest_id


def _git_accepts(ident: str) -> bool:
    proc = subprocess.run(
        ["git", "check-ref-format", f"refs/heads/ws/{ident}/{ident}"],
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def test_ordinary_ids_are_fine() -> None:
    for ident in ("WS-07A", "PH-07", "ws_1.2", "Étape-3", "a"):
        assert id_problem(ident) is None, ident


def test_reasons_name_the_rule() -> None:
    assert id_problem("") == "is empty"
    assert id_problem("x" * (MAX_ID_LENGTH + 1)) == f"is longer than {MAX_ID_LENGTH} characters"
    assert id_problem("a\tb") == "contains a control character"
    assert id_problem("nul.txt") == "is a reserved device name on Windows"
    assert id_problem("@") == "is '@' (git reads it as HEAD)"


_alphabet = st.sampled_from(list("aZ09-_.~^:?*[]\\/ @{}<>|\"'!#$%&é\t\x7f"))


@settings(max_examples=120, deadline=None)
@given(ident=st.text(_alphabet, min_size=1, max_size=8))
@example(ident="a.lock")
@example(ident="a..b")
@example(ident="@")
@example(ident="a@{b")
def test_every_accepted_id_is_a_valid_git_ref_component(ident: str) -> None:
    if id_problem(ident) is None:
        assert _git_accepts(ident), ident
        assert not any(ch in ident for ch in '<>:"/\\|?*')  # Windows file names
        assert not ident.endswith((".", " "))


@settings(max_examples=200, deadline=None)
@given(ident=st.text(max_size=30))
def test_suggestions_are_always_usable(ident: str) -> None:
    assert id_problem(suggest_id(ident)) is None
