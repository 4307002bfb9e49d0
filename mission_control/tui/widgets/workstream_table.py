"""The workstream table: one row per workstream, row key = task id.

Each refresh computes every cell's text, compares it with what the table shows
and calls ``update_cell`` only for cells that changed, so the cursor, the
scroll position and the sort stay put. Rows are rebuilt only when the filter
or the order changes, and then the cursor is put back on the same workstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable

from ...engine.snapshot import WorkstreamView
from ...engine.states import ACTIVE, FAILED_STATES, TERMINAL, WsState
from ..columns import COLUMN_BY_KEY, COLUMNS, Cell, ColumnSpec, content_widths, fit_columns
from ..messages import LogProbe
from ..untrusted import plain
from .status_style import STATE_CLASSES, state_css


def needs_attention(view: WorkstreamView) -> bool:
    """Asking, failed, stopped short, stalled or forecast to conflict: the user has to look."""
    return (
        view.state is WsState.NEEDS_INPUT
        or view.state in FAILED_STATES
        or view.state is WsState.INTERRUPTED
        or view.stalled
        or bool(view.conflicts)
    )


class StatusFilter(StrEnum):
    ALL = "all"
    ACTIVE = "active"
    FAILED = "failed"
    WAITING = "waiting"
    DONE = "done"
    ATTENTION = "attention"

    def matches(self, view: WorkstreamView) -> bool:
        state = view.state
        if self is StatusFilter.ALL:
            return True
        if self is StatusFilter.ACTIVE:
            return state in ACTIVE
        if self is StatusFilter.FAILED:
            return state in FAILED_STATES or state is WsState.INTERRUPTED
        if self is StatusFilter.WAITING:
            return state in (WsState.PENDING, WsState.QUEUED)
        if self is StatusFilter.ATTENTION:
            return needs_attention(view)
        return state in TERMINAL


class WorkstreamTable(DataTable[Text]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", tooltip="Show the workstream in the log pane"),
        Binding("j", "cursor_down", "Down", tooltip="Next workstream", show=False),
        Binding("k", "cursor_up", "Up", tooltip="Previous workstream", show=False),
        Binding("escape", "clear_filters", "Show all", tooltip="Show every workstream again"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = (
        DataTable.COMPONENT_CLASSES
        | STATE_CLASSES
        | {"workstream-table--stalled", "workstream-table--muted", "workstream-table--warn"}
    )

    DEFAULT_CSS = """
    WorkstreamTable { height: 1fr; overflow-x: hidden; }
    WorkstreamTable > .workstream-table--stalled { color: $error; text-style: bold reverse; }
    WorkstreamTable > .workstream-table--muted { color: $text-muted; }
    WorkstreamTable > .workstream-table--warn { color: $warning; text-style: bold; }
    """ + state_css("WorkstreamTable")

    class Selected(Message):
        """The cursor moved to another workstream."""

        def __init__(self, table: WorkstreamTable, task_id: str) -> None:
            super().__init__()
            self.table = table
            self.task_id = task_id

        @property
        def control(self) -> WorkstreamTable:
            return self.table

    class Chosen(Message):
        """Enter on a workstream: show it in the active log pane."""

        def __init__(self, table: WorkstreamTable, task_id: str) -> None:
            super().__init__()
            self.table = table
            self.task_id = task_id

        @property
        def control(self) -> WorkstreamTable:
            return self.table

    class FiltersCleared(Message):
        """Escape on a filtered table: every workstream should show again."""

        def __init__(self, table: WorkstreamTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> WorkstreamTable:
            return self.table

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            id=id,
            cursor_type="row",
            zebra_stripes=False,
            cursor_foreground_priority="renderable",
        )
        self._order: list[str] = []
        """Task ids in plan order."""
        self._views: Mapping[str, WorkstreamView] = {}
        self._probes: Mapping[str, LogProbe] = {}
        self._now = 0.0
        self._shown: dict[tuple[str, str], tuple[str, str]] = {}
        """(task id, column) -> (text, style class) currently in the table."""
        self._rows: list[str] = []
        self.text_filter = ""
        self.status_filter = StatusFilter.ALL
        self.sort_column: str | None = None
        self.sort_reverse = False
        self._cells: dict[str, dict[str, Cell]] = {}
        """task id -> column key -> cell, for every column (shown or not)."""
        self._layout: list[tuple[ColumnSpec, int]] = []
        self._widest: dict[str, int] = {}
        """Column key -> the widest cell it has held; columns only grow, so they stay put."""
        """The columns shown and their widths (see ``columns.fit_columns``)."""

    # ------------------------------------------------------------ inputs

    @property
    def selected_task(self) -> str | None:
        if not self._rows or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        return self._rows[self.cursor_row]  # rows are added in this order

    @property
    def visible_tasks(self) -> list[str]:
        return list(self._rows)

    def show(
        self, views: Mapping[str, WorkstreamView], probes: Mapping[str, LogProbe], now: float
    ) -> None:
        """Bring the table up to date with the run; only changed cells are written."""
        self._views = views
        self._probes = probes
        self._now = now
        self._order = list(views)
        self._cells = {
            task_id: {spec.key: spec.cell(view, probes.get(task_id), now) for spec in COLUMNS}
            for task_id, view in views.items()
        }
        wanted = self._wanted_rows()
        layout = self._fit(wanted)
        # Rows come and go with the filters; a live sort column (time, CPU) only
        # reorders on the user's sort, so rows do not jump under the cursor and the
        # table is not rebuilt every second.
        if set(wanted) != set(self._rows) or layout != self._layout:
            self._layout = layout
            self._rebuild(wanted)
            return
        for task_id in self._rows:
            for spec, _width in self._layout:
                text, cls = self._cells[task_id][spec.key]
                if self._shown.get((task_id, spec.key)) != (text, cls):
                    self._shown[(task_id, spec.key)] = (text, cls)
                    self.update_cell(task_id, spec.key, self._styled(text, cls))

    def on_resize(self) -> None:
        layout = self._fit(self._rows)
        if layout != self._layout:
            self._layout = layout
            self._rebuild(self._rows)

    def _fit(self, rows: list[str]) -> list[tuple[ColumnSpec, int]]:
        """The columns for the table's width: sized to the widest cell each column has
        held (of every workstream, so a filter does not make the columns jump, and a
        quiet time that grows and shrinks does not rebuild the table every second)."""
        widths = content_widths(COLUMNS, list(self._cells.values()))
        for key, width in widths.items():
            self._widest[key] = max(width, self._widest.get(key, 0))
        if not self.region.width:
            return fit_columns(COLUMNS, {}, 80)  # not laid out yet: a resize follows
        width = self.region.width - self.styles.gutter.width
        if len(rows) + 1 > self.region.height:  # the vertical scrollbar will show
            width -= self.styles.scrollbar_size_vertical
        return fit_columns(COLUMNS, self._widest, width)

    def set_filter(self, text: str | None = None, status: StatusFilter | None = None) -> None:
        if text is not None:
            self.text_filter = text
        if status is not None:
            self.status_filter = status
        self._refilter()

    def sort_by(self, column: str | None, reverse: bool = False) -> None:
        self.sort_column = column
        self.sort_reverse = reverse
        self._refilter()

    def select(self, task_id: str) -> None:
        if task_id in self._rows:
            index = self._rows.index(task_id)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False)

    def restyle(self) -> None:
        """Re-render every cell (the theme changed, so the styles did)."""
        self._shown.clear()
        self._rebuild(self._wanted_rows())

    # ------------------------------------------------------------ internals

    def _refilter(self) -> None:
        self._rebuild(self._wanted_rows())

    def _wanted_rows(self) -> list[str]:
        needle = self.text_filter.strip().lower()
        rows = []
        for task_id in self._order:
            view = self._views[task_id]
            if not self.status_filter.matches(view):
                continue
            if needle and not any(
                needle in field.lower()
                for field in (view.task_id, view.name, view.tool, view.state.value)
            ):
                continue
            rows.append(task_id)
        if self.sort_column is not None:
            col = COLUMN_BY_KEY[self.sort_column]
            rows.sort(
                key=lambda t: col.sort_key(self._views[t], self._probes.get(t), self._now),
                reverse=self.sort_reverse,
            )
        return rows

    def _rebuild(self, rows: list[str]) -> None:
        keep = self.selected_task
        self.clear(columns=True)
        self._shown.clear()
        self._rows = rows
        for spec, width in self._layout:
            label = spec.label
            if spec.key == self.sort_column:
                label += " ▼" if self.sort_reverse else " ▲"
            self.add_column(Text(label), key=spec.key, width=width)
        for task_id in rows:
            cells = []
            for spec, _width in self._layout:
                text, cls = self._cells[task_id][spec.key]
                self._shown[(task_id, spec.key)] = (text, cls)
                cells.append(self._styled(text, cls))
            self.add_row(*cells, key=task_id)
        if keep is not None and keep in rows:
            self.move_cursor(row=rows.index(keep), animate=False)

    def _styled(self, text: str, cls: str) -> Text:
        text = plain(text)  # names, details and last lines are agents' words
        if not cls:
            return Text(text, no_wrap=True, overflow="ellipsis")
        return Text(
            text,
            style=self.get_component_rich_style(cls, partial=True),
            no_wrap=True,
            overflow="ellipsis",
        )

    # ------------------------------------------------------------ handlers

    @on(DataTable.RowHighlighted)
    def _on_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Selected(self, event.row_key.value))

    @on(DataTable.RowSelected)
    def _on_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.Chosen(self, event.row_key.value))

    @on(DataTable.HeaderSelected)
    def _on_header(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        key = event.column_key.value
        if key is None:
            return
        reverse = not self.sort_reverse if key == self.sort_column else False
        self.sort_by(key, reverse)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "clear_filters":  # only a filtered table has something to clear
            return self.status_filter is not StatusFilter.ALL or bool(self.text_filter)
        return True

    def action_clear_filters(self) -> None:
        self.post_message(self.FiltersCleared(self))

    def action_cycle_sort(self) -> None:
        keys = [None, *(c.key for c in COLUMNS if c.key != "last")]
        index = keys.index(self.sort_column) if self.sort_column in keys else 0
        self.sort_by(keys[(index + 1) % len(keys)])
