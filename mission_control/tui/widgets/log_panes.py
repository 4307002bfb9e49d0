"""The log panes side by side: which one is active, which follow the cursor, adding and closing.

The screen tells the panes what the table's cursor rests on (``follow``), what the
user chose for the active pane (``show_chosen``) and each workstream's latest view
(``update_views``); the panes pick their files and read them. Every pane hears of
new bytes from the one log watcher, at an interval that grows with the number of
panes: together they repaint about six times a second however many are open.
"""

from __future__ import annotations

from collections.abc import Mapping

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.events import DescendantFocus

from ...engine.snapshot import WorkstreamView
from ...store.watch import LogWatcher
from .log_pane import LogPane
from .log_view import REFRESH_SECONDS, LogView

MAX_PANES = 4
STACK_WIDTH = 45
"""Below this many columns per pane, the panes stack instead of standing side by side."""


def refresh_interval(panes: int) -> float:
    """Seconds between two refreshes of one pane, when ``panes`` are open."""
    return REFRESH_SECONDS * max(1.0, panes * 2 / 3)


class LogPanes(Horizontal):
    """Up to ``MAX_PANES`` log panes; one is active (search, close and attempt keys act on it)."""

    def __init__(self, watcher: LogWatcher | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._watcher = watcher
        self._active: LogPane | None = None
        self._pinned: set[str] = set()
        """Ids of panes the user pointed at a workstream; the others follow the cursor."""
        self._serial = 1

    def compose(self) -> ComposeResult:
        yield LogPane(id="pane-1", watcher=self._watcher)

    # ------------------------------------------------------------ accessors

    @property
    def panes(self) -> list[LogPane]:
        return list(self.query(LogPane))

    @property
    def active_pane(self) -> LogPane | None:
        panes = self.panes
        if self._active in panes:
            return self._active
        return panes[0] if panes else None

    @property
    def log_views(self) -> list[LogView]:
        """The panes' views, left to right (the focus order)."""
        return [pane.log_view for pane in self.panes]

    # ------------------------------------------------------------ inputs

    def follow(self, task_id: str, view: WorkstreamView | None) -> None:
        """The cursor rests on ``task_id``: panes not pinned to a workstream show it."""
        for pane in self.panes:
            if pane.id not in self._pinned:
                pane.show_workstream(task_id, view)

    def show_chosen(self, task_id: str, view: WorkstreamView | None) -> None:
        """The user chose ``task_id`` (enter): the active pane shows it and stays on it."""
        pane = self.active_pane
        if pane is not None:
            self._pinned.add(pane.id or "")
            pane.show_workstream(task_id, view)

    def update_views(self, views: Mapping[str, WorkstreamView]) -> None:
        for pane in self.panes:
            if pane.task_id is not None:
                pane.update_view(views.get(pane.task_id))

    def hold(self, until: float) -> None:
        """Until ``time.monotonic()`` reaches ``until``, panes without the focus hold new lines."""
        for view in self.query(LogView):
            view.hold_until = until

    def set_active(self, pane: LogPane) -> None:
        self._active = pane
        for other in self.panes:
            other.set_class(other is pane, "-active")

    def add(self, task_id: str | None, view: WorkstreamView | None) -> bool:
        """Open a pane on ``task_id`` and make it active; False when ``MAX_PANES`` are open."""
        count = len(self.panes)
        if count >= MAX_PANES:
            return False
        self._serial += 1
        pane = LogPane(
            task_id,
            id=f"pane-{self._serial}",
            watcher=self._watcher,
            refresh_interval=refresh_interval(count + 1),
        )
        self._pinned.add(pane.id or "")
        self.mount(pane)
        if task_id is not None:
            pane.show_workstream(task_id, view)
        self.set_active(pane)
        self._share_refreshes(count + 1)
        return True

    def close_active(self) -> bool:
        """Close the active pane; False when it is the last one (it stays)."""
        pane = self.active_pane
        panes = self.panes
        if pane is None or len(panes) <= 1:
            return False
        self._pinned.discard(pane.id or "")
        index = panes.index(pane)
        pane.remove()
        rest = [p for p in panes if p is not pane]
        self.set_active(rest[min(index, len(rest) - 1)])
        self._share_refreshes(len(rest))
        return True

    def fit_width(self, width: int) -> None:
        """Stack the panes when side by side each would be too narrow."""
        count = max(1, len(self.panes))
        self.set_class(width // count < STACK_WIDTH, "-stacked")

    def _share_refreshes(self, count: int) -> None:
        interval = refresh_interval(count)
        for view in self.query(LogView):
            view.refresh_interval = interval

    # ------------------------------------------------------------ handlers

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        widget = getattr(event, "widget", None)
        for node in getattr(widget, "ancestors_with_self", []):
            if isinstance(node, LogPane):
                self.set_active(node)
                break
