"""A log pane: which workstream and attempt it follows, a search box, and its ``LogView``.

The app tells a pane which workstream to show (``show_workstream``) and passes
it the workstream's current view on every refresh (``update_view``); the pane
picks the attempt's log file and keeps its own header current.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Input

from ...engine.snapshot import WorkstreamView
from ...store.watch import LogWatcher
from ..untrusted import markup_escape
from .log_view import REFRESH_SECONDS, LogView
from .search_box import SearchBox
from .status_style import state_markup

_ATTEMPT_FILE = re.compile(r"attempt-(\d+)\.log$")


def attempt_path(current: Path, attempt: int) -> Path:
    """The log of another attempt of the same workstream: a sibling file."""
    return current.with_name(f"attempt-{attempt}.log")


class _PaneTitle(Widget):
    """The pane's one-line title; its size never changes, so an update repaints only it."""

    text: reactive[Content] = reactive(Content(""), layout=False)

    def render(self) -> Content:
        return self.text


class LogPane(Vertical, can_focus=False):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "search_next", "Next match", tooltip="Next match of the search"),
        Binding("N", "search_previous", "Prev match", tooltip="Previous match", show=False),
        Binding("left_square_bracket", "attempt(-1)", "Older attempt", tooltip="Older attempt"),
        Binding("right_square_bracket", "attempt(1)", "Newer attempt", tooltip="Newer attempt"),
    ]

    DEFAULT_CSS = """
    LogPane { width: 1fr; height: 1fr; border-left: vkey $panel; }
    LogPane > .log-pane--title { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    LogPane.-active > .log-pane--title { background: $primary 30%; color: $foreground; }
    LogPane > Input { dock: bottom; height: 1; padding: 0 1; display: none; background: $panel; }
    LogPane.-searching > Input { display: block; }
    """

    task_id: reactive[str | None] = reactive(None)
    """The workstream this pane follows."""
    attempt: reactive[int | None] = reactive(None)
    """The attempt shown; None means the current one (and moves on to the next)."""

    def __init__(
        self,
        task_id: str | None = None,
        *,
        id: str | None = None,
        watcher: LogWatcher | None = None,
        refresh_interval: float = REFRESH_SECONDS,
    ) -> None:
        super().__init__(id=id)
        self._watcher = watcher
        self._refresh_interval = refresh_interval
        self.set_reactive(LogPane.task_id, task_id)
        self._view: WorkstreamView | None = None
        self._pattern = ""
        self._note = ""
        self._composed = False
        self._shown_title = ""

    def compose(self) -> ComposeResult:
        yield _PaneTitle(classes="log-pane--title")
        yield LogView(watcher=self._watcher, refresh_interval=self._refresh_interval)
        yield SearchBox("search (enter; n/N next/previous; esc closes)")

    @property
    def log_view(self) -> LogView:
        return self.query_one(LogView)

    # ------------------------------------------------------------ inputs

    def show_workstream(self, task_id: str, view: WorkstreamView | None) -> None:
        self.task_id = task_id
        self.attempt = None
        self._note = ""
        self.update_view(view)

    def update_view(self, view: WorkstreamView | None) -> None:
        """The followed workstream changed (state, attempt, log path)."""
        self._view = view
        if not self._composed:
            return  # on_mount applies it
        self.log_view.open(self._path())
        self._title()

    def _path(self) -> Path | None:
        view = self._view
        if view is None or view.log_path is None:
            return None
        current = Path(view.log_path)
        if self.attempt is None or self.attempt == view.attempt:
            return current
        return attempt_path(current, self.attempt)

    def _title(self) -> None:
        """Rewrite the title line, only when its text changed (an update lays the pane out)."""
        view = self._view
        if not self._composed:
            return
        if view is None:
            markup = f" {markup_escape(self.task_id or 'no workstream')}"
        else:
            shown = self.attempt or view.attempt
            attempt = f"attempt {shown}/{view.attempt}" if view.attempt else "not started"
            follow = "following" if self.log_view.follow else "scrolled (end: follow)"
            # an earlier attempt has ended whatever the workstream does now
            state = state_markup(view.state) if shown == view.attempt else "[$text-muted]ended[/]"
            parts = [f"[b]{markup_escape(view.ws_id)}[/b]", state, attempt, follow]
            if self._note:
                parts.append(self._note)
            markup = "  ".join(parts)
        if markup != self._shown_title:
            self._shown_title = markup
            self.query_one(_PaneTitle).text = Content.from_markup(markup)

    # ------------------------------------------------------------ handlers

    @on(LogView.Found)
    def _found(self, message: LogView.Found) -> None:
        if message.error:
            self._note = f"[$error]{markup_escape(message.error)}[/]"
        elif message.line is None:
            self._note = f"[$warning]no match for {markup_escape(repr(message.pattern))}[/]"
        else:
            self._note = f"match: line {message.line + 1}"
        self._title()

    @on(LogView.Failed)
    def _failed(self, message: LogView.Failed) -> None:
        self._note = f"[$error]cannot read log: {markup_escape(message.error)}[/]"
        self._title()

    def watch_task_id(self) -> None:
        self._title()

    def on_mount(self) -> None:
        self._composed = True
        self.watch(self.log_view, "follow", lambda _f: self._title(), init=False)
        self.update_view(self._view)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._pattern = event.value
        self.log_view.match_line = None
        self.log_view.search(self._pattern)
        self.log_view.focus()

    @on(SearchBox.Closed)
    def _search_closed(self, event: SearchBox.Closed) -> None:
        event.stop()
        self.remove_class("-searching")
        self.log_view.focus()

    def action_start_search(self) -> None:
        self.add_class("-searching")
        # At once, not at the next idle moment as ``focus()`` would: the keys typed
        # right after ``/`` are already queued, and they belong to the box.
        self.screen.set_focus(self.query_one(Input))

    def action_search_next(self) -> None:
        if self._pattern:
            self.log_view.search(self._pattern)

    def action_search_previous(self) -> None:
        if self._pattern:
            self.log_view.search(self._pattern, backwards=True)

    def action_attempt(self, delta: int) -> None:
        view = self._view
        if view is None or not view.attempt:
            return
        shown = (self.attempt or view.attempt) + delta
        shown = max(1, min(view.attempt, shown))
        self.attempt = None if shown == view.attempt else shown
        self._note = ""
        self.update_view(view)
