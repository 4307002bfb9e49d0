"""Asked on quit while work is running: leave it running, stop it all, or stay."""

from __future__ import annotations

from typing import Literal

from .choice_screen import Choice, ChoiceScreen

QuitChoice = Literal["detach", "stop", "cancel"]


class QuitScreen(ChoiceScreen[QuitChoice]):
    def __init__(self, active: int) -> None:
        noun = "workstream is" if active == 1 else "workstreams are"
        cancel: Choice[QuitChoice] = Choice("escape", "Stay", "cancel", "cancel")
        super().__init__(
            f"{active} {noun} still running.",
            "Leave the agents running (come back with [b]mission-control attach[/b], or"
            " [b]resume[/b] later), or stop them all?",
            [
                Choice("l", "Leave running", "detach", "detach", "primary"),
                Choice("s", "Stop all", "stop", "stop", "error"),
                cancel,
            ],
            cancel,
        )
