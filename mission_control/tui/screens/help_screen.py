"""Every key, by where it works: built from the widgets' own bindings, so it never drifts.

The app hands over its sections (a title and the bindings of one context, plus
keys a widget handles without a binding); keys that do one thing are shown on
one line (``j / down``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from rich.cells import cell_len
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from .reading_screen import ReadingScreen


@dataclass(frozen=True, slots=True)
class HelpSection:
    title: str
    bindings: Sequence[BindingType] = ()
    extra: Sequence[tuple[str, str]] = field(default_factory=tuple)
    """(keys, what they do) for keys handled without a binding."""


class HelpScreen(ReadingScreen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,f1", "close", "Close")]
    SCROLLED = VerticalScroll

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 100; max-width: 100%; height: 90%;
        border: round $primary; background: $surface;
    }
    HelpScreen #help-title { width: 100%; background: $panel; padding: 0 1; }
    HelpScreen Grid { grid-size: 2; grid-gutter: 0 2; height: auto; padding: 0 1; }
    HelpScreen.-narrow Grid { grid-size: 1; }
    HelpScreen .help-screen--section { height: auto; margin-bottom: 1; }
    """

    def __init__(self, sections: Sequence[HelpSection]) -> None:
        super().__init__()
        self._sections = list(sections)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("[b]Keys[/b]  (esc closes)", id="help-title")
            with VerticalScroll(), Grid():
                for section in self._sections:
                    yield Static(_section_content(self, section), classes="help-screen--section")

    def on_mount(self) -> None:
        self.set_class(self.app.size.width < 90, "-narrow")


def key_rows(screen: ModalScreen[None], section: HelpSection) -> list[tuple[str, str]]:
    """The section's (keys, meaning) rows, keys of one action joined."""
    rows: dict[str, tuple[list[str], str]] = {}
    for binding in Binding.make_bindings(section.bindings):
        what = binding.tooltip or binding.description
        if not what:
            continue
        keys, _ = rows.setdefault(binding.action, ([], what))
        shown = screen.app.get_key_display(binding)
        if shown not in keys:
            keys.append(shown)
    result = [(" / ".join(keys), what) for keys, what in rows.values()]
    result.extend(section.extra)
    return result


def _section_content(screen: ModalScreen[None], section: HelpSection) -> Content:
    rows = key_rows(screen, section)
    width = max((cell_len(k) for k, _ in rows), default=0)
    parts: list[tuple[str, str] | str] = [(section.title, "bold $primary")]
    for keys, what in rows:
        pad = " " * (width - cell_len(keys))
        parts.extend(["\n", (keys, "bold $accent"), pad + "  ", what])
    return Content.assemble(*parts)
