"""What the keys do to a workstream: pause, kill, retry, skip, message, land, diff, details, shell.

These are the run screen's commands on the table's selected workstream, kept in
one file so it answers "what does this key do to an agent?". They form the
screen's base class rather than a mixin because Textual gathers bindings and
handlers only from its own classes. Engine commands run as workers, and an error
comes back as a notification, never as an exception in the app. Every command
that stops an agent asks first.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from functools import partial

from textual import work
from textual.screen import Screen

from ...engine.snapshot import RunSnapshot, WorkstreamView
from ...engine.states import ACTIVE, WsState
from ...errors import MissionControlError
from ..bridge import TuiEngine
from ..untrusted import markup_escape
from ..widgets.workstream_table import WorkstreamTable
from .confirm_screen import ConfirmScreen
from .detail_screen import DetailScreen
from .diff_screen import DiffScreen
from .message_screen import MessageScreen


class WorkstreamCommands(Screen[None]):
    """The commands on the selected workstream; ``RunScreen`` adds the views they act on."""

    # Set up by RunScreen.__init__.
    engine: TuiEngine
    run_snapshot: RunSnapshot
    _clock: Callable[[], float]
    _selected: str | None
    suspended: bool
    """True while a shell runs in the terminal (the views wait)."""

    def schedule_refresh(self) -> None:
        """Repaint the views soon; the screen coalesces bursts into one refresh."""
        raise NotImplementedError

    @property
    def table(self) -> WorkstreamTable:
        return self.query_one(WorkstreamTable)

    @property
    def selected_task(self) -> str | None:
        """The workstream commands apply to: the table's cursor row.

        Read from the table itself, not from its last ``Selected`` message, so a key
        typed right after a cursor move acts on the row the user sees.
        """
        return self.table.selected_task or self._selected

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

    def _confirm(self, title: str, label: str, detail: str, then: Callable[[], None]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                then()

        self.app.push_screen(ConfirmScreen(title, label, detail), answered)

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
        self._confirm(
            f"Kill {markup_escape(view.task_id)}?",
            "Kill",
            "Its agent stops now; its worktree stays for a retry.",
            partial(self._command, "Kill", partial(self.engine.kill, view.task_id)),
        )

    def action_retry(self) -> None:
        view = self._view_or_warn()
        if view is not None:
            self._command("Retry", partial(self.engine.retry, view.task_id, fresh=False))

    def action_retry_fresh(self) -> None:
        view = self._view_or_warn()
        if view is None:
            return
        self._confirm(
            f"Retry {markup_escape(view.task_id)} from a fresh worktree?",
            "Retry fresh",
            "Its uncommitted changes are lost"
            + ("; its agent stops now." if view.state in ACTIVE else "."),
            partial(
                self._command, "Retry fresh", partial(self.engine.retry, view.task_id, fresh=True)
            ),
        )

    def action_skip(self) -> None:
        view = self._view_or_warn()
        if view is None:
            return
        skip = partial(self._command, "Skip", partial(self.engine.skip, view.task_id))
        if view.state not in ACTIVE:  # nothing running to stop: no question
            skip()
            return
        self._confirm(
            f"Skip {markup_escape(view.task_id)}?",
            "Skip",
            "Its agent stops now, and the workstreams that depend on it may start.",
            skip,
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

        self.app.push_screen(MessageScreen(task_id, question, how), answered)

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
            self.app.push_screen(DiffScreen(view.task_id, partial(self.engine.diff, view.task_id)))

    def action_details(self) -> None:
        view = self._view_or_warn()
        if view is not None:
            self.app.push_screen(DetailScreen(view, self._clock()))

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
            with self.app.suspend():
                self.suspended = True
                try:
                    print(f"mission-control: shell in {worktree} — exit to return")
                    await asyncio.to_thread(subprocess.run, [shell], cwd=worktree, check=False)
                finally:
                    self.suspended = False
        except Exception as exc:  # SuspendNotSupported in a headless or web driver
            self.notify(f"cannot open a shell here: {exc}", severity="error")
        self.schedule_refresh()
