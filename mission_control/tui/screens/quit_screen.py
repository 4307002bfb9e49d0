"""Asked on quit while work is running: leave it running, stop it all, or stay."""

from __future__ import annotations

from typing import ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

QuitChoice = Literal["detach", "stop", "cancel"]


class QuitScreen(ModalScreen[QuitChoice]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "choose('cancel')", "Cancel"),
        Binding("l", "choose('detach')", "Leave running"),
        Binding("s", "choose('stop')", "Stop all"),
    ]

    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical {
        width: 64; max-width: 95%; height: auto;
        border: thick $primary; background: $surface; padding: 1 2;
    }
    QuitScreen Label { width: 100%; margin-bottom: 1; }
    QuitScreen Horizontal { height: auto; align-horizontal: center; }
    QuitScreen Button { margin: 0 1; min-width: 10; }
    """

    def __init__(self, active: int) -> None:
        super().__init__()
        self._active = active

    def compose(self) -> ComposeResult:
        noun = "workstream is" if self._active == 1 else "workstreams are"
        with Vertical():
            yield Label(f"[b]{self._active} {noun} still running.[/b]")
            yield Label(
                "Leave them running (resume later with [b]mission-control resume[/b]), "
                "stop them all, or go back?"
            )
            with Horizontal():
                yield Button("Leave running", id="detach", variant="primary")
                yield Button("Stop all", id="stop", variant="error")
                yield Button("Cancel", id="cancel")

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        choice = event.button.id
        if choice in ("detach", "stop", "cancel"):
            self.dismiss(choice)  # type: ignore[arg-type]

    def action_choose(self, choice: QuitChoice) -> None:
        self.dismiss(choice)
