"""The message box (``m``): a follow-up for a workstream's agent.

It shows what the agent asked, when it waits for an answer, and sends the text with
enter; escape closes it without sending. Every key goes to the box while it is open.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.events import Key
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from ..untrusted import markup_escape
from ..widgets.search_box import SearchBox


class MessageScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    MessageScreen { align: center middle; background: $background 50%; }
    MessageScreen > Vertical {
        width: 80; max-width: 95%; height: auto;
        border: round $accent; background: $surface; padding: 1 2;
    }
    MessageScreen .message-screen--title { width: 100%; text-style: bold; }
    MessageScreen .message-screen--question { width: 100%; color: $warning; margin-top: 1; }
    MessageScreen .message-screen--how { width: 100%; color: $text-muted; margin-top: 1; }
    MessageScreen SearchBox { margin-top: 1; background: $boost; }
    """

    def __init__(self, task_id: str, question: str | None, how: str) -> None:
        """``question``: why the agent waits (``asks: ...``, plain text); ``how``: what
        sending does."""
        super().__init__()
        self._task_id = task_id
        self._question = question
        self._how = how

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                f"Message to {markup_escape(self._task_id)}", classes="message-screen--title"
            )
            if self._question:
                yield Label(markup_escape(self._question), classes="message-screen--question")
            yield SearchBox("what should the agent do next?", id="message")
            yield Label(
                f"{markup_escape(self._how)}  ·  enter send  ·  esc cancel",
                classes="message-screen--how",
            )

    def on_mount(self) -> None:
        self.query_one(SearchBox).focus()

    def on_key(self, event: Key) -> None:
        if event.key == "escape":
            event.stop()
            self.dismiss(None)

    @on(Input.Submitted)
    def _send(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if text:
            self.dismiss(text)
        else:
            self.notify("write what the agent should do next, or esc to cancel")
