"""The bottom line: the keys that matter where the focus is, whole entries only.

Textual's ``Footer`` lays its keys out as widgets and cuts the last one at the
screen's edge. This bar renders the focused widget's keys first, then the screen's and the
app's, and stops before the first entry that would not fit; help and quit stay
at the right end, so ``?`` is always there to list the rest. In a text box the
one-character keys are typed, so the bar says how to apply or leave the box.
"""

from __future__ import annotations

from rich.cells import cell_len
from textual.app import RenderResult
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input

_GAP = "  "
_RIGHT_KEYS = ("question_mark", "q")
"""Shown at the right end whatever the width: the way to the rest, and the way out."""


class KeyBar(Widget):
    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, _screen: Screen[object]) -> None:
        self.refresh()

    def entries(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(key, description) pairs to show: the context's, then the right end's."""
        left: list[tuple[str, str]] = []
        right: dict[str, tuple[str, str]] = {}
        seen: set[str] = set()
        typing = isinstance(self.screen.focused, Input)
        if typing:  # every letter goes into the box: say how to leave it
            left = [("enter", "Apply"), ("esc", "Close")]
        for key, active in self.screen.active_bindings.items():
            binding: Binding = active.binding
            if not binding.show or not active.enabled:
                continue
            if typing and len(self.app.get_key_display(binding)) == 1:
                continue  # a one-character key is typed, not a command, here
            entry = (self.app.get_key_display(binding), binding.description)
            if entry[1] in seen:
                continue  # two keys for one thing (j and down): show the first
            seen.add(entry[1])
            if key in _RIGHT_KEYS:
                right[key] = entry
            else:
                left.append(entry)
        return left, [right[k] for k in _RIGHT_KEYS if k in right]

    def render(self) -> RenderResult:
        left, right = self.entries()
        width = self.content_size.width
        room = width - _length(right) - len(_GAP)
        shown: list[tuple[str, str]] = []
        for entry in left:
            if _length([*shown, entry]) > room:
                break
            shown.append(entry)
        pad = max(1, width - _length(shown) - _length(right))
        return Content.assemble(*_cells(shown), " " * pad, *_cells(right))


def _length(entries: list[tuple[str, str]]) -> int:
    return sum(cell_len(k) + 1 + cell_len(d) for k, d in entries) + len(_GAP) * max(
        0, len(entries) - 1
    )


def _cells(entries: list[tuple[str, str]]) -> list[tuple[str, str] | str]:
    parts: list[tuple[str, str] | str] = []
    for index, (key, description) in enumerate(entries):
        if index:
            parts.append(_GAP)
        parts.extend([(key, "bold $accent"), " ", (description, "$foreground")])
    return parts
