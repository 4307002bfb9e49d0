"""The mission-control app: header, DAG, workstream table and log panes over one engine.

Shape: the engine runs as a worker on the app's loop; the bridge turns its
events into messages; the app folds each into its own snapshot (the same
``apply_event`` the engine uses) and pushes attributes down to the widgets,
coalescing bursts into one refresh. Anything blocking (log probes, diffs, the
shell) runs in threads. What the keys do lives in ``actions.py``, the app's base
class. ``build_app`` is the one way to make the app, for the CLI and the tests
alike.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.driver import Driver
from textual.events import Event, Key, Resize
from textual.timer import Timer
from textual.widgets import Label
from textual.worker import Worker, get_current_worker

from ..engine import events as ev
from ..engine.snapshot import RunSnapshot, apply_event
from ..engine.states import ACTIVE, FAILED_STATES, WsState
from ..errors import MissionControlError
from ..plan.model import Plan
from . import themes
from .actions import MAX_PANES, AppResult, WorkstreamActions
from .bridge import EngineBridge, TuiEngine
from .format import duration
from .messages import EngineEventPosted, EngineStopped, LogProbe, LogsProbed
from .run_state import SETTLE_SECONDS, EndWatch, is_news, summarize
from .screens.detail_screen import read_attempt
from .untrusted import plain
from .widgets.dag_view import DagBand, DagView
from .widgets.key_bar import KeyBar
from .widgets.log_pane import LogPane
from .widgets.log_view import POLL_SECONDS, LogView
from .widgets.run_header import RunHeader, RunSummary
from .widgets.search_box import SearchBox
from .widgets.workstream_table import StatusFilter, WorkstreamTable

FOLLOW_DELAY = 0.12
"""Seconds the cursor rests on a row before the following panes switch to it."""
LAG_TICK = 0.1
KEY_HOLD = 0.5
"""Seconds after a key during which other panes hold their new lines."""
MAX_PACE = 2.0
_PROBE_BYTES = 4096


class MissionControlApp(WorkstreamActions):
    CSS_PATH = "app.tcss"
    TITLE = "mission-control"

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
        Binding("q", "quit", "Quit", tooltip="Quit (asks what to do if work is running)"),
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
        Binding("t", "change_theme", "Theme", tooltip="Switch theme", show=False),
    ]

    def __init__(
        self,
        engine: TuiEngine,
        plan: Plan | None,
        *,
        theme: str | None = None,
        run_engine: bool = True,
        clock: Callable[[], float] = time.time,
        probe_logs: bool = True,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.plan = plan
        self._run_engine = run_engine
        self._clock = clock
        self._probe_logs = probe_logs
        self._bridge = EngineBridge(engine, self)
        self.run_snapshot: RunSnapshot = engine.snapshot()
        self._probes: dict[str, LogProbe] = {}
        self._settled: set[str] = set()
        """Finished workstreams whose log was read once more after they ended (probe thread)."""
        self._refresh_pending = False
        self._engine_worker: Worker[None] | None = None
        self._engine_ended = asyncio.Event()
        self._engine_done = not run_engine
        self._suspended = False
        self._active_pane: LogPane | None = None
        self._pinned: set[str] = set()
        """Ids of panes the user pointed at a workstream; the others follow the cursor."""
        self._pane_serial = 0
        self._dag_choice: bool | None = None
        self._end = EndWatch()
        self._selected: str | None = None
        self._follow_timer: Timer | None = None
        self._pace = POLL_SECONDS
        self._ticks = 0
        self._key_hold_until = 0.0
        self._lag_mark = time.monotonic()
        self._theme_errors: list[str] = []
        self._views_ready = False
        self._load_themes(theme)

    def get_driver_class(self) -> type[Driver]:
        # A closed terminal must never hang the app's shutdown (see ``terminal``).
        chosen = super().get_driver_class()
        if chosen.__module__ == "textual.drivers.linux_driver":
            from .terminal import TerminalDriver  # termios: POSIX only

            return TerminalDriver
        return chosen

    # ------------------------------------------------------------ themes

    def _load_themes(self, wanted: str | None) -> None:
        result = themes.load_themes()
        for theme in result.themes.values():
            self.register_theme(theme)
        self._theme_errors = list(result.errors)
        name = wanted or themes.remembered_theme() or themes.DEFAULT_THEME
        if name not in self.available_themes:
            if wanted:
                self._theme_errors.append(
                    f"no theme named {wanted!r} — choose one of: "
                    + ", ".join(sorted(self.available_themes))
                )
            name = (
                themes.DEFAULT_THEME
                if themes.DEFAULT_THEME in self.available_themes
                else ("textual-dark")
            )
        self.theme = name

    def watch_theme(self, theme: str) -> None:
        if self._views_ready:
            # after the stylesheet has the new theme's variables
            self.call_after_refresh(self.table.restyle)
            self.run_worker(partial(themes.remember_theme, theme), thread=True, group="config")

    # ------------------------------------------------------------ compose

    def compose(self) -> ComposeResult:
        yield RunHeader()
        with Horizontal(id="top"):
            yield DagView(id="dag")
            with Vertical(id="table-box"):
                yield SearchBox("filter: id, name, tool or status (esc clears)", id="filter")
                yield Label(id="empty", markup=False)
                yield WorkstreamTable(id="table")
        with Horizontal(id="logs"):
            yield LogPane(id="pane-1")
        yield KeyBar()

    def on_mount(self) -> None:
        for error in self._theme_errors:
            self.notify(error, title="Theme", severity="warning", timeout=8)
        self.run_snapshot = self._bridge.open()
        self._pane_serial = 1
        views = self.run_snapshot.workstreams
        first = self._first_interesting()
        if first is not None:
            self._selected = first
        self._views_ready = True
        self._refresh_views()
        if first is not None:
            self.table.select(first)
        pane = self.panes[0]
        if first is not None:
            pane.show_workstream(first, views.get(first))
        self._set_active_pane(pane)
        self.table.focus()
        if self._run_engine:
            self._engine_worker = self.run_worker(
                self._drive_engine(), group="engine", exit_on_error=False
            )
        self.set_interval(1.0, self._tick)
        self._lag_mark = time.monotonic()
        self.set_interval(LAG_TICK, self._watch_lag)
        if self._probe_logs:
            self._probe()

    def on_unmount(self) -> None:
        self._bridge.close()

    def _first_interesting(self) -> str | None:
        views = self.run_snapshot.workstreams
        for task_id, view in views.items():
            if view.state in ACTIVE:
                return task_id
        return next(iter(views), None)

    # ------------------------------------------------------------ engine

    async def _drive_engine(self) -> None:
        try:
            ok = await self.engine.run()
        except MissionControlError as exc:
            self.post_message(EngineStopped(None, str(exc)))
            return
        except Exception as exc:
            self.post_message(EngineStopped(None, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            self._engine_ended.set()
        self.post_message(EngineStopped(ok))

    @on(EngineStopped)
    def _engine_stopped(self, message: EngineStopped) -> None:
        self._engine_done = True
        if message.error:
            self.notify(message.error, title="Engine stopped", severity="error", timeout=15)

    @on(EngineEventPosted)
    def _engine_event(self, message: EngineEventPosted) -> None:
        event = message.event
        news = is_news(self.run_snapshot, event)
        self._end.heard(event)
        apply_event(self.run_snapshot, event)
        if news:
            self._notify_about(event)
        if not isinstance(event, ev.MetricsSampled):
            self._schedule_refresh()
        # metrics (1 Hz) wait for the next tick: one table repaint a second, not three

    def _notify_about(self, event: ev.Event) -> None:
        match event:
            case ev.WorkstreamStateChanged(task_id=task_id, new=new, detail=detail) if new in (
                WsState.FAILED,
                WsState.TIMED_OUT,
            ):
                what = "timed out" if new is WsState.TIMED_OUT else "failed"
                view = self.run_snapshot.workstreams.get(task_id)
                self._toast_failure(
                    f"{task_id} {what}", detail or what, view.log_path if view else None
                )
            case ev.WorkstreamStateChanged(task_id=task_id, new=WsState.NEEDS_INPUT, detail=detail):
                self.notify(
                    f"{detail}  (m to answer)",
                    title=f"{task_id} needs you",
                    severity="warning",
                    timeout=15,
                )
            case ev.WorkstreamStalled(task_id=task_id, stalled=True, idle_seconds=idle):
                self.notify(
                    f"no output for {duration(idle)}",
                    title=f"{task_id} stalled",
                    severity="warning",
                )
            case ev.PhaseLandingStep(phase_id=phase_id, kind="stopped", text=text):
                self.notify(
                    text, title=f"phase {phase_id}: landing stopped", severity="error", timeout=20
                )
            case ev.PhaseLandingStep(phase_id=phase_id, kind="push", text=text):
                self.notify(text, title=f"phase {phase_id} landed")
            case ev.EngineWarned(task_id=task_id, message=text):
                self.notify(text, title=task_id or "mission-control", severity="warning")
            case ev.RunFinished(ok=ok, cancelled=cancelled):
                views = self.run_snapshot.workstreams.values()
                failed = sum(1 for v in views if v.state in FAILED_STATES)
                done = sum(1 for v in views if v.state is WsState.SUCCEEDED)
                if cancelled:
                    self.notify("the run was cancelled", title="Run ended", severity="warning")
                elif ok:
                    self.notify(f"all {done} workstreams succeeded", title="Run finished")
                else:
                    self.notify(
                        f"{done} succeeded, {failed} failed",
                        title="Run finished",
                        severity="error",
                        timeout=15,
                    )
            case _:
                pass

    @work(thread=True, group="toast", exit_on_error=False)
    def _toast_failure(self, title: str, detail: str, log_path: str | None) -> None:
        """A failure's toast says why in the agent's words: the last error line of its
        log (read here, in a thread), under the engine's detail ("exited 3")."""
        message = detail
        if log_path:
            last = read_attempt(Path(log_path), 0)
            why = last.errors[-1] if last.errors else last.last_line
            if why and why not in ("(no log)", "(empty log)"):
                message = f"{detail}\n{why}"
        self.call_from_thread(self.notify, message, title=title, severity="error", timeout=10)

    # ------------------------------------------------------------ refresh

    def _schedule_refresh(self) -> None:
        if not self._refresh_pending:
            self._refresh_pending = True
            self.call_later(self._refresh_views)

    def _tick(self) -> None:
        """Once a second: clocks, metrics and last lines. When the loop lags (see
        ``_watch_lag``) this slows down too, so the keys keep the time there is."""
        self._ticks += 1
        every = max(1, round(self._pace / POLL_SECONDS / 2))
        if self._ticks % every or time.monotonic() < self._key_hold_until:
            return  # lagging, or the user is typing: the next tick will do
        self._schedule_refresh()
        if self._probe_logs:
            self._probe()

    def _refresh_views(self) -> None:
        self._refresh_pending = False
        if self._suspended or not self._views_ready:
            return
        try:
            self._push_attributes()
        except NoMatches:  # the main screen is being torn down
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
        for pane in self.panes:
            if pane.task_id is not None:
                pane.update_view(views.get(pane.task_id))

    def _summary(self, now: float) -> RunSummary:
        snap = self.run_snapshot
        ended, quiet_now = self._end.check(snap)
        if quiet_now:  # look again once it has been quiet long enough
            self.set_timer(SETTLE_SECONDS + 0.1, self._schedule_refresh)
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

    # ------------------------------------------------------------ log probes

    @work(thread=True, exclusive=True, group="probe", exit_on_error=False)
    def _probe(self) -> None:
        """Size, age and last line of each live attempt's log (file reads: a thread)."""
        worker = get_current_worker()
        known = self._probes
        targets = {
            task_id: view.log_path
            for task_id, view in list(self.run_snapshot.workstreams.items())
            if view.log_path
        }
        probes: dict[str, LogProbe] = {}
        for task_id, path in targets.items():
            if worker.is_cancelled:
                return
            view = self.run_snapshot.workstreams.get(task_id)
            old_probe = known.get(task_id)
            if view is not None and view.state not in ACTIVE:
                # A finished attempt's log no longer changes: read it once more, then keep it.
                if old_probe is not None and task_id in self._settled:
                    probes[task_id] = old_probe
                    continue
                self._settled.add(task_id)
            else:
                self._settled.discard(task_id)
            try:
                st = os.stat(path)
            except OSError:
                continue
            old = known.get(task_id)
            if old is not None and old.size == st.st_size and old.mtime == st.st_mtime:
                probes[task_id] = old
                continue
            probes[task_id] = LogProbe(st.st_size, st.st_mtime, _last_line(path, st.st_size))
        self.post_message(LogsProbed(probes))

    @on(LogsProbed)
    def _logs_probed(self, message: LogsProbed) -> None:
        self._probes = message.probes  # shown at the next tick

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
        self._schedule_refresh()

    def _follow_selection(self) -> None:
        self._follow_timer = None
        task_id = self._selected
        if task_id is None:
            return
        views = self.run_snapshot.workstreams
        for pane in self.panes:
            if pane.id not in self._pinned:
                pane.show_workstream(task_id, views.get(task_id))

    def _watch_lag(self) -> None:
        """Stretch the log panes' refresh when the event loop falls behind.

        On a machine whose cores are busy with agents, repainting four panes four
        times a second can cost more than this process is given; keys would then
        wait behind repaints. The loop's lateness on a 0.1 s timer says how busy it is.
        """
        now = time.monotonic()
        lag = max(0.0, now - self._lag_mark - LAG_TICK)
        self._lag_mark = now
        pace = self._pace
        # The panes share a budget of about six repaints a second.
        floor = POLL_SECONDS * max(1.0, len(self.panes) * 2 / 3)
        if lag > 0.05:
            pace = min(MAX_PACE, pace * 2)
        elif lag < 0.02:
            pace = max(floor, pace * 0.8)
        pace = max(floor, pace)
        if pace != self._pace:
            self._pace = pace
            for view in self.query(LogView):
                view.poll_interval = pace

    @on(WorkstreamTable.Selected)
    def _table_selected(self, message: WorkstreamTable.Selected) -> None:
        self._select(message.task_id)

    @on(WorkstreamTable.Chosen)
    def _table_chosen(self, message: WorkstreamTable.Chosen) -> None:
        pane = self.active_pane
        if pane is None:
            return
        self._pinned.add(pane.id or "")
        pane.show_workstream(message.task_id, self.run_snapshot.workstreams.get(message.task_id))

    @on(DagView.Selected)
    def _dag_selected(self, message: DagView.Selected) -> None:
        self._select(message.task_id)
        self.table.select(message.task_id)  # the table's cursor is the selection's home

    def on_descendant_focus(self, event: object) -> None:
        widget = getattr(event, "widget", None)
        for node in getattr(widget, "ancestors_with_self", []):
            if isinstance(node, LogPane):
                self._set_active_pane(node)
                break

    # ------------------------------------------------------------ layout

    async def on_event(self, event: Event) -> None:
        if isinstance(event, Key):
            # Keys first: for a moment after a key, the panes the user is not typing in
            # hold their new lines and the clock tick waits.
            hold = time.monotonic() + KEY_HOLD
            self._key_hold_until = hold
            for view in self.query(LogView):
                view.hold_until = hold
        await super().on_event(event)

    def on_resize(self, event: Resize) -> None:
        self._arrange(event.size.width)


def _last_line(path: str, size: int) -> str:
    """The last non-empty line of a log, without its ANSI codes (reads the last 4 KiB)."""
    if size <= 0:
        return ""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return ""
    try:
        data = os.pread(fd, min(size, _PROBE_BYTES), max(0, size - _PROBE_BYTES))
    finally:
        os.close(fd)
    for raw in reversed(data.splitlines()):
        text = plain(raw.decode("utf-8", errors="replace")).strip()
        if text:
            return text[:300]
    return ""


def build_app(
    engine: TuiEngine,
    plan: Plan | None,
    *,
    theme: str | None = None,
    run_engine: bool = True,
    clock: Callable[[], float] = time.time,
    probe_logs: bool = True,
) -> MissionControlApp:
    """The app over ``engine``; ``run_engine=False`` shows a run without driving it."""
    return MissionControlApp(
        engine, plan, theme=theme, run_engine=run_engine, clock=clock, probe_logs=probe_logs
    )


__all__ = ["MAX_PANES", "AppResult", "MissionControlApp", "build_app"]
