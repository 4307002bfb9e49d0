"""The workstream table: one row per workstream, row key = task id.

Each refresh computes every cell's text, compares it with what the table shows
and calls ``update_cell`` only for cells that changed, so the cursor, the
scroll position and the sort stay put. Rows are rebuilt only when the filter
or the order changes, and then the cursor is put back on the same workstream.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable

from ...engine.snapshot import WorkstreamView
from ...engine.states import ACTIVE, FAILED_STATES, ICONS, TERMINAL, WsState
from ..format import clock, duration, limit, percent, size
from ..messages import LogProbe
from ..untrusted import plain
from .status_style import STATE_CLASSES, state_class, state_css


class StatusFilter(StrEnum):
    ALL = "all"
    ACTIVE = "active"
    FAILED = "failed"
    WAITING = "waiting"
    DONE = "done"

    def matches(self, state: WsState) -> bool:
        if self is StatusFilter.ALL:
            return True
        if self is StatusFilter.ACTIVE:
            return state in ACTIVE
        if self is StatusFilter.FAILED:
            return state in FAILED_STATES or state is WsState.INTERRUPTED
        if self is StatusFilter.WAITING:
            return state in (WsState.PENDING, WsState.QUEUED)
        return state in TERMINAL


@dataclass(frozen=True, slots=True)
class _Column:
    key: str
    label: str
    width: int
    sort_key: Callable[[WorkstreamView, LogProbe | None, float], Any]


_ORDER = {state: i for i, state in enumerate(WsState)}


def _idle(view: WorkstreamView, probe: LogProbe | None, now: float) -> float | None:
    if view.state not in ACTIVE:
        return None
    last = max(view.last_output_at or 0.0, probe.mtime if probe else 0.0)
    if not last:
        return None
    return max(0.0, now - last)


COLUMNS: tuple[_Column, ...] = (
    _Column("id", "ID", 10, lambda v, p, n: v.ws_id),
    _Column("status", "Status", 11, lambda v, p, n: _ORDER[v.state]),
    _Column("name", "Name", 16, lambda v, p, n: v.name.lower()),
    _Column("tool", "Tool", 6, lambda v, p, n: v.tool),
    _Column("attempt", "#", 2, lambda v, p, n: v.attempt),
    _Column("elapsed", "Time/Limit", 10, lambda v, p, n: v.elapsed(n)),
    _Column("idle", "Quiet", 6, lambda v, p, n: _idle(v, p, n) or 0.0),
    _Column("cpu", "CPU", 4, lambda v, p, n: v.cpu_percent),
    _Column("mem", "Mem", 5, lambda v, p, n: v.rss_bytes),
    _Column("changes", "+/-", 9, lambda v, p, n: v.insertions + v.deletions),
    _Column("conflicts", "Conf", 4, lambda v, p, n: len(v.conflicts)),
    _Column("pr", "PR", 5, lambda v, p, n: v.pr_url or ""),
    _Column("last", "Last output", 60, lambda v, p, n: p.last_line if p else ""),
)
_COLUMN_BY_KEY = {c.key: c for c in COLUMNS}

_PR_NUMBER = re.compile(r"/pull/(\d+)")


class WorkstreamTable(DataTable[Text]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Open", tooltip="Show the workstream in the log pane"),
        Binding("j", "cursor_down", "Down", tooltip="Next workstream", show=False),
        Binding("k", "cursor_up", "Up", tooltip="Previous workstream", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = (
        DataTable.COMPONENT_CLASSES
        | STATE_CLASSES
        | {"workstream-table--stalled", "workstream-table--muted", "workstream-table--warn"}
    )

    DEFAULT_CSS = """
    WorkstreamTable { height: 1fr; }
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

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            id=id,
            cursor_type="row",
            zebra_stripes=False,
            fixed_columns=1,
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

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(column.label, key=column.key, width=column.width)

    # ------------------------------------------------------------ inputs

    @property
    def selected_task(self) -> str | None:
        if not self._rows or self.cursor_row < 0 or self.cursor_row >= self.row_count:
            return None
        key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        return key.value

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
        wanted = self._wanted_rows()
        # Rows come and go with the filters; a live sort column (time, CPU) only
        # reorders on the user's sort, so rows do not jump under the cursor and the
        # table is not rebuilt every second.
        if set(wanted) != set(self._rows):
            self._rebuild(wanted)
            return
        for task_id in self._rows:
            for column in COLUMNS:
                text, cls = self._cell(task_id, column.key)
                if self._shown.get((task_id, column.key)) != (text, cls):
                    self._shown[(task_id, column.key)] = (text, cls)
                    self.update_cell(task_id, column.key, self._styled(text, cls))

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
            if not self.status_filter.matches(view.state):
                continue
            if needle and not any(
                needle in field.lower()
                for field in (view.task_id, view.name, view.tool, view.state.value)
            ):
                continue
            rows.append(task_id)
        if self.sort_column is not None:
            col = _COLUMN_BY_KEY[self.sort_column]
            rows.sort(
                key=lambda t: col.sort_key(self._views[t], self._probes.get(t), self._now),
                reverse=self.sort_reverse,
            )
        return rows

    def _rebuild(self, rows: list[str]) -> None:
        keep = self.selected_task
        self.clear()
        self._shown.clear()
        self._rows = rows
        for task_id in rows:
            cells = []
            for column in COLUMNS:
                text, cls = self._cell(task_id, column.key)
                self._shown[(task_id, column.key)] = (text, cls)
                cells.append(self._styled(text, cls))
            self.add_row(*cells, key=task_id)
        if keep is not None and keep in rows:
            self.move_cursor(row=rows.index(keep), animate=False)
        for column in COLUMNS:
            label = column.label
            if column.key == self.sort_column:
                label += " ▼" if self.sort_reverse else " ▲"
            self.columns[column.key].label = Text(label)  # type: ignore[index]

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

    def _cell(self, task_id: str, key: str) -> tuple[str, str]:
        view = self._views[task_id]
        probe = self._probes.get(task_id)
        now = self._now
        running = view.state in ACTIVE
        if key == "id":
            return view.ws_id, ""
        if key == "name":
            return view.name, ""
        if key == "status":
            label = view.state.value.replace("_", " ")
            return f"{ICONS[view.state]} {label}", state_class(view.state)
        if key == "tool":
            return view.tool, ""
        if key == "attempt":
            return (str(view.attempt) if view.attempt else "-"), ""
        if key == "elapsed":
            if view.started_at is None:
                return f"-/{limit(view.timeout_seconds)}", "workstream-table--muted"
            elapsed = view.elapsed(now)
            cls = (
                "workstream-table--warn" if running and elapsed > 0.8 * view.timeout_seconds else ""
            )
            return f"{clock(elapsed)}/{limit(view.timeout_seconds)}", cls
        if key == "cpu":
            return (percent(view.cpu_percent) if view.pid else "-"), ""
        if key == "mem":
            return (size(view.rss_bytes) if view.pid else "-"), ""
        if key == "changes":
            if not (view.insertions or view.deletions or view.files_changed):
                return "-", "workstream-table--muted"
            return f"+{view.insertions}/-{view.deletions}", ""
        if key == "conflicts":
            if not view.conflicts:
                return "-", "workstream-table--muted"
            return f"⚠ {len(view.conflicts)}", "workstream-table--warn"
        if key == "pr":
            if not view.pr_url:
                return "-", "workstream-table--muted"
            match = _PR_NUMBER.search(view.pr_url)
            return (f"#{match.group(1)}" if match else "open"), ""
        if key == "idle":
            idle = _idle(view, probe, now)
            if idle is None:
                return "-", "workstream-table--muted"
            if view.stalled:
                return f"⚠ {duration(idle)}", "workstream-table--stalled"
            return duration(idle), ""
        if key == "last":
            if probe is not None and probe.last_line:
                return probe.last_line, ""
            return (view.detail or ""), "workstream-table--muted"
        raise KeyError(key)

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

    def action_cycle_sort(self) -> None:
        keys = [None, *(c.key for c in COLUMNS if c.key != "last")]
        index = keys.index(self.sort_column) if self.sort_column in keys else 0
        self.sort_by(keys[(index + 1) % len(keys)])
