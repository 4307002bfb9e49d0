"""A workstream's worktree diff against its base, loaded off the event loop.

The diff comes from a thread worker (git is blocking). Its lines are the
agent's file contents, so git's own colour codes and anything else that would
drive the terminal are taken out (``untrusted.plain``), and the screen colours
the plain diff itself with the theme's colours. A huge diff is cut at
``MAX_LINES`` lines of at most ``MAX_LINE_CHARS`` characters, so opening it
stays quick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Label, RichLog

from ..untrusted import markup_escape, plain
from .reading_screen import ReadingScreen

MAX_LINES = 20_000
MAX_LINE_CHARS = 2_000
_FILE_LINES = ("diff --git", "+++ ", "--- ", "index ", "new file", "deleted file")


class DiffScreen(ReadingScreen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,d", "close", "Close")]
    SCROLLED = RichLog

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "diff-screen--added",
        "diff-screen--removed",
        "diff-screen--hunk",
        "diff-screen--file",
    }

    DEFAULT_CSS = """
    DiffScreen { align: center middle; }
    DiffScreen > Vertical {
        width: 95%; height: 90%; border: thick $primary; background: $surface;
    }
    DiffScreen Label { width: 100%; background: $panel; padding: 0 1; }
    DiffScreen RichLog { height: 1fr; background: $surface; }
    DiffScreen > .diff-screen--added { color: $success; }
    DiffScreen > .diff-screen--removed { color: $error; }
    DiffScreen > .diff-screen--hunk { color: $secondary; }
    DiffScreen > .diff-screen--file { color: $primary; text-style: bold; }
    """

    def __init__(self, task_id: str, load: Callable[[], str]) -> None:
        super().__init__()
        self.task_id = task_id
        self._load = load

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                f"[b]Diff of {markup_escape(self.task_id)}[/b] against its base — loading…",
                id="title",
            )
            yield RichLog(highlight=False, markup=False, wrap=False, id="diff")

    def on_mount(self) -> None:
        self._fetch()

    @work(thread=True, exclusive=True, group="diff", exit_on_error=False)
    def _fetch(self) -> None:
        try:
            text = self._load()
        except Exception as exc:  # shown, not raised: the run goes on
            text = f"could not get the diff: {exc}"
        self.app.call_from_thread(self._show, text)

    def _show(self, text: str) -> None:
        log = self.query_one(RichLog)
        lines = text.splitlines()
        styles = {
            "+": self.get_component_rich_style("diff-screen--added"),
            "-": self.get_component_rich_style("diff-screen--removed"),
            "@": self.get_component_rich_style("diff-screen--hunk"),
        }
        file_style = self.get_component_rich_style("diff-screen--file")
        for raw in lines[:MAX_LINES]:
            line = plain(raw[: MAX_LINE_CHARS * 2])[:MAX_LINE_CHARS]
            if line.startswith(
                ("diff --git", "+++ ", "--- ", "index ", "new file", "deleted file")
            ):
                style = file_style
            else:
                style = styles.get(line[:1], Style())
            log.write(Text(line, style=style, no_wrap=True), expand=True)
        if not lines:
            log.write(Text("(no changes)"), expand=True)
        cut = f" (first {MAX_LINES} of {len(lines)} lines)" if len(lines) > MAX_LINES else ""
        self.query_one("#title", Label).update(
            f"[b]Diff of {markup_escape(self.task_id)}[/b] against its base{cut} — esc to close"
        )
