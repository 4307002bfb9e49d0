"""A yes/no question before an action that stops or throws away an agent's work."""

from __future__ import annotations

from .choice_screen import Choice, ChoiceScreen


class ConfirmScreen(ChoiceScreen[bool]):
    def __init__(self, question: str, yes: str = "Yes", detail: str = "") -> None:
        no = Choice("n", "No", False, "no")
        super().__init__(question, detail, [Choice("y", yes, True, "yes", "error"), no], no)
