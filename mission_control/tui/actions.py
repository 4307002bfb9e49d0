"""What the keys and the command palette do: commands on workstreams, panes, the table, quit.

Every binding of the app is an ``action_*`` here, so one file answers "what does
this key do?"; ``MissionControlApp`` (``app.py``) adds what the app sees: the
engine's events, the refresh of the views, log probes and the layout's upkeep.
This class is the app's base rather than a mixin because Textual gathers
``@on`` handlers only from its own classes. Engine commands run as workers, and
an error comes back as a notification, never as an exception in the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from typing import Literal

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.events import Key
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Input
from textual.worker import Worker

from ..engine.snapshot import RunSnapshot, WorkstreamView
from ..engine.states import ACTIVE, WsState
from ..errors import MissionControlError
from .bridge import TuiEngine
from .screens.confirm_screen import ConfirmScreen
from .screens.detail_screen import DetailScreen
from .screens.diff_screen import DiffScreen
from .screens.help_screen import HelpScreen, HelpSection
from .screens.message_screen import MessageScreen
from .screens.quit_screen import QuitChoice, QuitScreen
from .untrusted import markup_escape, plain
from .widgets.dag_view import DagView
from .widgets.log_pane import LogPane
from .widgets.log_view import LogView
from .widgets.run_header import RunHeader
from .widgets.search_box import SearchBox
from .widgets.workstream_table import StatusFilter, WorkstreamTable

AppResult = Literal["finished", "detach", "stopped"]

MAX_PANES = 4
DAG_MIN_WIDTH = 100
"""Below this many columns the DAG starts hidden (``g`` shows it): the table needs the room."""
_STATUS_CYCLE = list(StatusFilter)


class WorkstreamActions(App[AppResult]):
    """The app's actions, its widget accessors and the pane layout they change."""

    # Set up by MissionControlApp.__init__ and on_mount.
    engine: TuiEngine
    run_snapshot: RunSnapshot
    _run_engine: bool
    _engine_done: bool
    _engine_worker: Worker[None] | None
    _engine_ended: asyncio.Event
    _suspended: bool
    _active_pane: LogPane | None
    _pinned: set[str]
    """Ids of panes the user pointed at a workstream; the others follow the cursor."""
    _pane_serial: int
    _dag_choice: bool | None
    """The user's ``g``: show or hide the DAG; None until then (it follows the width)."""
    _selected: str | None
    _pace: float
    _clock: Callable[[], float]

    def _schedule_refresh(self) -> None:
        """Repaint the views soon; the app coalesces bursts into one refresh."""
        raise NotImplementedError

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast is plain text: messages carry agents' words (exit details, warnings),
        which must neither reach the terminal as control codes nor be read as markup."""
        lines = (plain(line) for line in message.splitlines())  # a line break stays one
        super().notify(
            "\n".join(lines), title=plain(title), severity=severity, timeout=timeout, markup=False
        )

    # ------------------------------------------------------------ accessors

    @property
    def header(self) -> RunHeader:
        return self.query_one(RunHeader)

    @property
    def dag(self) -> DagView:
        return self.query_one(DagView)

    @property
    def table(self) -> WorkstreamTable:
        return self.query_one(WorkstreamTable)

    @property
    def panes(self) -> list[LogPane]:
        return list(self.query(LogPane))

    @property
    def active_pane(self) -> LogPane | None:
        panes = self.panes
        if self._active_pane in panes:
            return self._active_pane
        return panes[0] if panes else None

    @property
    def selected_task(self) -> str | None:
        """The workstream actions apply to: the table's cursor row.

        Read from the table itself, not from its last ``Selected`` message, so a key
        typed right after a cursor move acts on the row the user sees.
        """
        return self.table.selected_task or self._selected

    # ------------------------------------------------------------ layout

    def _set_active_pane(self, pane: LogPane) -> None:
        self._active_pane = pane
        for other in self.panes:
            other.set_class(other is pane, "-active")

    def _arrange(self, width: int | None = None) -> None:
        width = width if width is not None else self.size.width
        count = max(1, len(self.panes))
        self.screen.set_class(width < 110, "-narrow")
        self.query_one("#logs").set_class(width // count < 45, "-stacked")
        shown = self._dag_choice if self._dag_choice is not None else width >= DAG_MIN_WIDTH
        self.dag.display = shown

    def action_toggle_dag(self) -> None:
        self._dag_choice = not self.dag.display
        if not self._dag_choice and self.dag.has_focus:
            self.table.focus()
        self._arrange()

    # ------------------------------------------------------------ actions

    def _view_or_warn(self) -> WorkstreamView | None:
        task_id = self.selected_task
        view = self.run_snapshot.workstreams.get(task_id) if task_id else None
        if view is None:
            self.notify("select a workstream first", severity="warning")
        return view

    def _command(self, label: str, call: Callable[[], object]) -> None:
        async def run() -> None:
            try:
                result = call()
                if asyncio.iscoroutine(result):
                    await result
            except MissionControlError as exc:
                self.notify(str(exc), title=f"{label} failed", severity="error")
            except KeyError as exc:
                self.notify(f"unknown workstream {exc}", title=f"{label} failed", severity="error")

        self.run_worker(run(), group="command", exit_on_error=False)

    def action_pause_resume(self) -> None:
        view = self._view_or_warn()
        if view is None:
            return
        if view.state is WsState.PAUSED:
            self._command("Resume", partial(self.engine.resume, view.task_id))
        elif view.state is WsState.RUNNING:
            self._command("Pause", partial(self.engine.pause, view.task_id))
        else:
            self.notify(f"{view.task_id} is {view.state.value}: only a running workstream pauses")

    def action_kill(self) -> None:
        view = self._view_or_warn()
        if view is None:
            return
        if view.state not in ACTIVE:
            self.notify(f"{view.task_id} is {view.state.value}: nothing to kill")
            return
        task_id = view.task_id

        def answered(yes: bool | None) -> None:
            if yes:
                self._command("Kill", partial(self.engine.kill, task_id))

        self.push_screen(
            ConfirmScreen(
                f"Kill {markup_escape(task_id)}?",
                "Kill",
                "Its agent stops now; its worktree stays for a retry.",
            ),
            answered,
        )

    def action_retry(self) -> None:
        view = self._view_or_warn()
        if view is not None:
            self._command("Retry", partial(self.engine.retry, view.task_id, fresh=False))

    def action_retry_fresh(self) -> None:
        view = self._view_or_warn()
        if view is None:
            return
        task_id = view.task_id

        def answered(yes: bool | None) -> None:
            if yes:
                self._command("Retry fresh", partial(self.engine.retry, task_id, fresh=True))

        self.push_screen(
            ConfirmScreen(
                f"Retry {markup_escape(task_id)} from a fresh worktree?",
                "Retry fresh",
                "Its uncommitted changes are lost"
                + ("; its agent stops now." if view.state in ACTIVE else "."),
            ),
            answered,
        )

    def action_skip(self) -> None:
        view = self._view_or_warn()
        if view is None:
            return
        task_id = view.task_id
        if view.state not in ACTIVE:  # nothing running to stop: no question
            self._command("Skip", partial(self.engine.skip, task_id))
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._command("Skip", partial(self.engine.skip, task_id))

        self.push_screen(
            ConfirmScreen(
                f"Skip {markup_escape(task_id)}?",
                "Skip",
                "Its agent stops now, and the workstreams that depend on it may start.",
            ),
            answered,
        )

    def action_message(self) -> None:
        view = self._view_or_warn()
        if view is None:
            return
        if view.attempt == 0:
            self.notify(
                f"{view.task_id} has not started: a message goes to an agent that has run",
                title="Message",
            )
            return
        task_id = view.task_id
        question = view.needs_input if view.state is WsState.NEEDS_INPUT else None
        if view.state in ACTIVE:
            how = "it reaches the agent now if it takes input, else after this attempt"
        else:
            how = "a new attempt continues the agent's conversation with it"

        async def send(text: str) -> None:
            said = await self.engine.send_message(task_id, text)
            self.notify(said, title=f"Message to {task_id}")

        def answered(text: str | None) -> None:
            if text:
                self._command("Message", partial(send, text))

        self.push_screen(MessageScreen(task_id, question, how), answered)

    def action_land(self) -> None:
        view = self._view_or_warn()
        if view is None:
            return
        phase_id = view.task_id.split("::", 1)[0]

        async def land() -> None:
            said = await self.engine.land(phase_id)
            self.notify(said, title=f"Land {phase_id}")

        self._command("Land", land)

    def action_diff(self) -> None:
        view = self._view_or_warn()
        if view is not None:
            self.push_screen(DiffScreen(view.task_id, partial(self.engine.diff, view.task_id)))

    def action_details(self) -> None:
        view = self._view_or_warn()
        if view is not None:
            self.push_screen(DetailScreen(view, self._clock()))

    def action_shell(self) -> None:
        view = self._view_or_warn()
        if view is not None:
            self._open_shell(view.task_id, view.worktree)

    @work(group="shell", exclusive=True, exit_on_error=False)
    async def _open_shell(self, task_id: str, worktree: str) -> None:
        backend = self.run_snapshot.backend
        if backend != "local":
            self.notify(
                f"{task_id} runs on a {backend} cluster node, so its worktree is not on this"
                " machine; `d` shows its diff once its work is back",
                severity="warning",
            )
            return
        if not await asyncio.to_thread(os.path.isdir, worktree):
            self.notify(f"{task_id} has no worktree yet ({worktree})", severity="warning")
            return
        shell = os.environ.get("SHELL") or "/bin/sh"
        try:
            with self.suspend():
                self._suspended = True
                try:
                    print(f"mission-control: shell in {worktree} — exit to return")
                    await asyncio.to_thread(subprocess.run, [shell], cwd=worktree, check=False)
                finally:
                    self._suspended = False
        except Exception as exc:  # SuspendNotSupported in a headless or web driver
            self.notify(f"cannot open a shell here: {exc}", severity="error")
        self._schedule_refresh()

    def action_add_pane(self) -> None:
        if len(self.panes) >= MAX_PANES:
            self.notify(f"at most {MAX_PANES} log panes", severity="warning")
            return
        task_id = self.selected_task
        self._pane_serial += 1
        pane = LogPane(task_id, id=f"pane-{self._pane_serial}", pace=self._pace)
        self._pinned.add(pane.id or "")
        self.query_one("#logs").mount(pane)
        if task_id is not None:
            pane.show_workstream(task_id, self.run_snapshot.workstreams.get(task_id))
        self._set_active_pane(pane)
        self._arrange()

    def action_close_pane(self) -> None:
        pane = self.active_pane
        panes = self.panes
        if pane is None or len(panes) <= 1:
            self.notify("the last pane stays open", severity="warning")
            return
        self._pinned.discard(pane.id or "")
        index = panes.index(pane)
        pane.remove()
        rest = [p for p in panes if p is not pane]
        self._set_active_pane(rest[min(index, len(rest) - 1)])
        self.call_after_refresh(self._arrange)

    def action_cycle_focus(self) -> None:
        dag = [self.dag] if self.dag.display else []
        order: list[object] = [self.table, *dag, *(p.log_view for p in self.panes)]
        focused = self.focused
        current = -1
        for i, widget in enumerate(order):
            if focused is widget:
                current = i
        target = order[(current + 1) % len(order)]
        target.focus()  # type: ignore[attr-defined]

    def action_search(self) -> None:
        pane = self.active_pane
        if pane is not None:
            pane.action_start_search()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_sections()))

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

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-shown")
        self.screen.set_focus(box)  # at once: the next keys may be queued already

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(text=event.value)
        self._schedule_refresh()  # the header says what the table shows

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            event.input.remove_class("-shown")
        self.table.focus()

    def on_key(self, event: Key) -> None:
        focused = self.screen.focused
        if isinstance(focused, Input) and event.is_printable:
            # Typed right after ``/`` or ``f``, before the box had the focus: the key was
            # queued for the table, and no hotkey took it. It belongs to the box (which
            # takes every printable key, so it never comes back here).
            event.stop()
            focused.post_message(Key(event.key, event.character))
            return

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
        self._schedule_refresh()

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
        self._schedule_refresh()  # the header says what the table shows

    async def action_quit(self) -> None:
        active = [v for v in self.run_snapshot.workstreams.values() if v.state in ACTIVE]
        if active and not self._engine_done:
            self.push_screen(QuitScreen(len(active)), self._quit_answered)
            return
        await self._finish("finished")

    def _quit_answered(self, choice: QuitChoice | None) -> None:
        if choice == "detach":
            self.run_worker(self._finish("detach"), group="quit", exclusive=True)
        elif choice == "stop":
            self.run_worker(self._finish("stopped"), group="quit", exclusive=True)

    async def _finish(self, result: AppResult) -> None:
        if not self._engine_done and self._run_engine:
            if result == "detach":
                self.notify("leaving the agents running…", timeout=3)
            elif result == "stopped":
                self.notify("stopping every workstream…", timeout=5)
            await self._end_engine(detach=result == "detach")
        self.exit(result)

    async def _end_engine(self, *, detach: bool) -> None:
        """Ask the engine to end its run and wait for ``run()`` to return.

        The request is repeated while the run goes on: both commands are idempotent,
        and a repeat wakes a main loop that went back to sleep just before the last
        workstream's task finished.
        """
        for _ in range(3):
            if self._engine_worker is None or self._engine_ended.is_set():
                return
            if detach:
                await self.engine.detach()
            else:
                await self.engine.cancel(kill=False)  # returns once the attempts have ended
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._engine_ended.wait(), 1.0)
        # Still running after its work was stopped: exiting cancels the worker, and the
        # engine's own clean-up runs from there.

    # ------------------------------------------------------------ palette

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in self.BINDINGS:
            if not isinstance(binding, Binding) or binding.action in ("quit", "change_theme"):
                continue
            action = getattr(self, f"action_{binding.action}", None)
            if action is not None:
                keys = ", ".join(
                    self.get_key_display(replace(binding, key=key.strip()))
                    for key in binding.key.split(",")
                )
                yield SystemCommand(binding.tooltip, f"key: {keys}", action)
