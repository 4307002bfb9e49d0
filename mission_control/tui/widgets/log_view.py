"""One log file on screen, read the way ``less`` reads: never the whole file.

A reader thread owns the file (``store.logs.LogTail``): it sleeps until the
process's log watcher (``store.watch``) says the file grew, or the user scrolls
or searches, then reads just the window of lines around what is shown and posts
that window to the widget. The event loop never touches the file: ``render_line``
draws from the window it was given, and asks the thread for another window when
the user scrolls out of it. So memory is bounded by the window and the tail's own
small caches, whatever the file's size, and a full-speed writer costs one small
message per ``refresh_interval`` (the watcher coalesces the writes in between).

Follow mode is on while the view sits at the bottom: scrolling up stops it,
reaching the end again (or ``end``) resumes it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.timer import Timer

from ...errors import MissionControlError
from ...store.logs import LogTail
from ...store.watch import LogGrew, LogWatcher, shared_watcher
from ..untrusted import styled

REFRESH_SECONDS = 0.25
"""The least time between two refreshes for new bytes; a user's scroll or search reads
at once. Four updates a second read as live, and each one repaints the whole pane."""
WINDOW_MARGIN = 100
"""Lines kept above and below the visible ones."""
MAX_RENDER_CELLS = 2000
"""Longer lines are cut on screen (search still finds text beyond)."""
_STRIP_CACHE = 400


@dataclass(frozen=True, slots=True)
class _Window:
    generation: int
    total: int
    complete: bool
    start: int
    lines: list[str]
    partial: str


def _line_at(window: _Window, index: int) -> str | None:
    """The text of absolute line ``index`` if the window holds it."""
    offset = index - window.start
    return window.lines[offset] if 0 <= offset < len(window.lines) else None


@dataclass(slots=True)
class _Request:
    start: int | None = None
    """Window start wanted; None = the end (following)."""
    count: int = 200
    search: tuple[str, int, bool] | None = None
    older: bool = False


class _Reader(threading.Thread):
    """Owns the ``LogTail`` of the view's current file; every file read happens here.

    One thread per view for its whole life: switching files (another workstream,
    another attempt) only swaps the tail, so moving through the table starts no
    threads. Messages carry the switch's serial so a late one for an old file is
    dropped.
    """

    def __init__(self, view: LogView) -> None:
        super().__init__(name="log-reader", daemon=True)
        self._view = view
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._request = _Request()
        self._path: Path | None = None
        self._serial = 0
        self._sent: tuple[int, int, int, int, str] | None = None

    def switch(self, path: Path | None, serial: int) -> None:
        with self._lock:
            self._path = path
            self._serial = serial
            self._request = _Request()
        self._wake.set()

    def ask(
        self,
        *,
        start: int | None,
        count: int,
        search: tuple[str, int, bool] | None = None,
        older: bool = False,
    ) -> None:
        with self._lock:
            self._request.start = start
            self._request.count = count
            if search is not None:
                self._request.search = search
            if older:
                self._request.older = True
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self) -> None:
        """The file grew (the log watcher's thread calls this)."""
        self._wake.set()

    def run(self) -> None:
        tail: LogTail | None = None
        serial = -1
        try:
            while not self._stop.is_set():
                with self._lock:
                    path, wanted = self._path, self._serial
                if wanted != serial:
                    if tail is not None:
                        tail.close()
                    tail = LogTail(path) if path is not None else None
                    serial = wanted
                    self._sent = None
                if tail is not None:
                    try:
                        self._tick(tail, serial)
                    except Exception as exc:  # a broken file must not kill the app
                        self._view.post_message(LogView.Failed(self._view, f"{path}: {exc}"))
                        tail.close()
                        tail = None
                self._wake.wait()  # the log watcher, a scroll or a switch wakes it
                self._wake.clear()
        finally:
            if tail is not None:
                tail.close()

    def _tick(self, tail: LogTail, serial: int) -> None:
        tail.refresh()
        with self._lock:
            request = self._request
            self._request = _Request(start=request.start, count=request.count)
        if request.older and not tail.complete:
            added = tail.extend_backwards()
            if added:
                self._view.post_message(LogView.Prepended(self._view, serial, added))
                if request.start is not None:
                    request.start += added
                self._sent = None
        if request.search is not None:
            pattern, start, backwards = request.search
            try:
                found = tail.find(pattern, start, backwards=backwards, ignore_case=True)
                if found is None:  # wrap around, as less does
                    found = tail.find(
                        pattern,
                        tail.line_count - 1 if backwards else 0,
                        backwards=backwards,
                        ignore_case=True,
                    )
            except MissionControlError as exc:
                self._view.post_message(LogView.Found(self._view, serial, pattern, None, str(exc)))
            else:
                self._view.post_message(LogView.Found(self._view, serial, pattern, found, None))
        total = tail.line_count
        count = request.count
        start = max(0, total - count) if request.start is None else max(0, request.start)
        partial = tail.partial_line() if request.start is None or start + count >= total else ""
        key = (tail.generation, total, start, count, partial)
        if key == self._sent:
            return
        self._sent = key
        lines = tail.get_lines(start, count)
        window = _Window(tail.generation, total, tail.complete, start, lines, partial)
        self._view.post_message(LogView.Loaded(self._view, serial, window))


class LogView(ScrollView, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("end", "follow", "Follow", tooltip="Go to the end and follow new lines"),
        Binding("home", "top", "Top", tooltip="Go to the first line", show=False),
        Binding("j", "scroll_down", "Down", tooltip="Scroll down", show=False),
        Binding("k", "scroll_up", "Up", tooltip="Scroll up (stops following)", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {"log-view--match", "log-view--note"}

    DEFAULT_CSS = """
    /* the vertical bar always shows: its coming and going would lay out the screen */
    LogView { background: $surface; scrollbar-size: 1 1; overflow-y: scroll; }
    LogView > .log-view--match { background: $warning 40%; }
    LogView > .log-view--note { color: $text-muted; text-style: italic; }
    """

    follow: reactive[bool] = reactive(True)
    """Stick to the end as lines arrive."""
    match_line: reactive[int | None] = reactive(None)
    """Line of the last search hit, highlighted."""

    class Loaded(Message):
        def __init__(self, view: LogView, serial: int, window: _Window) -> None:
            super().__init__()
            self.view = view
            self.serial = serial
            self.window = window

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, LogView.Loaded) and message.view is self.view

    class Prepended(Message):
        def __init__(self, view: LogView, serial: int, added: int) -> None:
            super().__init__()
            self.view = view
            self.serial = serial
            self.added = added

    class Found(Message):
        def __init__(
            self, view: LogView, serial: int, pattern: str, line: int | None, error: str | None
        ) -> None:
            super().__init__()
            self.view = view
            self.serial = serial
            self.pattern = pattern
            self.line = line
            self.error = error

    class Failed(Message):
        def __init__(self, view: LogView, error: str) -> None:
            super().__init__()
            self.view = view
            self.error = error

    def __init__(
        self,
        *,
        watcher: LogWatcher | None = None,
        refresh_interval: float = REFRESH_SECONDS,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.path: Path | None = None
        self._reader: _Reader | None = None
        self._serial = 0
        self._watcher = watcher
        self._unwatch: Callable[[], None] | None = None
        self._refresh_interval = refresh_interval
        self.hold_until = 0.0
        """``time.monotonic()`` before which new lines wait (the app sets it on each key)."""
        self._held: _Window | None = None
        self._hold_timer: Timer | None = None
        self._window = _Window(0, 0, True, 0, [], "")
        self._strips: OrderedDict[int, Strip] = OrderedDict()
        self._crop_key = (0, 0)
        self._base_style: Style | None = None
        self._max_width = 0
        self._asked_older = False

    # ------------------------------------------------------------ inputs

    def open(self, path: Path | None) -> None:
        """Show ``path`` (``None``: nothing), following its end."""
        if path == self.path:
            return
        self.path = path
        self._serial += 1
        self._held = None
        self._window = _Window(0, 0, True, 0, [], "")
        self._strips.clear()
        self._max_width = 0
        self.match_line = None
        self.follow = True
        if path is None:  # no window will come to set it
            self._set_virtual_size(Size(0, 0))
        self.refresh()
        if self._reader is None:
            self._reader = _Reader(self)
            self._reader.start()
        self._subscribe()  # before the first read: no growth falls between the two
        self._reader.switch(path, self._serial)
        self._ask()

    @property
    def refresh_interval(self) -> float:
        """The least time between two refreshes for new bytes (panes share a budget)."""
        return self._refresh_interval

    @refresh_interval.setter
    def refresh_interval(self, seconds: float) -> None:
        if seconds != self._refresh_interval:
            self._refresh_interval = seconds
            self._subscribe()

    def _subscribe(self) -> None:
        """Hear of the shown file's growth from the log watcher (and of nothing else)."""
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        reader = self._reader
        if self.path is None or reader is None:
            return

        def grew(_news: LogGrew) -> None:
            reader.wake()

        watcher = self._watcher or shared_watcher()
        self._unwatch = watcher.watch(self.path, grew, min_interval=self._refresh_interval)

    def search(self, pattern: str, *, backwards: bool = False) -> None:
        if self._reader is None or not pattern:
            return
        here = self.match_line
        if here is None:
            here = int(self.scroll_y) - self._offset + (self.size.height if backwards else 0)
            here = min(here, self._window.total)
        start = here - 1 if backwards else here + 1
        if self.match_line is None:
            start = here
        self._ask(search=(pattern, start, backwards))

    @property
    def _offset(self) -> int:
        """Rows above line 0: the 'older lines' note while the file is not fully indexed."""
        return 0 if self._window.complete else 1

    @property
    def line_count(self) -> int:
        return self._window.total

    @property
    def window_lines(self) -> int:
        """Lines held in memory now (for tests: bounded whatever the file's size)."""
        return len(self._window.lines)

    # ------------------------------------------------------------ reader link

    def _visible_count(self) -> int:
        return max(1, self.size.height) + 2 * WINDOW_MARGIN

    def _ask(self, *, search: tuple[str, int, bool] | None = None, older: bool = False) -> None:
        if self._reader is None:
            return
        top = int(self.scroll_y) - self._offset
        start = None if self.follow else max(0, top - WINDOW_MARGIN)
        self._reader.ask(start=start, count=self._visible_count(), search=search, older=older)

    def _stop_reader(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._reader is not None:
            self._reader.stop()
            self._reader = None

    def on_unmount(self) -> None:
        self._stop_reader()

    def on_resize(self, _event: events.Resize) -> None:
        self._ask()
        self.call_after_refresh(self._stick_to_end)

    def on_log_view_loaded(self, message: LogView.Loaded) -> None:
        message.stop()
        if message.view is not self or message.serial != self._serial:
            return
        wait = self.hold_until - time.monotonic()
        if wait > 0 and self.follow and not self.has_focus:
            # The user is typing elsewhere: a repaint here would make the keys wait.
            self._held = message.window
            if self._hold_timer is None:
                self._hold_timer = self.set_timer(wait, self._release)
            return
        self._show_window(message.window)

    def _release(self) -> None:
        self._hold_timer = None
        held, self._held = self._held, None
        if held is None:
            return
        wait = self.hold_until - time.monotonic()
        if wait > 0:
            self._held = held
            self._hold_timer = self.set_timer(wait, self._release)
            return
        self._show_window(held)

    def _show_window(self, window: _Window) -> None:
        old = self._window
        if window.generation != old.generation:
            self._strips.clear()
        else:
            # A following pane's window slides on every refresh: keep each rendered
            # line whose text did not change, so only new lines are parsed again.
            for index in list(self._strips):
                if _line_at(window, index) is None or _line_at(window, index) != _line_at(
                    old, index
                ):
                    del self._strips[index]
        self._window = window
        self._asked_older = False
        widest = max((len(line) for line in window.lines), default=0)
        self._max_width = min(MAX_RENDER_CELLS, max(self._max_width, widest))
        height = window.total + (1 if window.partial else 0) + (0 if window.complete else 1)
        self._set_virtual_size(Size(self._max_width, height))
        if self.follow:
            self._stick_to_end()
            self.call_after_refresh(self._stick_to_end)
        self.refresh()

    def _set_virtual_size(self, size: Size) -> None:
        """Grow the scroll range without a layout of the whole screen.

        Assigning ``virtual_size`` lays out every widget again; a log growing ten
        times a second in four panes would spend its time there. Only when a
        scrollbar appears or goes (which changes this widget's content area) is
        a layout needed.
        """
        old = self.virtual_size
        if size == old:
            return
        width = self.container_size.width
        if (old.width > width) != (size.width > width):  # the horizontal bar comes or goes
            self.virtual_size = size
            return
        self.set_reactive(ScrollView.virtual_size, size)
        self._scroll_update(size)
        self.refresh()

    def _stick_to_end(self) -> None:
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def on_log_view_prepended(self, message: LogView.Prepended) -> None:
        message.stop()
        if message.view is not self or message.serial != self._serial:
            return
        self._strips.clear()
        if self.match_line is not None:
            self.match_line += message.added
        self._set_virtual_size(Size(self._max_width, self.virtual_size.height + message.added))
        self.scroll_to(y=self.scroll_y + message.added, animate=False, immediate=True)

    def on_log_view_found(self, message: LogView.Found) -> None:
        if message.view is not self or message.serial != self._serial:
            message.stop()
            return
        if message.line is not None:
            self.follow = False
            self.match_line = message.line
            target = max(0, message.line + self._offset - self.size.height // 2)
            self.scroll_to(y=target, animate=False, immediate=True)
            self._ask()

    # ------------------------------------------------------------ scrolling

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if round(old_value) == round(new_value):
            return
        # Follow stops only on the user's scroll-up (actions below), never because a
        # resize clamped the offset; reaching the end again resumes it.
        if self.is_vertical_scroll_end and not self.follow and new_value > old_value:
            self.follow = True
        window = self._window
        if not window.complete and int(new_value) <= 0 and not self._asked_older:
            self._asked_older = True
            self._ask(older=True)
        top = int(new_value) - self._offset
        end = window.start + len(window.lines)
        near_top = top - window.start < WINDOW_MARGIN // 2 and window.start > 0
        near_end = end - top - self.size.height < WINDOW_MARGIN // 2 and end < window.total
        if top < window.start or top + self.size.height > end or near_top or near_end:
            self._ask()

    def watch_follow(self, follow: bool) -> None:
        if follow:
            self.match_line = None
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self._ask()

    def watch_match_line(self) -> None:
        self._strips.clear()
        self.refresh()

    def action_follow(self) -> None:
        self.follow = True

    def action_top(self) -> None:
        self.follow = False
        self.scroll_home(animate=False, immediate=True)

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        if self.follow:
            self.follow = False

    def action_scroll_up(self) -> None:
        self.follow = False
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.follow = False
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.follow = False
        super().action_scroll_home()

    async def _on_mouse_down(self, event: events.MouseDown) -> None:
        # grabbing the scrollbar to look back stops following too
        if self.follow and event.x >= self.size.width - self.styles.scrollbar_size_vertical:
            self.follow = False

    # ------------------------------------------------------------ rendering

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        index = scroll_y + y
        width = self.size.width
        if self._base_style is None:
            self._base_style = self.rich_style
        base = self._base_style
        if (scroll_x, width) != self._crop_key:  # strips are cached cropped to the view
            self._crop_key = (scroll_x, width)
            self._strips.clear()
        window = self._window
        line_index = index - self._offset
        if not window.complete and index == 0:
            note = Text("▲ older lines: scroll up to read them", end="")
            note.stylize(self.get_component_rich_style("log-view--note", partial=True))
            return Strip(note.render(self.app.console)).crop_extend(0, width, base)
        strip = self._strips.get(line_index)
        if strip is None:
            text = self._line_text(line_index)
            if text is None:
                return Strip.blank(width, base)
            if line_index == self.match_line:
                text.stylize(self.get_component_rich_style("log-view--match", partial=True))
            segments = list(text.render(self.app.console))
            strip = Strip(Segment.apply_style(segments, base)).crop_extend(
                scroll_x, scroll_x + width, base
            )
            self._strips[line_index] = strip
            if len(self._strips) > _STRIP_CACHE:
                self._strips.popitem(last=False)
        return strip

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base_style = None  # the theme changed
        self._strips.clear()

    def _line_text(self, line_index: int) -> Text | None:
        window = self._window
        if window.start <= line_index < window.start + len(window.lines):
            raw = window.lines[line_index - window.start]
        elif line_index == window.total and window.partial:
            raw = window.partial
        else:
            return None
        text = styled(raw[: MAX_RENDER_CELLS * 2])  # colours kept, control codes dropped
        text.truncate(MAX_RENDER_CELLS)
        return text
