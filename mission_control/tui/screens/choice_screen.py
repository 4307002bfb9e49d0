"""The one shape of every question the app asks: a sentence and answers with their keys.

Kill, skip, retry fresh and quit all ask through this screen, so each looks the
same: the keys are written on the buttons, a key answers at once, escape takes
the safe answer, and the safe answer has the focus (enter never destroys work
by accident).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.events import Key
from textual.screen import ModalScreen
from textual.widgets import Button, Label

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Choice(Generic[T]):
    key: str
    """The key that gives this answer (also shown on its button)."""
    label: str
    value: T
    name: str
    """The button's id."""
    variant: str = "default"


class ChoiceScreen(ModalScreen[T], Generic[T]):
    DEFAULT_CSS = """
    ChoiceScreen { align: center middle; }
    ChoiceScreen > Vertical {
        width: 66; max-width: 95%; height: auto;
        border: round $warning; background: $surface; padding: 1 2;
    }
    ChoiceScreen .choice-screen--question { width: 100%; text-style: bold; }
    ChoiceScreen .choice-screen--detail { width: 100%; color: $text-muted; margin-top: 1; }
    ChoiceScreen Horizontal { height: auto; align-horizontal: center; margin-top: 1; }
    ChoiceScreen Button { margin: 0 1; min-width: 10; }
    """

    ESCAPE_HINT: ClassVar[str] = "esc"

    def __init__(
        self, question: str, detail: str, choices: Sequence[Choice[T]], safe: Choice[T]
    ) -> None:
        """``question`` and ``detail`` are markup (escape names in them); ``safe`` is the
        answer escape gives, and it is one of ``choices``."""
        super().__init__()
        self._question = question
        self._detail = detail
        self._choices = list(choices)
        self._safe = safe

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._question, classes="choice-screen--question")
            if self._detail:
                yield Label(self._detail, classes="choice-screen--detail")
            with Horizontal():
                for choice in self._choices:
                    key = self.ESCAPE_HINT if choice is self._safe else choice.key
                    if choice is self._safe and choice.key != "escape":
                        key = f"{choice.key}/{self.ESCAPE_HINT}"
                    yield Button(
                        f"{choice.label} ({key})",
                        id=choice.name,
                        variant=choice.variant,  # type: ignore[arg-type]
                    )

    def on_mount(self) -> None:
        self.query_one(f"#{self._safe.name}", Button).focus()

    def on_key(self, event: Key) -> None:
        if event.key == "escape":
            event.stop()
            self.dismiss(self._safe.value)
            return
        for choice in self._choices:
            if event.key == choice.key:
                event.stop()
                self.dismiss(choice.value)
                return

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        for choice in self._choices:
            if choice.name == event.button.id:
                self.dismiss(choice.value)
