"""A one-row input for the table filter and the log search: no border, text always seen.

A box that was hidden takes keys before its first layout (``/`` then typing at
once, or a paste): the input scrolls its text out of a zero-width view then.
Once it has its width, it scrolls back so the cursor sits at the right end.
Escape is the box's own key (``Closed``), so an escape meant for a dialog above
never reaches it.
"""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from textual.binding import Binding, BindingType
from textual.events import Resize
from textual.message import Message
from textual.widgets import Input


class SearchBox(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", tooltip="Close the box", show=False),
    ]

    class Closed(Message):
        """Escape in the box: whoever opened it hides it and takes the focus back."""

        def __init__(self, box: SearchBox) -> None:
            super().__init__()
            self.box = box

        @property
        def control(self) -> SearchBox:
            return self.box

    def __init__(self, placeholder: str, *, id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, id=id, compact=True)

    def on_resize(self, event: Resize) -> None:
        cursor = cell_len(self.value[: self.cursor_position])
        self.scroll_to(
            x=max(0, cursor - self.scrollable_content_region.width + 1),
            animate=False,
            immediate=True,
        )

    def action_close(self) -> None:
        self.post_message(self.Closed(self))
