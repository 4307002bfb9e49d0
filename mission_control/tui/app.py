"""The mission-control app: one engine, its events folded into a snapshot, the run screen over it.

Shape: the engine runs as a worker on the app's loop; the bridge turns its
events into messages; the app folds each into its snapshot (the same
``apply_event`` the engine uses), raises the toasts worth raising, and tells the
run screen (``screens/run_screen.py``), which shows it. Quitting asks what to do
with running agents and ends the engine. ``build_app`` is the one way to make the
app, for the CLI and the tests alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Literal

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.driver import Driver
from textual.events import Event, Key
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import Input
from textual.worker import Worker

from ..engine import events as ev
from ..engine.snapshot import RunSnapshot, apply_event
from ..engine.states import ACTIVE, FAILED_STATES, WsState
from ..errors import MissionControlError
from ..plan.model import Plan
from ..store.watch import LogWatcher, shared_watcher
from . import themes
from .bridge import EngineBridge, TuiEngine
from .format import duration
from .messages import EngineEventPosted, EngineStopped
from .run_state import is_news
from .screens.detail_screen import read_attempt
from .screens.quit_screen import QuitChoice, QuitScreen
from .screens.run_screen import RunScreen
from .untrusted import plain
from .widgets.dag_view import DagView
from .widgets.log_pane import LogPane
from .widgets.log_panes import MAX_PANES
from .widgets.run_header import RunHeader
from .widgets.workstream_table import WorkstreamTable

AppResult = Literal["finished", "detach", "stopped"]


class MissionControlApp(App[AppResult]):
    CSS_PATH = "app.tcss"
    TITLE = "mission-control"

    def __init__(
        self,
        engine: TuiEngine,
        plan: Plan | None,
        *,
        theme: str | None = None,
        run_engine: bool = True,
        clock: Callable[[], float] = time.time,
        probe_logs: bool = True,
        log_watcher: LogWatcher | None = None,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.plan = plan
        self._run_engine = run_engine
        self._clock = clock
        self._bridge = EngineBridge(engine, self)
        self.log_watcher = log_watcher or shared_watcher()
        """The process's one log watcher: the panes and the table hear of log growth here."""
        self.run_snapshot: RunSnapshot = engine.snapshot()
        self._run_screen = RunScreen(
            engine, clock=clock, watcher=self.log_watcher, probe_logs=probe_logs
        )
        self._engine_worker: Worker[None] | None = None
        self._engine_ended = asyncio.Event()
        self._engine_done = not run_engine
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

    def get_default_screen(self) -> Screen[None]:
        return self._run_screen

    # ------------------------------------------------------------ accessors

    @property
    def run_screen(self) -> RunScreen:
        return self._run_screen

    @property
    def header(self) -> RunHeader:
        return self._run_screen.header

    @property
    def dag(self) -> DagView:
        return self._run_screen.dag

    @property
    def table(self) -> WorkstreamTable:
        return self._run_screen.table

    @property
    def panes(self) -> list[LogPane]:
        return self._run_screen.panes

    @property
    def active_pane(self) -> LogPane | None:
        return self._run_screen.active_pane

    @property
    def selected_task(self) -> str | None:
        return self._run_screen.selected_task

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

    # ------------------------------------------------------------ mount

    def on_mount(self) -> None:
        # Before the run screen composes: it starts from the snapshot taken here.
        for error in self._theme_errors:
            self.notify(error, title="Theme", severity="warning", timeout=8)
        self.run_snapshot = self._bridge.open()
        self._run_screen.run_snapshot = self.run_snapshot
        self._views_ready = True
        if self._run_engine:
            self._engine_worker = self.run_worker(
                self._drive_engine(), group="engine", exit_on_error=False
            )

    def on_unmount(self) -> None:
        self._bridge.close()

    async def on_event(self, event: Event) -> None:
        if isinstance(event, Key):
            self._run_screen.keys_pressed()  # keys first: the panes hold their new lines
        await super().on_event(event)

    def on_key(self, event: Key) -> None:
        focused = self.screen.focused
        if isinstance(focused, Input) and event.is_printable and event.character:
            # Typed right after ``/`` or ``f``, before the box had the focus: the key was
            # queued for the table, and no hotkey took it (here, after the bindings, the
            # box has the focus). It belongs to the box, which takes every printable key,
            # so it never comes back here. Put in now, not posted: an enter typed in the
            # same burst submits the box next, and must find the whole word there.
            event.stop()
            focused.insert_text_at_cursor(event.character)

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
        apply_event(self.run_snapshot, event)
        self._run_screen.heard(event)
        if news:
            self._notify_about(event)

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

    # ------------------------------------------------------------ quit

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
        run_screen = self._run_screen
        for binding in RunScreen.BINDINGS:
            if not isinstance(binding, Binding) or binding.action.startswith("app."):
                continue  # quit and the theme: the palette has its own
            action = getattr(run_screen, f"action_{binding.action}", None)
            if action is not None:
                keys = ", ".join(
                    self.get_key_display(replace(binding, key=key.strip()))
                    for key in binding.key.split(",")
                )
                yield SystemCommand(binding.tooltip, f"key: {keys}", action)


def build_app(
    engine: TuiEngine,
    plan: Plan | None,
    *,
    theme: str | None = None,
    run_engine: bool = True,
    clock: Callable[[], float] = time.time,
    probe_logs: bool = True,
    log_watcher: LogWatcher | None = None,
) -> MissionControlApp:
    """The app over ``engine``; ``run_engine=False`` shows a run without driving it.
    ``probe_logs=False`` keeps the table off the logs (fixed pictures for tests)."""
    return MissionControlApp(
        engine,
        plan,
        theme=theme,
        run_engine=run_engine,
        clock=clock,
        probe_logs=probe_logs,
        log_watcher=log_watcher,
    )


__all__ = ["MAX_PANES", "AppResult", "MissionControlApp", "build_app"]
