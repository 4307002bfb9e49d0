"""A dialog to read and close: j/k scroll it, its own keys close it."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widget import Widget


class ReadingScreen(ModalScreen[None]):
    """Subclasses add the keys that close them (``close``) and name what scrolls."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll(1)", "Down", show=False),
        Binding("k", "scroll(-1)", "Up", show=False),
    ]

    SCROLLED: ClassVar[type[Widget]]
    """The widget j and k scroll."""

    def action_scroll(self, lines: int) -> None:
        self.query_one(self.SCROLLED).scroll_relative(y=lines, animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
