"""The run view: header, DAG, workstream table, log panes and key bar over the run's snapshot.

The app folds the engine's events into the snapshot and tells this screen
(``heard``); the screen coalesces bursts into one refresh and pushes attributes
down to its widgets. The table's last output and quiet time come from the
process's one log watcher (``LogActivity``), the panes' new lines too. The
commands on a workstream live in the base class (``WorkstreamCommands``); the
keys for the panes, the table's filters, the layout and help live here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.events import Resize
from textual.timer import Timer
from textual.widgets import Input, Label

from ...engine import events as ev
from ...engine.snapshot import RunSnapshot
from ...engine.states import ACTIVE
from ...store.watch import LogWatcher
from ..bridge import TuiEngine
from ..log_activity import LogActivity
from ..messages import LogProbe, LogsProbed
from ..run_state import SETTLE_SECONDS, EndWatch, summarize
from ..widgets.dag_view import DagBand, DagView
from ..widgets.key_bar import KeyBar
from ..widgets.log_pane import LogPane
from ..widgets.log_panes import MAX_PANES, LogPanes
from ..widgets.log_view import LogView
from ..widgets.run_header import RunHeader, RunSummary
from ..widgets.search_box import SearchBox
from ..widgets.workstream_table import StatusFilter, WorkstreamTable
from .help_screen import HelpScreen, HelpSection
from .workstream_commands import WorkstreamCommands

FOLLOW_DELAY = 0.12
"""Seconds the cursor rests on a row before the following panes switch to it."""
KEY_HOLD = 0.5
"""Seconds after a key during which other panes hold their new lines."""
DAG_MIN_WIDTH = 100
"""Below this many columns the DAG starts hidden (``g`` shows it): the table needs the room."""
_STATUS_CYCLE = list(StatusFilter)


class RunScreen(WorkstreamCommands):
    BINDINGS: ClassVar[list[BindingType]] = [
        # shown in the key bar (in this order) where the focus has no keys of its own
        Binding("slash", "search", "Search", tooltip="Search the active log pane"),
        Binding("p", "pause_resume", "Pause", tooltip="Pause or resume the workstream"),
        Binding("K", "kill", "Kill", tooltip="Kill the workstream's attempt (asks first)"),
        Binding("r", "retry", "Retry", tooltip="Retry in the same worktree"),
        Binding(
            "m", "message", "Message", tooltip="Send the agent a message (answer its question)"
        ),
        Binding("s", "skip", "Skip", tooltip="Skip the workstream (asks first if its agent runs)"),
        Binding("d", "diff", "Diff", tooltip="Show the worktree's diff against its base"),
        Binding(
            "i", "details", "Info", tooltip="The workstream's details: why it stopped, attempts"
        ),
        Binding("f", "filter", "Filter", tooltip="Filter the table by text"),
        Binding(
            "exclamation_mark",
            "attention",
            "Attention",
            tooltip="Show only what needs you (asking, failed, stalled, conflicts); again: all",
        ),
        Binding("question_mark,f1", "help", "Help", tooltip="Show every key, by where it works"),
        Binding("q", "app.quit", "Quit", tooltip="Quit (asks what to do if work is running)"),
        # in the help screen and the palette only
        Binding(
            "R",
            "retry_fresh",
            "Fresh",
            tooltip="Retry from a fresh worktree (asks first)",
            show=False,
        ),
        Binding("o", "shell", "Shell", tooltip="Open a shell in the worktree", show=False),
        Binding(
            "L",
            "land",
            "Land",
            tooltip="Land the workstream's phase into mc/land/PHASE",
            show=False,
        ),
        Binding(
            "a", "add_pane", "+Pane", tooltip="Follow the workstream in a new log pane", show=False
        ),
        Binding("x", "close_pane", "-Pane", tooltip="Close the active log pane", show=False),
        Binding(
            "v", "status_filter", "Status", tooltip="Cycle the table's status filter", show=False
        ),
        Binding("c", "sort", "Sort", tooltip="Sort the table by the next column", show=False),
        Binding(
            "g",
            "toggle_dag",
            "DAG",
            tooltip="Show or hide the DAG (hidden below 100 columns)",
            show=False,
        ),
        Binding("tab", "cycle_focus", "Focus", tooltip="Move focus to the next panel", show=False),
        Binding("t", "app.change_theme", "Theme", tooltip="Switch theme", show=False),
    ]

    def __init__(
        self,
        engine: TuiEngine,
        *,
        clock: Callable[[], float],
        watcher: LogWatcher,
        probe_logs: bool,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.run_snapshot: RunSnapshot = engine.snapshot()  # the app's, once it subscribed
        self._clock = clock
        self._watcher = watcher
        self._activity = LogActivity(watcher, self.post_message) if probe_logs else None
        self._probes: dict[str, LogProbe] = {}
        self._refresh_pending = False
        self._views_ready = False
        self.suspended = False
        self._selected: str | None = None
        self._follow_timer: Timer | None = None
        self._dag_choice: bool | None = None
        """The user's ``g``: show or hide the DAG; None until then (it follows the width)."""
        self._end = EndWatch()
        self._key_hold_until = 0.0

    # ------------------------------------------------------------ accessors

    @property
    def header(self) -> RunHeader:
        return self.query_one(RunHeader)

    @property
    def dag(self) -> DagView:
        return self.query_one(DagView)

    @property
    def log_panes(self) -> LogPanes:
        return self.query_one(LogPanes)

    @property
    def panes(self) -> list[LogPane]:
        return self.log_panes.panes

    @property
    def active_pane(self) -> LogPane | None:
        return self.log_panes.active_pane

    # ------------------------------------------------------------ compose

    def compose(self) -> ComposeResult:
        yield RunHeader()
        with Horizontal(id="top"):
            yield DagView(id="dag")
            with Vertical(id="table-box"):
                yield SearchBox("filter: id, name, tool or status (esc clears)", id="filter")
                yield Label(id="empty", markup=False)
                yield WorkstreamTable(id="table")
        yield LogPanes(self._watcher, id="logs")
        yield KeyBar()

    def on_mount(self) -> None:
        views = self.run_snapshot.workstreams
        first = self._first_interesting()
        if first is not None:
            self._selected = first
        self._views_ready = True
        self._refresh_views()
        if first is not None:
            self.table.select(first)
            self.log_panes.follow(first, views.get(first))
        pane = self.active_pane
        if pane is not None:
            self.log_panes.set_active(pane)
        self.table.focus()
        self.set_interval(1.0, self._tick)

    def on_unmount(self) -> None:
        if self._activity is not None:
            self._activity.close()

    def _first_interesting(self) -> str | None:
        views = self.run_snapshot.workstreams
        for task_id, view in views.items():
            if view.state in ACTIVE:
                return task_id
        return next(iter(views), None)

    # ------------------------------------------------------------ refresh

    def heard(self, event: ev.Event) -> None:
        """The app folded ``event`` into the snapshot: show it."""
        self._end.heard(event)
        if not isinstance(event, ev.MetricsSampled):
            self.schedule_refresh()
        # metrics (1 Hz) wait for the next tick: one table repaint a second, not three

    def schedule_refresh(self) -> None:
        if not self._refresh_pending:
            self._refresh_pending = True
            self.call_later(self._refresh_views)

    def keys_pressed(self) -> None:
        """A key came: for a moment, the panes the user is not typing in hold their new
        lines and the clock tick waits, so the keys get the time there is."""
        hold = time.monotonic() + KEY_HOLD
        self._key_hold_until = hold
        if self._views_ready:
            self.log_panes.hold(hold)

    def _tick(self) -> None:
        """Once a second: clocks and metrics (the logs' news come from the watcher)."""
        if time.monotonic() >= self._key_hold_until:
            self.schedule_refresh()

    def _refresh_views(self) -> None:
        self._refresh_pending = False
        if self.suspended or not self._views_ready:
            return
        try:
            self._push_attributes()
        except NoMatches:  # the screen is being torn down
            return

    def _push_attributes(self) -> None:
        snap = self.run_snapshot
        views = snap.workstreams
        now = self._clock()
        bands = []
        for phase in snap.phases:  # the whole run, one band per phase
            ids = tuple(t for t in phase.task_ids if t in views)
            title = f"{phase.phase_id} {phase.name}".strip()
            if phase.phase_id == snap.current_phase and len(snap.phases) > 1:
                title = f"▶ {title}"
            bands.append(
                DagBand(
                    title if len(snap.phases) > 1 else "",
                    ids,
                    {t: views[t].depends_on for t in ids},
                    {t: views[t].ws_id for t in ids},
                )
            )
        self.dag.set_bands(bands)
        self.dag.set_states({t: v.state for t, v in views.items()})
        one = snap.phases[0].phase_id if len(snap.phases) == 1 else ""
        self.dag.border_title = f"DAG {one}".strip()
        self.dag.selected = self._selected
        self.table.show(views, self._probes, now)
        self.header.summary = self._summary(now)  # after the table: it counts the rows shown
        empty = self.query_one("#empty", Label)
        shown = bool(self.table.visible_tasks) or not views
        empty.display = not shown
        if not shown:
            empty.update(
                f"no workstream is {self._filter_label()}:"
                " esc shows them all (v cycles, ! needs you)"
            )
        self.log_panes.update_views(views)
        if self._activity is not None:
            self._activity.follow({t: v.log_path for t, v in views.items()})

    def _summary(self, now: float) -> RunSummary:
        snap = self.run_snapshot
        ended, quiet_now = self._end.check(snap)
        if quiet_now:  # look again once it has been quiet long enough
            self.set_timer(SETTLE_SECONDS + 0.1, self.schedule_refresh)
        shown = self._filter_label()
        if shown:
            shown += f" ({len(self.table.visible_tasks)} of {len(snap.workstreams)})"
        return summarize(snap, now, ended, self._end, shown)

    def _filter_label(self) -> str:
        """What the table's filters keep, in words ("" when it shows everything)."""
        table = self.table
        parts = [table.status_filter.value] if table.status_filter is not StatusFilter.ALL else []
        if table.text_filter.strip():
            parts.append(f"'{table.text_filter.strip()}'")
        return " ".join(parts)

    # ------------------------------------------------------------ log activity

    @on(LogActivity.Grew)
    def _logs_grew(self) -> None:
        self._read_activity()

    @work(thread=True, group="activity", exit_on_error=False)
    def _read_activity(self) -> None:
        """The last lines of the logs that grew (file reads: a thread)."""
        if self._activity is not None:
            probes = self._activity.read_grown()
            if probes:
                self.post_message(LogsProbed(probes))

    @on(LogsProbed)
    def _logs_probed(self, message: LogsProbed) -> None:
        self._probes = {**self._probes, **message.probes}  # shown at the next tick

    # ------------------------------------------------------------ selection

    def _select(self, task_id: str) -> None:
        if task_id == self._selected:
            return
        self._selected = task_id
        # Panes that follow the cursor switch once it rests: holding a key down in
        # the table opens one log, not every log on the way.
        if self._follow_timer is not None:
            self._follow_timer.stop()
        self._follow_timer = self.set_timer(FOLLOW_DELAY, self._follow_selection)
        self.schedule_refresh()

    def _follow_selection(self) -> None:
        self._follow_timer = None
        task_id = self._selected
        if task_id is not None:
            self.log_panes.follow(task_id, self.run_snapshot.workstreams.get(task_id))

    @on(WorkstreamTable.Selected)
    def _table_selected(self, message: WorkstreamTable.Selected) -> None:
        self._select(message.task_id)

    @on(WorkstreamTable.Chosen)
    def _table_chosen(self, message: WorkstreamTable.Chosen) -> None:
        task_id = message.task_id
        self.log_panes.show_chosen(task_id, self.run_snapshot.workstreams.get(task_id))

    @on(DagView.Selected)
    def _dag_selected(self, message: DagView.Selected) -> None:
        self._select(message.task_id)
        self.table.select(message.task_id)  # the table's cursor is the selection's home

    # ------------------------------------------------------------ layout

    def on_resize(self, event: Resize) -> None:
        self._arrange(event.size.width)

    def _arrange(self, width: int | None = None) -> None:
        width = width if width is not None else self.size.width
        self.set_class(width < 110, "-narrow")
        self.log_panes.fit_width(width)
        shown = self._dag_choice if self._dag_choice is not None else width >= DAG_MIN_WIDTH
        self.dag.display = shown

    def action_toggle_dag(self) -> None:
        self._dag_choice = not self.dag.display
        if not self._dag_choice and self.dag.has_focus:
            self.table.focus()
        self._arrange()

    # ------------------------------------------------------------ panes

    def action_add_pane(self) -> None:
        task_id = self.selected_task
        view = self.run_snapshot.workstreams.get(task_id) if task_id else None
        if not self.log_panes.add(task_id, view):
            self.notify(f"at most {MAX_PANES} log panes", severity="warning")
            return
        self._arrange()

    def action_close_pane(self) -> None:
        if not self.log_panes.close_active():
            self.notify("the last pane stays open", severity="warning")
            return
        self.call_after_refresh(self._arrange)

    def action_cycle_focus(self) -> None:
        dag = [self.dag] if self.dag.display else []
        order: list[WorkstreamTable | DagView | LogView] = [
            self.table,
            *dag,
            *self.log_panes.log_views,
        ]
        focused = self.focused
        current = -1
        for i, widget in enumerate(order):
            if focused is widget:
                current = i
        order[(current + 1) % len(order)].focus()

    def action_search(self) -> None:
        pane = self.active_pane
        if pane is not None:
            pane.action_start_search()

    # ------------------------------------------------------------ keys and help

    def action_help(self) -> None:
        if not isinstance(self.app.screen, HelpScreen):
            self.app.push_screen(HelpScreen(self.help_sections()))

    def help_sections(self) -> list[HelpSection]:
        return [
            HelpSection(
                "Anywhere",
                self.BINDINGS,
                (("^p", "Every action as a command"), ("^q", "Quit at once (asks as q does)")),
            ),
            HelpSection(
                "Workstream table",
                WorkstreamTable.BINDINGS,
                (
                    ("↑ ↓ pgup pgdn", "Move"),
                    ("home / end", "First / last workstream"),
                    ("click a header", "Sort by that column (again: reverse)"),
                ),
            ),
            HelpSection(
                "Log pane",
                [*LogPane.BINDINGS, *LogView.BINDINGS],
                (("↑ ↓ pgup pgdn", "Scroll (scrolling up stops following)"),),
            ),
            HelpSection("DAG", DagView.BINDINGS, (("click", "Select a workstream"),)),
            HelpSection(
                "Search and filter boxes",
                (),
                (
                    ("enter", "Search (log) / keep the filter (table)"),
                    ("esc", "Close the box (the table filter is cleared)"),
                    ("any letter", "Typed into the box, never a command"),
                ),
            ),
            HelpSection(
                "Questions",
                (),
                (
                    ("y / n", "Yes / no (kill, skip, retry fresh)"),
                    ("l / s", "On quit: leave the agents running / stop them all"),
                    ("esc / enter", "The safe answer (it has the focus)"),
                ),
            ),
        ]

    # ------------------------------------------------------------ table filters

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-shown")
        self.set_focus(box)  # at once: the next keys may be queued already

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(text=event.value)
        self.schedule_refresh()  # the header says what the table shows

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.remove_class("-shown")
        self.table.focus()

    @on(SearchBox.Closed, "#filter")
    @on(WorkstreamTable.FiltersCleared)
    def _filter_closed(self) -> None:
        self.action_clear_filters()

    def action_clear_filters(self) -> None:
        """Esc in the filter box, or on a filtered table: show every workstream again."""
        box = self.query_one("#filter", Input)
        box.value = ""
        box.remove_class("-shown")
        self.table.set_filter(text="", status=StatusFilter.ALL)
        self.table.focus()
        self.schedule_refresh()

    def action_sort(self) -> None:
        self.table.action_cycle_sort()

    def action_status_filter(self) -> None:
        current = self.table.status_filter
        status = _STATUS_CYCLE[(_STATUS_CYCLE.index(current) + 1) % len(_STATUS_CYCLE)]
        self._show_status(status)

    def action_attention(self) -> None:
        attention = StatusFilter.ATTENTION
        self._show_status(StatusFilter.ALL if self.table.status_filter is attention else attention)

    def _show_status(self, status: StatusFilter) -> None:
        self.table.set_filter(status=status)
        self.schedule_refresh()  # the header says what the table shows
